// DataParallel: bucketed, overlapped gradient averaging (Note [Data-parallel buckets] in
// parallel/data_parallel.h).
#include "parallel/data_parallel.h"

#include "core/factory.h"
#include "core/ops.h"

namespace zt {

DataParallel::DataParallel(std::shared_ptr<Module> module, std::shared_ptr<Communicator> comm,
                           DataParallelOptions options)
    : module_(std::move(module)), comm_(std::move(comm)), options_(options) {
  ZT_CHECK(module_, "DataParallel: the module is null");
  ZT_CHECK(comm_, "DataParallel: the communicator is null");
  ZT_CHECK(options_.bucket_bytes > 0, "DataParallel: bucket_bytes must be positive, found ",
           options_.bucket_bytes);
  if (options_.broadcast_parameters) {
    // Every replica starts from rank 0's values, whatever each rank's initialisation drew.
    for (const auto& [name, p] : module_->named_parameters()) comm_->broadcast(p, 0);
    for (const auto& [name, b] : module_->named_buffers()) comm_->broadcast(b, 0);
  }
  build_buckets();
  for (size_t i = 0; i < params_.size(); ++i)
    params_[i].hook = register_grad_ready_hook(params_[i].tensor, [this, i](const Tensor&) { on_grad_ready(i); });
}

DataParallel::~DataParallel() {
  for (const Param& p : params_) remove_hook(p.tensor, p.hook);
}

void DataParallel::build_buckets() {
  auto named = module_->named_parameters();
  for (auto it = named.rbegin(); it != named.rend(); ++it)
    if (requires_grad(it->second)) params_.push_back(Param{it->first, it->second});
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = params_[i];
    const Tensor& t = p.tensor;
    bool fresh = buckets_.empty();
    if (!fresh) {
      const Tensor& first = params_[buckets_.back().params.front()].tensor;
      const int64_t bytes = (buckets_.back().numel + t.numel()) * int64_t(t.element_size());
      fresh = first.dtype() != t.dtype() || !(first.device() == t.device()) || bytes > options_.bucket_bytes;
    }
    if (fresh) buckets_.emplace_back();
    Bucket& b = buckets_.back();
    p.bucket = buckets_.size() - 1;
    p.offset = b.numel;
    b.params.push_back(i);
    b.numel += t.numel();
  }
  MemoryCategoryScope scope(MemoryCategory::communication);
  for (Bucket& b : buckets_) {
    const Tensor& first = params_[b.params.front()].tensor;
    b.flat = empty({b.numel}, TensorOptions(first.dtype(), first.device()));
    b.pending = int64_t(b.params.size());
  }
}

std::vector<std::vector<std::string>> DataParallel::bucket_layout() const {
  std::vector<std::vector<std::string>> out;
  for (const Bucket& b : buckets_) {
    out.emplace_back();
    for (size_t i : b.params) out.back().push_back(params_[i].name);
  }
  return out;
}

Tensor DataParallel::operator()(const Tensor& x) {
  ZT_CHECK(grads_arrived_ == 0 && next_bucket_ == 0,
           "DataParallel: the previous backward's gradient reduction was started but not finished; "
           "call finish_gradient_reduction() after backward and before optimizer.step()");
  return (*module_)(x);
}

void DataParallel::on_grad_ready(size_t index) {
  if (no_sync_) return;
  Param& p = params_[index];
  ZT_CHECK(!p.ready, "DataParallel: parameter '", p.name, "' received a second gradient before "
           "finish_gradient_reduction(); call it after every backward (or use no_sync())");
  p.ready = true;
  ++grads_arrived_;
  --buckets_[p.bucket].pending;
  launch_full_buckets();
  // Polling the buckets in flight lets MPI progress them while backward goes on.
  for (size_t b = 0; b < next_bucket_; ++b) buckets_[b].work->is_completed();
}

void DataParallel::launch_full_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) {
    launch(buckets_[next_bucket_]);
    ++next_bucket_;
    ++launched_in_backward_;
  }
}

void DataParallel::launch(Bucket& b) {
  NoGradGuard no_grad;
  for (size_t i : b.params) {
    const Param& p = params_[i];
    Tensor slot = raw::view(raw::narrow(b.flat, 0, p.offset, p.tensor.numel()), p.tensor.shape());
    const Tensor g = grad(p.tensor);
    if (g.defined()) raw::copy_(slot, g);
    else raw::copy_(slot, zeros({}, TensorOptions(slot.dtype(), slot.device())));  // unused: zeros
  }
  b.work = comm_->all_reduce_async(b.flat, CommReduceOp::avg);
}

void DataParallel::finish_gradient_reduction() {
  if (no_sync_ || grads_arrived_ == 0) return;
  last_launched_in_backward_ = launched_in_backward_;
  while (next_bucket_ < buckets_.size()) launch(buckets_[next_bucket_++]);
  NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    b.work->wait();
    b.work.reset();
    for (size_t i : b.params) {
      const Param& p = params_[i];
      Tensor slot = raw::view(raw::narrow(b.flat, 0, p.offset, p.tensor.numel()), p.tensor.shape());
      const Tensor g = grad(p.tensor);
      if (g.defined()) {
        raw::copy_(g, slot);
      } else {
        MemoryCategoryScope scope(MemoryCategory::gradients);
        set_grad(p.tensor, raw::clone(slot));
      }
    }
  }
  reset_pass();
}

void DataParallel::reset_pass() {
  for (Param& p : params_) p.ready = false;
  for (Bucket& b : buckets_) b.pending = int64_t(b.params.size());
  next_bucket_ = 0;
  grads_arrived_ = 0;
  launched_in_backward_ = 0;
}

DataParallel::NoSync::NoSync(DataParallel& dp) : dp_(dp), previous_(dp.no_sync_) {
  ZT_CHECK(dp.grads_arrived_ == 0, "DataParallel::no_sync: a gradient reduction is in progress; "
           "call finish_gradient_reduction() first");
  dp.no_sync_ = true;
}

DataParallel::NoSync::~NoSync() { dp_.no_sync_ = previous_; }

}  // namespace zt
