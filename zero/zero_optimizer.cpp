// ZeroOptimizer: ZeRO stages 1 and 2 over a flat parameter buffer (Notes [ZeRO flat layout] and
// [ZeRO gradient reduction] in zero/zero_optimizer.h).
#include "zero/zero_optimizer.h"

#include <algorithm>
#include <map>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"

namespace zt {

namespace {

// Stage 0 partitions nothing (ShardedOptions::partition).
ShardedOptions sharded_for_stage(const ZeroOptions& o) {
  ShardedOptions s = o.sharded;
  s.partition = o.stage != 0;
  return s;
}

}  // namespace

ZeroOptimizer::ZeroOptimizer(std::shared_ptr<Module> module, std::shared_ptr<Communicator> comm,
                             ZeroOptions options, LossScaler scaler, std::vector<Tensor> originals)
    : ShardedOptimizer(std::move(module), std::move(comm), scaler, originals, sharded_for_stage(options)),
      options_(options) {
  ZT_CHECK(options_.stage >= 0 && options_.stage <= 2, "ZeroOptimizer: expected ZeRO stage 0, 1 or 2, found ",
           options_.stage, " (stage 3 is ZeroStage3Optimizer, zero/zero_stage3.h)");
  ZT_CHECK(options_.stage > 0 || !options_.sharded.offload_optimizer,
           "ZeroOptimizer: optimizer offload needs ZeRO stage 1 or more, found stage 0");
  ZT_CHECK(options_.reduce_bucket_size > 0, "ZeroOptimizer: reduce_bucket_size must be positive, found ",
           options_.reduce_bucket_size);
  const std::vector<int64_t> starts = build_flat(trainable_parameters("ZeroOptimizer"));
  init_master(parameter_shard(), shard_groups(starts));
  start_masters_from(originals);
  build_buckets();
  {
    MemoryCategoryScope scope(MemoryCategory::gradients);
    const TensorOptions grad_options(dtype_, device_);
    if (options_.stage <= 1) flat_grad_ = zeros({padded_}, grad_options);
    else if (!offloaded()) grad_shard_ = zeros({shard_}, grad_options);
  }
  if (streams_gradients()) {  // Note [ZeRO-Offload gradient streaming]
    const StreamLayout l = stream_layout(shard_, configured_chunk());
    stream_ = std::make_unique<OffloadGradientStream>(offload_gradient(), l.bucket, int(l.slots), transfer_allocator());
  }
  for (size_t i = 0; i < params_.size(); ++i)
    params_[i].hook = register_grad_ready_hook(params_[i].tensor, [this, i](const Tensor&) { on_grad_ready(i); });
}

ZeroOptimizer::~ZeroOptimizer() {
  for (const Param& p : params_) remove_hook(p.tensor, p.hook);
}

std::vector<int64_t> ZeroOptimizer::build_flat(const std::vector<std::pair<std::string, Tensor>>& named) {
  NoGradGuard no_grad;
  const Device device = named.front().second.device();
  const DType dtype = named.front().second.dtype();
  // Group by group, registration order within a group (Note [ZeRO flat layout]).
  const std::vector<size_t> group = parameter_groups(named);
  std::vector<size_t> order(named.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return group[a] < group[b]; });
  std::vector<int64_t> starts;
  int64_t offset = 0;
  for (size_t i : order) {
    while (starts.size() <= group[i]) starts.push_back(offset);  // groups before it end here
    Param param;
    param.name = named[i].first;
    param.offset = offset;
    params_.push_back(std::move(param));
    offset = zero_round_up(offset + named[i].second.numel(), kZeroAlign);
    numel_ += named[i].second.numel();
  }
  padded_ = zero_round_up(std::max<int64_t>(offset, 1), int64_t(world()) * kZeroAlign);
  // Groups without parameters after the last one get no elements: the padding stays with it.
  while (starts.size() <= group_count()) starts.push_back(padded_);
  {
    MemoryCategoryScope scope(MemoryCategory::parameters);
    flat_ = zeros({padded_}, TensorOptions(dtype, device));
  }
  flat_.set_memory_category(MemoryCategory::parameters);
  std::map<std::string, size_t> index;  // name -> params_ position
  for (size_t k = 0; k < order.size(); ++k) {
    const Tensor& p = named[order[k]].second;
    index[params_[k].name] = k;
    raw::copy_(raw::narrow(flat_, 0, params_[k].offset, p.numel()), raw::reshape(p, {p.numel()}));
  }
  // Every replica starts from rank 0's values, whatever each rank's initialisation drew.
  if (options_.broadcast_parameters && data_parallel_size() > 1) {
    comm_->broadcast(flat_, 0);
    for (const auto& [name, b] : module_->named_buffers()) comm_->broadcast(b, 0);
  }
  module_->replace_parameters([&](const std::string& name, const Tensor& old) {
    auto it = index.find(name);
    if (it == index.end()) return old;
    return raw::view(raw::narrow(flat_, 0, params_[it->second].offset, old.numel()), old.shape());
  });
  for (const auto& [name, p] : module_->named_parameters()) {
    auto it = index.find(name);
    if (it == index.end()) continue;
    params_[it->second].tensor = p;
    add_known_parameter(p, group[order[it->second]]);
  }
  shard_ = padded_ / world();
  return starts;
}

