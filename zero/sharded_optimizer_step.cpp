// ShardedOptimizer: the step of the shard, on the device or in the offloaded store, and the
// masters and optimizer state that checkpoints read and write (Notes [ZeRO parameter groups] and
// [ZeRO-Offload] in zero/sharded_optimizer.h).
#include <algorithm>
#include <set>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"
#include "optim/adam.h"
#include "zero/sharded_optimizer.h"

namespace zt {

namespace {

const char* const kMoments[] = {"exp_avg", "exp_avg_sq"};

AdamStateField moment_field(const std::string& name) {
  return name == "exp_avg" ? AdamStateField::exp_avg : AdamStateField::exp_avg_sq;
}

std::string state_key(size_t group, const std::string& name) {
  return "state." + std::to_string(group) + ".0." + name;
}

}  // namespace

void ShardedOptimizer::check_offloadable(const Optimizer& optimizer) const {
  ZT_CHECK(dynamic_cast<const Adam*>(&optimizer) != nullptr, "ZeRO-Offload: zero_optimization.offload_optimizer (",
           offload_device_name(options_.offload.device), ") steps the offloaded state with the CPU Adam, so the "
           "optimizer must be Adam or AdamW; this one is another kind (SGD?). Use Adam/AdamW or turn offload off");
}

void ShardedOptimizer::step_shard(Optimizer& optimizer, const Tensor& parameter_shard) {
  NoGradGuard no_grad;
  if (!offload_) {
    if (folded_grad_.defined()) {  // Note [ZeRO gradient scaling]
      ZT_CHECK(optimizer.supports_scaled_gradients(), "ZeRO step: the optimizer given to bind() scales gradients in "
               "its step, this one cannot; step with the bound optimizer");
      std::vector<std::vector<Tensor>> grads(groups_.size());
      for (size_t g = 0; g < groups_.size(); ++g)
        if (!optimizer.param_groups()[g].params.empty())  // every group's range, an empty one too
          grads[g] = {raw::narrow(folded_grad_, 0, groups_[g].offset, groups_[g].length)};
      optimizer.step_with_gradients(grads, grad_scale_);
    } else {
      optimizer.step();
    }
    if (separate_ && !optimizer_writes_weights_) raw::copy_(parameter_shard, master_);
    return;
  }
  check_offloadable(optimizer);
  // The optimizer's tensors have no gradient: it updates nothing but counts the step, as it would
  // have without offload (its step count is checkpointed).
  optimizer.step();
  const auto& adam = dynamic_cast<const Adam&>(optimizer);
  const bool decoupled = dynamic_cast<const AdamW*>(&optimizer) != nullptr;
  std::vector<AdamRange> ranges;
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (optimizer.param_groups()[g].params.empty()) continue;  // no parameters (see bind())
    AdamOptions hyper = adam.options();  // betas and eps (a momentum schedule may move the betas)
    hyper.lr = optimizer.param_groups()[g].lr;
    hyper.weight_decay = optimizer.param_groups()[g].weight_decay;
    ranges.push_back(AdamRange{groups_[g].offset, groups_[g].length, hyper, decoupled, ++offload_steps_[g]});
  }
  const bool direct = !host_weights_.defined();  // the shard is a contiguous host tensor
  const Tensor weights = direct ? parameter_shard : host_weights_.tensor();
  if (folded_grad_.defined()) {  // Note [ZeRO-Offload]: the shard as it is, scaled in the step
    step_offloaded_in_chunks(ranges, weights, direct ? Tensor() : parameter_shard);
    return;
  }
  offload_->step(master_grad_, ranges, weights);
  if (!direct) raw::copy_(parameter_shard, weights);
}

namespace {

// The parts of `ranges` inside elements [begin, begin + n).
std::vector<AdamRange> ranges_within(const std::vector<AdamRange>& ranges, int64_t begin, int64_t n) {
  std::vector<AdamRange> out;
  for (const AdamRange& r : ranges) {
    const int64_t lo = std::max(r.begin, begin), hi = std::min(r.begin + r.length, begin + n);
    if (lo < hi) out.push_back(AdamRange{lo, hi - lo, r.hyper, r.decoupled, r.step});
  }
  return out;
}

}  // namespace

