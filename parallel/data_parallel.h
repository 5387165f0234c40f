// DataParallel: replicates a Module across the ranks of a communicator and averages gradients
// (DESIGN.md §4). Parameters and buffers are broadcast from rank 0 at construction; during
// backward, autograd's grad-ready hooks report each parameter's finished gradient, parameters are
// grouped into buckets of about bucket_bytes, and each bucket's all-reduce starts as soon as the
// bucket is full, overlapping with the rest of backward. The training loop calls
// finish_gradient_reduction() after backward and before optimizer.step():
//
//   zt::DataParallel dp(model, world);
//   Tensor loss = cross_entropy(dp(x), y);   // x: this rank's slice of the global batch
//   zt::backward(loss);
//   dp.finish_gradient_reduction();          // grads are now the global-batch mean
//   optimizer.step();
//
// Note [Data-parallel buckets]
// Buckets hold parameters in reverse registration order, the order backward usually finishes
// them, and never mix dtypes or devices. Buckets are launched strictly in index order on every
// rank (a full bucket waits for the earlier ones), because collectives must be issued in the same
// order everywhere. A parameter that gets no gradient in a pass counts as zeros at
// finish_gradient_reduction(), and every parameter of the model then holds the averaged gradient,
// so all replicas stay identical. Each rank's loss must be the mean over an equal share of the
// global batch for the average of gradients to be the global-batch mean gradient.
//
// Build DataParallel after moving the model (Module::to replaces parameter tensors) and before
// the optimizer; the hooks hold the parameter tensors they were registered on.
//
// Gradient accumulation: backward passes inside a `no_sync()` scope only accumulate locally; the
// next backward outside it reduces the accumulated sum (PyTorch's DDP semantics). Scale each
// micro-batch loss by 1/accumulation as in a single process.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "parallel/communicator.h"

namespace zt {

struct DataParallelOptions {
  int64_t bucket_bytes = int64_t(25) << 20;  // DeepSpeed's and PyTorch's default of 25 MiB
  bool broadcast_parameters = true;          // copy rank 0's parameters and buffers to all ranks
};

class DataParallel {
 public:
  // Collective over comm (the broadcast). Registers a grad-ready hook on every parameter.
  DataParallel(std::shared_ptr<Module> module, std::shared_ptr<Communicator> comm,
               DataParallelOptions options = {});
  ~DataParallel();  // removes the hooks
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // The module's forward (with its hooks). Errors when the previous backward's reduction was
  // started but never finished.
  Tensor operator()(const Tensor& x);
  Module& module() { return *module_; }
  const std::shared_ptr<Communicator>& communicator() const { return comm_; }

  // Launches the buckets not yet launched, waits for all of them and writes the averaged
  // gradients back into every parameter's grad. A no-op inside no_sync() and when no gradient
  // arrived since the last call.
  void finish_gradient_reduction();

  // While a NoSync object lives, backward passes accumulate gradients without communicating.
  class NoSync {
   public:
    explicit NoSync(DataParallel& dp);
    ~NoSync();
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DataParallel& dp_;
    bool previous_;
  };
  [[nodiscard]] NoSync no_sync() { return NoSync(*this); }
  bool syncing() const { return !no_sync_; }

  // The bucket layout (parameter names per bucket, in launch order), for tests and logs.
  std::vector<std::vector<std::string>> bucket_layout() const;
  // Buckets launched during the last backward before finish_gradient_reduction() (overlap).
  int64_t buckets_launched_during_backward() const { return last_launched_in_backward_; }

 private:
  struct Param {
    std::string name;
    Tensor tensor;
    HookHandle hook = 0;
    size_t bucket = 0;
    int64_t offset = 0;  // in elements, within the bucket's flat buffer
    bool ready = false;
  };
  struct Bucket {
    std::vector<size_t> params;
    int64_t numel = 0;
    int64_t pending = 0;  // parameters whose gradient has not arrived in this pass
    Tensor flat;          // (numel,) the reduction buffer, allocated once
    WorkHandle work;
  };

  void build_buckets();
  void on_grad_ready(size_t index);
  void launch_full_buckets();
  void launch(Bucket& b);
  void reset_pass();

  std::shared_ptr<Module> module_;
  std::shared_ptr<Communicator> comm_;
  DataParallelOptions options_;
  std::vector<Param> params_;  // in bucket order (reverse registration order)
  std::vector<Bucket> buckets_;
  size_t next_bucket_ = 0;       // the first bucket not yet launched
  int64_t grads_arrived_ = 0;    // in this pass
  int64_t launched_in_backward_ = 0;       // in this pass, by the hooks
  int64_t last_launched_in_backward_ = 0;  // in the last finished pass
  bool no_sync_ = false;
};

}  // namespace zt
