// Communicator: the collective and point-to-point operations every form of parallelism is built
// on (DESIGN.md §4): all_reduce, reduce_scatter, all_gather, broadcast, send/recv, barrier and
// split into subgroups, each with an asynchronous variant returning a Work handle.
//
// Note [Communicator tensor rules]
// - Every dtype is accepted. Reductions of f16/bf16 happen in f32 and are rounded once at the end.
//   bool sums and maxima are logical ORs; avg needs a floating dtype.
// - Non-contiguous tensors are copied to a contiguous buffer and the result copied back, so
//   views (a slice of a flat buffer, a transposed weight) work as inputs and outputs.
// - reduce_scatter and all_gather split along dim 0: input (W*k, ...) <-> output (k, ...), W the
//   communicator size. A dim 0 that does not divide is an error naming both sizes.
// - Empty tensors are a no-op (a Work that is already complete).
// - The work of one rank must be issued in the same order on every rank of the communicator.
#pragma once
#include <memory>
#include <string>

#include "core/tensor.h"

namespace zt {

enum class CommReduceOp : uint8_t { sum, avg, max };
const char* comm_reduce_op_name(CommReduceOp op);

// A handle on an operation in flight. wait() blocks until it is done and its output written
// (it may be called more than once); is_completed() never blocks.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool is_completed() = 0;
};
using WorkHandle = std::shared_ptr<Work>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi", "nccl": for messages.
  virtual std::string backend_name() const = 0;

  // ---- asynchronous operations (the Note above applies to all) ----
  // In place: t becomes the reduction of every rank's t.
  virtual WorkHandle all_reduce_async(const Tensor& t, CommReduceOp op = CommReduceOp::sum) = 0;
  // input (W*k, ...) reduced over ranks; this rank receives rows [rank*k, (rank+1)*k) in output.
  virtual WorkHandle reduce_scatter_async(const Tensor& input, const Tensor& output,
                                          CommReduceOp op = CommReduceOp::sum) = 0;
  // input (k, ...) of every rank, concatenated in rank order into output (W*k, ...).
  virtual WorkHandle all_gather_async(const Tensor& input, const Tensor& output) = 0;
  // In place: every rank's t becomes root's t.
  virtual WorkHandle broadcast_async(const Tensor& t, int root) = 0;
  virtual WorkHandle send_async(const Tensor& t, int dst, int tag = 0) = 0;
  // In place: t receives what src sent with the same tag (shape and dtype must match).
  virtual WorkHandle recv_async(const Tensor& t, int src, int tag = 0) = 0;
  virtual WorkHandle barrier_async() = 0;

  // A communicator over the ranks that pass the same color, ordered by key (then by rank).
  // Collective over this communicator. A negative color takes no part: the result is null.
  virtual std::shared_ptr<Communicator> split(int color, int key) = 0;

  // ---- blocking forms ----
  void all_reduce(const Tensor& t, CommReduceOp op = CommReduceOp::sum) { all_reduce_async(t, op)->wait(); }
  void reduce_scatter(const Tensor& input, const Tensor& output, CommReduceOp op = CommReduceOp::sum) {
    reduce_scatter_async(input, output, op)->wait();
  }
  void all_gather(const Tensor& input, const Tensor& output) { all_gather_async(input, output)->wait(); }
  void broadcast(const Tensor& t, int root) { broadcast_async(t, root)->wait(); }
  void send(const Tensor& t, int dst, int tag = 0) { send_async(t, dst, tag)->wait(); }
  void recv(const Tensor& t, int src, int tag = 0) { recv_async(t, src, tag)->wait(); }
  void barrier() { barrier_async()->wait(); }
  // Allocating forms: the output tensor is created here (same dtype and device as input).
  Tensor reduce_scatter(const Tensor& input, CommReduceOp op = CommReduceOp::sum);
  Tensor all_gather(const Tensor& input);
};

// The mean over the ranks of one number per rank (a logged loss, say); collective, blocking, in
// f64 on the CPU, so `comm` must take CPU tensors (the MPI bootstrap). A null comm is a world of one.
double mean_over_ranks(Communicator* comm, double local);

// A Work that was complete when created (empty tensors, a world of one).
class CompletedWork final : public Work {
 public:
  void wait() override {}
  bool is_completed() override { return true; }
};

// Shape checks shared by every implementation; they throw zt::Error naming the sizes.
// The output shape of reduce_scatter for `input` over `world` ranks: (dim0 / world, ...).
Shape reduce_scatter_output_shape(const Tensor& input, int world);
// The output shape of all_gather: (world * dim0, ...).
Shape all_gather_output_shape(const Tensor& input, int world);
// Checks that `output` has `expected` shape and input's dtype and device.
void check_collective_output(const char* op, const Tensor& input, const Tensor& output,
                             const Shape& expected);

}  // namespace zt