// Note [ZeRO-Offload pipeline]: chunk c's gradient lands while chunk c - 1 is stepped, and its
// weights go back while c + 1 is. Every element's update is independent of the others (Note [CPU
// Adam kernels] in core/cpu/kernels_adam_simd.h), so the chunks give the bits of one call.
void ShardedOptimizer::step_offloaded_in_chunks(const std::vector<AdamRange>& ranges, const Tensor& weights,
                                                const Tensor& device_shard) {
  const bool grad_on_host = folded_grad_.device().is_cpu();  // the CPU backend: no copy
  const Tensor grad = grad_on_host ? folded_grad_ : host_grad_.tensor();
  // nvme steps the whole shard in one call: a call reads every sub-group of its file.
  const int64_t chunk = options_.offload.device == OffloadDevice::cpu
                            ? std::max<int64_t>(1, std::min(offload_->options().sub_group_size, kOffloadChunk))
                            : std::max<int64_t>(1, shard_);
  const bool weights_async = device_shard.defined() && device_shard.is_contiguous();
  std::vector<TransferHandle> arriving, leaving;
  for (int64_t begin = 0; begin < shard_ && !grad_on_host; begin += chunk) {
    const int64_t n = std::min(chunk, shard_ - begin);
    arriving.push_back(raw::copy_async(raw::narrow(grad, 0, begin, n), raw::narrow(folded_grad_, 0, begin, n)));
  }
  for (int64_t begin = 0, c = 0; begin < shard_; begin += chunk, ++c) {
    const int64_t n = std::min(chunk, shard_ - begin);
    if (!grad_on_host) arriving[size_t(c)]->wait();
    offload_->step(grad, ranges_within(ranges, begin, n), weights, grad_scale_);
    if (weights_async)
      leaving.push_back(raw::copy_async(raw::narrow(device_shard, 0, begin, n), raw::narrow(weights, 0, begin, n)));
  }
  for (const TransferHandle& t : leaving) t->wait();
  if (device_shard.defined() && !weights_async) raw::copy_(device_shard, weights);
}

int64_t ShardedOptimizer::offload_host_bytes() const {
  if (!offload_) return 0;
  return offload_->host_bytes() + host_grad_.bytes() + host_weights_.bytes();
}

Tensor ShardedOptimizer::master_values() const {
  if (!offload_) return master_;
  Tensor out = empty({shard_}, TensorOptions(DType::f32, Device::cpu()));
  offload_->read(AdamStateField::master, 0, out);
  return out;
}

void ShardedOptimizer::load_master_values(const Tensor& values) {
  NoGradGuard no_grad;
  ZT_CHECK(values.numel() == shard_, "ZeRO: expected ", shard_, " master values, found ", values.str());
  const Tensor flat = raw::reshape(values, {shard_});
  if (!offload_) {
    raw::copy_(master_, flat);
    return;
  }
  offload_->write(AdamStateField::master, 0, raw::contiguous(raw::to(raw::to(flat, Device::cpu()), DType::f32)));
}

OptimizerState ShardedOptimizer::optimizer_state(const Optimizer& optimizer) const {
  OptimizerState state = optimizer.state_dict();
  if (!offload_) return state;
  // The optimizer saw no gradient: its per-tensor entries are empty. The store's replace them.
  for (auto it = state.scalars.begin(); it != state.scalars.end();)
    it = it->first.rfind("state.", 0) == 0 ? state.scalars.erase(it) : std::next(it);
  state.tensors = TensorDict();
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (offload_steps_[g] == 0) continue;
    state.scalars[state_key(g, "step")] = double(offload_steps_[g]);
    for (const char* name : kMoments) {
      MemoryCategoryScope scope(MemoryCategory::optimizer_state);
      Tensor t = empty({groups_[g].length}, TensorOptions(DType::f32, Device::cpu()));
      offload_->read(moment_field(name), groups_[g].offset, t);
      state.tensors.set(state_key(g, name), t);
    }
  }
  return state;
}

void ShardedOptimizer::load_optimizer_state(Optimizer& optimizer, const OptimizerState& state) {
  NoGradGuard no_grad;
  if (!offload_) {
    optimizer.load_state_dict(state);
    return;
  }
  check_offloadable(optimizer);
  // Every tensor must be one of Adam's moments of an existing group, before anything changes.
  std::set<std::string> expected;
  for (size_t g = 0; g < groups_.size(); ++g)
    for (const char* name : kMoments) expected.insert(state_key(g, name));
  for (const auto& [key, t] : state.tensors) {
    ZT_CHECK(expected.count(key), "load_checkpoint: optimizer state \"", key, "\" is not an Adam moment of one of the ",
             groups_.size(), " groups (\"state.<group>.0.exp_avg\" or \"exp_avg_sq\"); the offloaded optimizer is "
             "Adam/AdamW, so the checkpoint must come from Adam/AdamW with the same parameter groups");
    const size_t g = size_t(std::stoul(key.substr(6)));
    ZT_CHECK(t.numel() == groups_[g].length, "load_checkpoint: optimizer state \"", key, "\" should hold ",
             groups_[g].length, " elements of this rank's shard, found ", t.str());
  }
  OptimizerState scalars;  // the optimizer keeps lr, weight decay and its step count
  for (const auto& [key, value] : state.scalars)
    if (key.rfind("state.", 0) != 0) scalars.scalars[key] = value;
  optimizer.load_state_dict(scalars);
  for (size_t g = 0; g < groups_.size(); ++g) {
    auto step = state.scalars.find(state_key(g, "step"));
    offload_steps_[g] = step == state.scalars.end() ? 0 : int64_t(step->second);
    for (const char* name : kMoments) {
      const Tensor* saved = state.tensors.find(state_key(g, name));
      const Tensor values = saved ? raw::contiguous(raw::to(raw::to(raw::reshape(*saved, {groups_[g].length}),
                                                                    Device::cpu()), DType::f32))
                                  : zeros({groups_[g].length});  // never stepped: zero moments
      offload_->write(moment_field(name), groups_[g].offset, values);
    }
  }
}

}  // namespace zt
