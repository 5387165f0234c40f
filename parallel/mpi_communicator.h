// MpiCommunicator: the Communicator over MPI for CPU tensors (DESIGN.md §4). Every operation is
// a non-blocking MPI call whose completion is polled against the watchdog deadline (Note
// [Communication watchdog] in parallel/watchdog.h).
#pragma once
#include <mpi.h>

#include <string>

#include "parallel/communicator.h"

namespace zt {

struct MpiCommunicatorOptions {
  double timeout_s = 0;      // watchdog timeout; 0: ZT_COMM_TIMEOUT or its default
  std::string name = "world";  // shown in watchdog and error messages
};

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of comm (freed in the destructor unless MPI is already finalized).
  MpiCommunicator(MPI_Comm comm, MpiCommunicatorOptions options);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "mpi"; }
  double timeout_seconds() const { return options_.timeout_s; }
  const std::string& name() const { return options_.name; }
  MPI_Comm mpi_comm() const { return comm_; }

  WorkHandle all_reduce_async(const Tensor& t, CommReduceOp op) override;
  WorkHandle reduce_scatter_async(const Tensor& input, const Tensor& output, CommReduceOp op) override;
  WorkHandle all_gather_async(const Tensor& input, const Tensor& output) override;
  WorkHandle broadcast_async(const Tensor& t, int root) override;
  WorkHandle send_async(const Tensor& t, int dst, int tag) override;
  WorkHandle recv_async(const Tensor& t, int src, int tag) override;
  WorkHandle barrier_async() override;
  std::shared_ptr<Communicator> split(int color, int key) override;

 private:
  // "all_reduce (sum, f32, 10 elements) on communicator 'world', rank 1 of 2"
  std::string describe(const std::string& op, const Tensor* t) const;
  void check_peer(const char* op, int peer) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  MpiCommunicatorOptions options_;
  int rank_ = 0;
  int size_ = 1;
};

// Throws zt::Error with MPI's text for a failed MPI call.
void check_mpi(int code, const char* call);

}  // namespace zt