std::vector<GroupRange> ZeroOptimizer::shard_groups(const std::vector<int64_t>& starts) const {
  std::vector<GroupRange> out;
  const int64_t begin = shard_begin(), end = begin + shard_;
  for (size_t g = 0; g + 1 < starts.size(); ++g) {
    const int64_t lo = std::clamp(starts[g], begin, end), hi = std::clamp(starts[g + 1], begin, end);
    out.push_back(GroupRange{lo - begin, hi - lo});
  }
  return out;
}

void ZeroOptimizer::build_buckets() {
  const int64_t W = world();
  auto add_bucket = [this](int64_t lo, int64_t len) {
    buckets_.emplace_back();
    buckets_.back().lo = lo;
    buckets_.back().len = len;
  };
  if (options_.stage <= 1) {
    const int64_t size = std::max<int64_t>(kZeroAlign, options_.reduce_bucket_size);
    for (int64_t hi = padded_; hi > 0; hi -= size) {
      const int64_t lo = std::max<int64_t>(0, hi - size);
      add_bucket(lo, hi - lo);
    }
  } else {
    const int64_t chunk = streams_gradients() ? stream_layout(shard_, configured_chunk()).bucket : configured_chunk();
    const int64_t chunks = (shard_ + chunk - 1) / chunk;
    for (int64_t k = chunks - 1; k >= 0; --k)
      add_bucket(k * chunk, std::min(chunk, shard_ - k * chunk));
  }
  const int64_t ranges = options_.stage <= 1 ? 1 : W;
  const int64_t stride = options_.stage <= 1 ? 0 : shard_;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    for (size_t i = 0; i < params_.size(); ++i) {
      const int64_t off = params_[i].offset, n = params_[i].tensor.numel();
      bool overlaps = false;
      for (int64_t r = 0; r < ranges && !overlaps; ++r) {
        const int64_t lo = r * stride + bucket.lo;
        overlaps = off < lo + bucket.len && lo < off + n;
      }
      if (!overlaps) continue;
      bucket.params.push_back(i);
      params_[i].buckets.push_back(b);
    }
  }
  reset_pass();
}

int64_t ZeroOptimizer::configured_chunk() const {
  return std::min(shard_, std::max<int64_t>(kZeroAlign, options_.reduce_bucket_size / world()));
}

void ZeroOptimizer::set_syncing(bool syncing) {
  ZT_CHECK(grads_arrived_ == 0 || syncing || options_.stage == 2, "ZeroOptimizer: a gradient reduction is in "
           "progress; call finish_gradient_reduction() before accumulating without it");
  syncing_ = syncing;
}

void ZeroOptimizer::on_grad_ready(size_t index) {
  const bool every_micro_step = options_.stage == 2;  // Note [ZeRO gradient reduction]
  if (!syncing_ && !every_micro_step) return;
  // A second gradient of one parameter: a backward that nobody closed with after_backward() has
  // ended, and this one starts.
  if (params_[index].arrived) finish_pass();
  params_[index].arrived = true;
  ++grads_arrived_;
  for (size_t b : params_[index].buckets) --buckets_[b].pending;
  launch_ready_buckets();
  if (every_micro_step) {
    retire_reductions(false);
    return;
  }
  // Polling the buckets in flight lets MPI progress them while backward goes on.
  for (size_t b = 0; b < next_bucket_; ++b)
    if (buckets_[b].work) buckets_[b].work->is_completed();
}

void ZeroOptimizer::launch_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) launch(buckets_[next_bucket_++]);
}

void ZeroOptimizer::pack(int64_t lo, int64_t len, int64_t ranges, const Tensor& dst) const {
  std::vector<Tensor> srcs;
  std::vector<int64_t> offsets;
  for (int64_t r = 0; r < ranges; ++r) {
    const int64_t begin = lo + r * shard_;
    for (const Param& p : params_) {
      const int64_t off = p.offset, n = p.tensor.numel();
      const int64_t a = std::max(begin, off), b = std::min(begin + len, off + n);
      if (a >= b) continue;
      const Tensor g = grad(p.tensor);
      if (!g.defined()) continue;  // no gradient in this pass: zeros
      srcs.push_back(raw::narrow(raw::reshape(g, {n}), 0, a - off, b - a));
      offsets.push_back(r * len + a - begin);
    }
  }
  raw::pack_flat_(dst, srcs, offsets);  // one launch, the padding and missing gradients zeroed
}

