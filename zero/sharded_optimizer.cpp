// ShardedOptimizer: groups, bind, masters, unscale and clipping shared by ZeRO stages 1-3
// (zero/sharded_optimizer.h). The step of the shard and the state checkpoints read are in
// sharded_optimizer_step.cpp.
#include "zero/sharded_optimizer.h"

#include <cmath>
#include <map>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"

namespace zt {

std::vector<std::vector<std::string>> parameter_group_names(const Module& module, const Optimizer& optimizer) {
  std::map<const TensorImpl*, std::string> names;
  for (const auto& [name, p] : module.named_parameters()) names.emplace(p.impl_ptr().get(), name);
  std::vector<std::vector<std::string>> out;
  for (const ParamGroup& group : optimizer.param_groups()) {
    out.emplace_back();
    for (const Tensor& t : group.params) {
      auto it = names.find(t.impl_ptr().get());
      if (it != names.end()) out.back().push_back(it->second);
    }
  }
  return out;
}

ShardedOptimizer::ShardedOptimizer(std::shared_ptr<Module> module, std::shared_ptr<Communicator> comm,
                                   LossScaler scaler, const std::vector<Tensor>& originals, ShardedOptions options)
    : module_(std::move(module)), comm_(std::move(comm)), scaler_(scaler), options_(std::move(options)) {
  ZT_CHECK(module_ != nullptr, "ZeRO: expected a module, found null");
  std::map<std::string, size_t> group_of;
  for (size_t g = 0; g < options_.param_groups.size(); ++g) {
    for (const std::string& name : options_.param_groups[g]) {
      auto [it, fresh] = group_of.emplace(name, g);
      ZT_CHECK(fresh, "ZeRO: parameter '", name, "' is in optimizer groups ", it->second, " and ", g,
               "; expected each parameter in one group");
    }
  }
  // Originals come in named_parameters() order (the engine's f32 parameters before the dtype
  // move): each takes its parameter's group.
  const auto named = module_->named_parameters();
  for (size_t i = 0; i < originals.size(); ++i) {
    size_t group = kAnyGroup;
    if (originals.size() == named.size()) {
      auto it = group_of.find(named[i].first);
      group = options_.param_groups.empty() ? 0 : it != group_of.end() ? it->second : kAnyGroup;
    }
    known_.push_back({originals[i].impl_ptr().get(), group});
  }
}

ShardedOptimizer::~ShardedOptimizer() = default;

std::vector<std::pair<std::string, Tensor>> ShardedOptimizer::trainable_parameters(const char* who) {
  std::vector<std::pair<std::string, Tensor>> named;
  for (auto& [name, p] : module_->named_parameters())
    if (requires_grad(p)) named.emplace_back(name, p);
  ZT_CHECK(!named.empty(), who, ": the model has no parameters that require grad");
  const Tensor& first = named.front().second;
  for (const auto& [name, p] : named)
    ZT_CHECK(p.dtype() == first.dtype() && p.device() == first.device(), who,
             ": expected every parameter in one dtype and on one device (", dtype_name(first.dtype()), ", ",
             first.device().str(), "), found '", name, "' ", p.str());
  dtype_ = first.dtype();
  device_ = first.device();
  return named;
}

std::vector<size_t> ShardedOptimizer::parameter_groups(const std::vector<std::pair<std::string, Tensor>>& named) const {
  std::vector<size_t> out(named.size(), 0);
  if (options_.param_groups.empty()) return out;
  std::map<std::string, size_t> group_of;
  for (size_t g = 0; g < options_.param_groups.size(); ++g)
    for (const std::string& name : options_.param_groups[g]) group_of.emplace(name, g);
  for (size_t i = 0; i < named.size(); ++i) {
    auto it = group_of.find(named[i].first);
    ZT_CHECK(it != group_of.end(), "ZeRO: parameter '", named[i].first, "' requires grad but is in none of the ",
             options_.param_groups.size(), " optimizer groups; ZeRO steps every trainable parameter, so add it to a "
             "group or set requires_grad to false");
    out[i] = it->second;
  }
  return out;
}

void ShardedOptimizer::start_masters_from(const std::vector<Tensor>& originals) {
  const auto named = module_->named_parameters();
  if (!separate_ || originals.size() != named.size()) return;
  NoGradGuard no_grad;
  std::map<std::string, Tensor> original_of;
  for (size_t i = 0; i < named.size(); ++i)
    if (originals[i].dtype() == DType::f32 && originals[i].numel() == named[i].second.numel())
      original_of.emplace(named[i].first, raw::reshape(originals[i], {originals[i].numel()}));
  // cpu offload: the store's master in place, not a 4 bytes/parameter host copy of it.
  const Tensor in_place = offload_ ? offload_->host_master() : master_;
  Tensor values = in_place.defined() ? in_place : master_values();
  const Tensor weights = parameter_shard();
  bool changed = false;
  for (const ShardPiece& p : shard_pieces()) {
    auto it = original_of.find(p.name);
    if (it == original_of.end()) continue;
    const Tensor exact = raw::to(raw::narrow(it->second, 0, p.param_offset, p.length), weights.device());
    const Tensor held = raw::narrow(weights, 0, p.shard_offset, p.length);
    if (raw::sum(raw::to(raw::binary(BinaryOp::ne, raw::to(exact, dtype_), held), DType::f32)).item() != 0) continue;
    raw::copy_(raw::narrow(values, 0, p.shard_offset, p.length), exact);
    changed = true;
  }
  if (changed && !in_place.defined()) load_master_values(values);
}

void ShardedOptimizer::release_group_placeholders() {
  if (!offload_) return;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Tensor one = zeros({1}, TensorOptions(dtype_, Device::cpu()));
    group_masters_[g] = raw::expand(one, {groups_[g].length});
  }
}

