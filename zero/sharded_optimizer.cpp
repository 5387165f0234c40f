// ShardedOptimizer: bind, masters, unscale and clipping shared by ZeRO stages 1-3
// (zero/sharded_optimizer.h).
#include "zero/sharded_optimizer.h"

#include <cmath>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"

namespace zt {

ShardedOptimizer::ShardedOptimizer(std::shared_ptr<Module> module, std::shared_ptr<Communicator> comm,
                                   LossScaler scaler, const std::vector<Tensor>& originals)
    : module_(std::move(module)), comm_(std::move(comm)), scaler_(scaler) {
  ZT_CHECK(module_ != nullptr, "ZeRO: expected a module, found null");
  for (const Tensor& t : originals) known_.push_back(t.impl_ptr().get());
}

std::vector<std::pair<std::string, Tensor>> ShardedOptimizer::trainable_parameters(const char* who) const {
  std::vector<std::pair<std::string, Tensor>> named;
  for (auto& [name, p] : module_->named_parameters())
    if (requires_grad(p)) named.emplace_back(name, p);
  ZT_CHECK(!named.empty(), who, ": the model has no parameters that require grad");
  const Tensor& first = named.front().second;
  for (const auto& [name, p] : named)
    ZT_CHECK(p.dtype() == first.dtype() && p.device() == first.device(), who,
             ": expected every parameter in one dtype and on one device (", dtype_name(first.dtype()), ", ",
             first.device().str(), "), found '", name, "' ", p.str());
  return named;
}

void ShardedOptimizer::init_master(const Tensor& parameter_shard) {
  shard_ = parameter_shard.numel();
  dtype_ = parameter_shard.dtype();
  separate_ = dtype_ != DType::f32;
  if (!separate_) {
    master_ = parameter_shard;
    return;
  }
  NoGradGuard no_grad;
  MemoryCategoryScope scope(MemoryCategory::optimizer_state);
  master_ = raw::clone(raw::to(parameter_shard, DType::f32));
  master_.set_memory_category(MemoryCategory::optimizer_state);
}

void ShardedOptimizer::bind(Optimizer& optimizer) const {
  ZT_CHECK(optimizer.step_count() == 0, "initialize: the optimizer has already taken ", optimizer.step_count(),
           " steps; its state belongs to other tensors. Pass a fresh optimizer");
  ZT_CHECK(optimizer.param_groups().size() == 1, "initialize: ZeRO stage ", stage(),
           " steps one flat shard, so the optimizer must have one parameter group; found ",
           optimizer.param_groups().size());
  ParamGroup& group = optimizer.param_groups().front();
  for (const Tensor& t : group.params) {
    bool found = t.same_impl(master_);
    for (const TensorImpl* k : known_) found = found || t.impl_ptr().get() == k;
    ZT_CHECK(found, "initialize: the optimizer holds a tensor ", t.str(), " that is not a parameter of the model");
  }
  group.params = {master_};
}

bool ShardedOptimizer::unscale_into_master(const Tensor& grad_shard) {
  NoGradGuard no_grad;
  const Device device = master_.device();
  if (separate_) {
    if (!master_grad_.defined()) {
      MemoryCategoryScope scope(MemoryCategory::gradients);
      master_grad_ = empty({shard_}, TensorOptions(DType::f32, device));
    }
    if (grad_shard.defined()) raw::copy_(master_grad_, grad_shard);
    else raw::fill_(master_grad_, 0.0);
  } else if (grad_shard.defined()) {
    master_grad_ = grad_shard;
  } else {
    MemoryCategoryScope scope(MemoryCategory::gradients);
    master_grad_ = zeros({shard_}, TensorOptions(DType::f32, device));
  }
  const double inverse = 1.0 / scaler_.scale();
  if (inverse != 1.0) raw::binary_(BinaryOp::mul, master_grad_, inverse);
  set_grad(master_, master_grad_);
  // Every rank must agree on skipping: the flag is the maximum over ranks of "this shard is bad".
  Tensor bad = full({1}, raw::all_finite(master_grad_) ? 0.0 : 1.0, TensorOptions(DType::f32, Device::cpu()));
  if (world() > 1) comm_->all_reduce(bad, CommReduceOp::max);
  return bad.item() == 0.0;
}

double ShardedOptimizer::clip_gradients(double max_norm) {
  ZT_CHECK(max_norm >= 0, "ZeRO clip_gradients: expected max_norm >= 0, found ", max_norm);
  NoGradGuard no_grad;
  ZT_CHECK(master_grad_.defined(), "ZeRO clip_gradients: call unscale_gradients() first");
  const Tensor g64 = raw::to(master_grad_, DType::f64);
  Tensor sum_sq = raw::to(raw::reshape(raw::reduce(ReduceOp::sum, raw::mul(g64, g64), {0}), {1}), Device::cpu());
  if (world() > 1) comm_->all_reduce(sum_sq, CommReduceOp::sum);
  const double total = std::sqrt(sum_sq.item());
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) raw::binary_(BinaryOp::mul, master_grad_, coef);
  return total;
}

void ShardedOptimizer::clear_master_grad(bool keep_buffer) {
  set_grad(master_, Tensor());
  if (!separate_ || !keep_buffer) master_grad_ = Tensor();
}

}  // namespace zt