void ZeroOptimizer::launch(Bucket& b) {
  NoGradGuard no_grad;
  const int64_t W = world();
  if (options_.stage <= 1) {
    const Tensor dst = raw::narrow(flat_grad_, 0, b.lo, b.len);
    pack(b.lo, b.len, 1, dst);
    if (data_parallel_size() > 1) b.work = comm_->all_reduce_async(dst, CommReduceOp::avg);
  } else {
    // A step's first micro-step reduces straight into the device shard; otherwise into a buffer
    // that retire() adds into it or streams to the host.
    b.out = stream_ || accumulating_ ? Tensor() : raw::narrow(grad_shard_, 0, b.lo, b.len);
    MemoryCategoryScope scope(MemoryCategory::communication);
    if (!b.out.defined()) b.out = empty({b.len}, TensorOptions(dtype_, flat_.device()));
    if (W == 1) {
      pack(b.lo, b.len, 1, b.out);
    } else {
      b.buffer = empty({W * b.len}, TensorOptions(dtype_, flat_.device()));
      pack(b.lo, b.len, W, b.buffer);
      b.work = comm_->reduce_scatter_async(b.buffer, b.out, CommReduceOp::avg);
    }
  }
  // Packed: a gradient whose every bucket is packed is no longer needed.
  for (size_t i : b.params)
    if (--params_[i].unpacked == 0) set_grad(params_[i].tensor, Tensor());
}

void ZeroOptimizer::retire(Bucket& b) {
  NoGradGuard no_grad;
  if (b.work) b.work->wait();
  b.work.reset();
  b.buffer = Tensor();
  if (stream_) stream_->receive(b.out, b.lo, !accumulating_);
  else if (accumulating_) raw::binary_(BinaryOp::add, raw::narrow(grad_shard_, 0, b.lo, b.len), b.out);
  b.out = Tensor();
}

void ZeroOptimizer::retire_reductions(bool all) {
  while (next_retire_ < next_bucket_) {
    Bucket& b = buckets_[next_retire_];
    if (!all && b.work && !b.work->is_completed()) return;  // (the poll also lets MPI progress it)
    retire(b);
    ++next_retire_;
  }
}

bool ZeroOptimizer::finish_pass() {
  if (grads_arrived_ == 0) return false;
  while (next_bucket_ < buckets_.size()) launch(buckets_[next_bucket_++]);
  if (options_.stage == 2) {
    retire_reductions(true);
    accumulating_ = true;
  }
  for (Bucket& b : buckets_) {
    if (b.work) b.work->wait();
    b.work.reset();
    b.buffer = Tensor();
  }
  // The flat buffer (stage 1) or the shard (stage 2) now holds the gradients: the parameters'
  // own full-size gradients are dropped (those of a parameter with no bucket included).
  for (const Param& p : params_) set_grad(p.tensor, Tensor());
  reduced_ = true;
  reset_pass();
  return true;
}

void ZeroOptimizer::after_backward() {
  if (options_.stage == 2) finish_pass();
}

void ZeroOptimizer::finish_gradient_reduction() {
  if (options_.stage == 2) {
    finish_pass();
    if (stream_) stream_->drain();
    return;
  }
  if (syncing_) finish_pass();
}

void ZeroOptimizer::reset_pass() {
  for (Bucket& b : buckets_) b.pending = int64_t(b.params.size());
  for (Param& p : params_) {
    p.unpacked = int64_t(p.buckets.size());
    p.arrived = false;
  }
  next_bucket_ = 0;
  next_retire_ = 0;
  grads_arrived_ = 0;
}

std::vector<ZeroOptimizer::ParamRange> ZeroOptimizer::layout() const {
  std::vector<ParamRange> out;
  for (const Param& p : params_) out.push_back(ParamRange{p.name, p.tensor.shape(), p.offset, p.tensor.numel()});
  return out;
}

Tensor ZeroOptimizer::parameter_shard() const { return raw::narrow(flat_, 0, shard_begin(), shard_); }

std::vector<ShardPiece> ZeroOptimizer::shard_pieces() const {
  std::vector<ShardPiece> out;
  const int64_t begin = shard_begin();
  for (const Param& p : params_) {
    const int64_t n = p.tensor.numel();
    const int64_t a = std::max(begin, p.offset), b = std::min(begin + shard_, p.offset + n);
    if (a < b) out.push_back(ShardPiece{p.name, p.tensor.shape(), a - p.offset, a - begin, b - a});
  }
  return out;
}

Tensor ZeroOptimizer::gradient_shard() const {
  if (!reduced_) return Tensor();
  if (options_.stage == 2) return stream_ ? offload_gradient() : grad_shard_;
  return raw::narrow(flat_grad_, 0, int64_t(rank()) * shard_, shard_);
}

bool ZeroOptimizer::unscale_gradients() {
  finish_gradient_reduction();
  return unscale_into_master(gradient_shard());
}

void ZeroOptimizer::step(Optimizer& optimizer) {
  NoGradGuard no_grad;
  const Tensor mine = parameter_shard();
  step_shard(optimizer, mine);
  if (world() > 1) {
    MemoryCategoryScope scope(MemoryCategory::communication);
    comm_->all_gather(raw::clone(mine), flat_);
  }
  reduced_ = false;
  accumulating_ = false;
}

void ZeroOptimizer::zero_grad() {
  if (stream_) stream_->drain();  // no addition may land after the next step's first write
  for (const Param& p : params_) set_grad(p.tensor, Tensor());
  clear_master_grad();
  reduced_ = false;
  accumulating_ = false;
}

}  // namespace zt