void ShardedOptimizer::add_known_parameter(const Tensor& t, size_t group) {
  known_.push_back({t.impl_ptr().get(), group});
}

void ShardedOptimizer::init_master(const Tensor& parameter_shard, std::vector<GroupRange> groups) {
  shard_ = parameter_shard.numel();
  groups_ = std::move(groups);
  ZT_CHECK(groups_.size() == group_count(), "ZeRO: expected ", group_count(), " group ranges, found ", groups_.size());
  NoGradGuard no_grad;
  if (options_.offload_optimizer) {
    OffloadOptions o = options_.offload;
    o.rank = rank();
    offload_ = std::make_unique<OffloadedAdamState>(raw::to(parameter_shard, Device::cpu()), o);
    // In the compute dtype: the CPU Adam reads it with its unscale and clip factors (Note [ZeRO-Offload]).
    host_grad_ = HostTensor(shard_, dtype_, transfer_allocator(), MemoryCategory::gradients,
                            "the offloaded gradient shard");
    if (!parameter_shard.device().is_cpu() || !parameter_shard.is_contiguous())
      host_weights_ = HostTensor(shard_, dtype_, transfer_allocator(), MemoryCategory::communication,
                                 "the host copy of the updated parameter shard");
    offload_steps_.assign(groups_.size(), 0);
    separate_ = true;
    for (const GroupRange& g : groups_) group_masters_.push_back(raw::narrow(parameter_shard, 0, g.offset, g.length));
    return;
  }
  // A shard kept on the host (ZeRO-3 offload_param) still steps on the device with its gradients.
  separate_ = dtype_ != DType::f32 || parameter_shard.device() != device_;
  if (!separate_) {
    master_ = parameter_shard;
  } else {
    MemoryCategoryScope scope(MemoryCategory::optimizer_state);
    master_ = raw::clone(raw::to(raw::to(parameter_shard, DType::f32), device_));
    master_.set_memory_category(MemoryCategory::optimizer_state);
  }
  for (const GroupRange& g : groups_) group_masters_.push_back(raw::narrow(master_, 0, g.offset, g.length));
}

void ShardedOptimizer::bind(Optimizer& optimizer) const {
  ZT_CHECK(optimizer.step_count() == 0, "initialize: the optimizer has already taken ", optimizer.step_count(),
           " steps; its state belongs to other tensors. Pass a fresh optimizer");
  const size_t groups = optimizer.param_groups().size();
  ZT_CHECK(groups == group_count(), "initialize: ZeRO stage ", stage(), " laid the parameters out for ",
           group_count(), " optimizer parameter group(s) but the optimizer has ", groups,
           "; build the ZeRO optimizer with the optimizer's groups (ShardedOptions::param_groups)");
  if (offloaded()) check_offloadable(optimizer);
  for (size_t g = 0; g < groups; ++g) {
    for (const Tensor& t : optimizer.param_groups()[g].params) {
      bool found = t.same_impl(group_masters_[g]);
      for (const Known& k : known_) {
        if (k.impl != t.impl_ptr().get()) continue;
        ZT_CHECK(k.group == g || k.group == kAnyGroup, "initialize: optimizer group ", g, " holds a parameter ",
                 t.str(), " that ZeRO laid out in group ", k.group, "; the groups must be the ones the layout was "
                 "built with");
        found = true;
      }
      ZT_CHECK(found, "initialize: the optimizer holds a tensor ", t.str(), " that is not a parameter of the model");
    }
  }
  for (size_t g = 0; g < groups; ++g) {
    ParamGroup& group = optimizer.param_groups()[g];
    // An empty group (nanoGPT's no-decay group of a model without biases) has no parameters in the
    // layout either: it stays empty, as the optimizer sized its state for it.
    if (group.params.empty()) {
      ZT_CHECK(groups_[g].length == 0, "initialize: optimizer group ", g, " is empty but ZeRO laid out ",
               groups_[g].length, " elements of this rank's shard in it");
      continue;
    }
    group.params = {group_masters_[g]};
  }
  // The optimizer writes the compute-dtype weights in its own pass where it can (Adam/AdamW's
  // fused step), so step_shard copies nothing back from the masters.
  optimizer_writes_weights_ = false;
  const Tensor weights = separate_ && !offloaded() && parameter_shard_resident() ? parameter_shard() : Tensor();
  // (Not for a parameter shard kept in host memory by offload_param while the masters are on the GPU.)
  if (weights.defined() && weights.device() == master_.device() && weights.is_contiguous()) {
    bool all = true;
    for (size_t g = 0; g < groups; ++g) {
      if (groups_[g].length == 0) continue;
      all = optimizer.set_model_copy(group_masters_[g], raw::narrow(weights, 0, groups_[g].offset, groups_[g].length)) &&
            all;
    }
    optimizer_writes_weights_ = all;
  }
  // Note [ZeRO gradient scaling]; under offload the store's CPU Adam steps, and it always can.
  optimizer_scales_gradients_ = separate_ && (offloaded() || optimizer.supports_scaled_gradients());
}

bool ShardedOptimizer::folds_scaling(const Tensor& grad_shard, double inverse) const {
  // The f32 masters take f32, bf16 and f16 gradients as they are (optim/optimizer.h).
  const bool dtype = dtype_ == DType::f32 || dtype_ == DType::bf16 || dtype_ == DType::f16;
  if (!optimizer_scales_gradients_ || !dtype) return false;
  // Only a power of two rescales the shard's sum of squares exactly (frexp: mantissa 0.5).
  int exponent = 0;
  if (std::frexp(inverse, &exponent) != 0.5) return false;
  // Under offload the shard may already be the host buffer the CPU Adam reads (ZeRO-2 streaming).
  const bool place = grad_shard.device() == device_ || (offload_ && grad_shard.same_impl(host_grad_.tensor()));
  return !grad_shard.defined() || (grad_shard.dtype() == dtype_ && place && grad_shard.is_contiguous() &&
                                   grad_shard.numel() == shard_);
}

bool ShardedOptimizer::unscale_into_master(const Tensor& grad_shard) {
  NoGradGuard no_grad;
  const double inverse = 1.0 / scaler_.scale();
  folded_grad_ = Tensor();
  grad_scale_ = GradientScale{};
  // One reduction serves the skip decision and the clipping norm: the sum of squares over every
  // rank's shard (squares and sum in double, one pass with no squared copy, the sum rounded to
  // f32; all-reduced so that every rank decides alike) is finite exactly when every gradient is,
  // short of a sum beyond f32's range (3.4e38), which counts as an overflow too.
  Tensor sum_sq;  // (1,) f64: this rank's
  if (folds_scaling(grad_shard, inverse)) {
    master_grad_ = Tensor();
    if (grad_shard.defined()) {
      folded_grad_ = grad_shard;
    } else {
      MemoryCategoryScope scope(MemoryCategory::gradients);
      folded_grad_ = zeros({shard_}, TensorOptions(dtype_, device_));
    }
    grad_scale_.unscale = inverse;
    // Note [ZeRO gradient scaling]: the double sum over the scaled shard times 1 / scale^2 (a power
    // of two: exact) is the double sum over the unscaled fp32 copy, short of products below f32's
    // normal range (squares under 2^-252); rounded to f32 as that reduction's result was.
    sum_sq = raw::reshape(raw::reduce(ReduceOp::sum_squares, folded_grad_, {0}, false, DType::f64), {1});
    if (inverse != 1.0) raw::binary_(BinaryOp::mul, sum_sq, inverse * inverse);
    sum_sq = raw::to(raw::to(sum_sq, DType::f32), DType::f64);
  } else {
    unscale_into_fp32(grad_shard, inverse);
    sum_sq = raw::reshape(raw::to(raw::reduce(ReduceOp::sum_squares, master_grad_, {0}), DType::f64), {1});
  }
  // On the model's device, where collectives run.
  sum_sq = raw::to(sum_sq, device_);
  if (world() > 1) comm_->all_reduce(sum_sq, CommReduceOp::sum);
  grad_sum_sq_ = raw::to(sum_sq, Device::cpu()).item();
  return std::isfinite(grad_sum_sq_);
}

void ShardedOptimizer::unscale_into_fp32(const Tensor& grad_shard, double inverse) {
  if (offload_ || separate_) {
    if (offload_) {
      // The compute-dtype host buffer cannot hold the fp32 values: this step (a loss scale that is
      // no power of two) takes an fp32 one of its own.
      MemoryCategoryScope scope(MemoryCategory::gradients);
      master_grad_ = host_grad_.tensor().dtype() == DType::f32 ? host_grad_.tensor()
                                                                : empty({shard_}, TensorOptions(DType::f32, Device::cpu()));
    } else if (!master_grad_.defined()) {
      MemoryCategoryScope scope(MemoryCategory::gradients);
      master_grad_ = empty({shard_}, TensorOptions(DType::f32, device_));
    }
    if (!grad_shard.defined()) raw::fill_(master_grad_, 0.0);
    else if (!grad_shard.same_impl(master_grad_)) raw::copy_(master_grad_, grad_shard);  // (streamed f32: in place)
  } else if (grad_shard.defined()) {
    master_grad_ = grad_shard;
  } else {
    MemoryCategoryScope scope(MemoryCategory::gradients);
    master_grad_ = zeros({shard_}, TensorOptions(DType::f32, device_));
  }
  if (inverse != 1.0) raw::binary_(BinaryOp::mul, master_grad_, inverse);
  // Every group gets its gradient, an empty one too (Note [ZeRO parameter groups]).
  if (!offload_)
    for (size_t g = 0; g < groups_.size(); ++g)
      set_grad(group_masters_[g], raw::narrow(master_grad_, 0, groups_[g].offset, groups_[g].length));
}

double ShardedOptimizer::clip_gradients(double max_norm) {
  ZT_CHECK(max_norm >= 0, "ZeRO clip_gradients: expected max_norm >= 0, found ", max_norm);
  NoGradGuard no_grad;
  ZT_CHECK(master_grad_.defined() || folded_grad_.defined(), "ZeRO clip_gradients: call unscale_gradients() first");
  const double total = std::sqrt(grad_sum_sq_);  // unscale_into_master's global sum of squares
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) {
    if (folded_grad_.defined()) grad_scale_.clip = coef;  // the optimizer's step applies it
    else raw::binary_(BinaryOp::mul, master_grad_, coef);
  }
  return total;
}

void ShardedOptimizer::clear_master_grad() {
  for (const Tensor& m : group_masters_) set_grad(m, Tensor());
  // A separate fp32 master gradient lives for the step only, as in DeepSpeed, so the model states
  // between steps are the ZeRO paper's. The offloaded host buffer stays: it is reused every step.
  if (!offload_ || !master_grad_.same_impl(host_grad_.tensor())) master_grad_ = Tensor();
  folded_grad_ = Tensor();
  grad_scale_ = GradientScale{};
}

}  // namespace zt
