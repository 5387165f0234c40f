// MixedPrecisionOptimizer: fp32 masters for a bf16/f16 model, gradient unscaling, the non-finite
// check, clipping and the copy back to the model dtype (Note [Precision step] in
// zero/mixed_precision.h).
#include "zero/mixed_precision.h"

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "optim/clip.h"

namespace zt {

MixedPrecisionOptimizer::MixedPrecisionOptimizer(MixedPrecisionOptions options, LossScaler scaler)
    : params_(std::move(options.params)), scaler_(scaler) {
  ZT_CHECK(!params_.empty(), "MixedPrecisionOptimizer: expected at least one parameter, found none");
  bool all_f32 = true;
  for (const Tensor& p : params_) all_f32 = all_f32 && p.dtype() == DType::f32;
  separate_ = !all_f32 || !options.masters.empty();
  if (!separate_) {
    masters_ = params_;
    return;
  }
  ZT_CHECK(options.masters.empty() || options.masters.size() == params_.size(),
           "MixedPrecisionOptimizer: expected one master per parameter (", params_.size(), "), found ",
           options.masters.size());
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    Tensor master;
    if (options.masters.empty()) {
      master = raw::clone(raw::to(p, DType::f32));
      if (master.same_impl(p)) master = raw::clone(p);
    } else {
      master = options.masters[i];
      ZT_CHECK(master.dtype() == DType::f32 && master.shape() == p.shape() && master.device() == p.device(),
               "MixedPrecisionOptimizer: master ", i, " must be an f32 tensor shaped and placed like its "
               "parameter ", p.str(), ", found ", master.str());
      raw::copy_(master, p);  // the model's (rounded) values are the truth from here on
    }
    // ZeRO counts fp32 masters with the optimizer state (12 bytes per parameter for Adam).
    master.set_memory_category(MemoryCategory::optimizer_state);
    set_grad(master, Tensor());
    masters_.push_back(master);
    master_grads_.emplace_back();
  }
}

void MixedPrecisionOptimizer::bind(Optimizer& optimizer) const {
  ZT_CHECK(optimizer.step_count() == 0, "initialize: the optimizer has already taken ", optimizer.step_count(),
           " steps; its state belongs to other tensors. Pass a fresh optimizer");
  for (ParamGroup& group : optimizer.param_groups()) {
    for (Tensor& t : group.params) {
      bool found = false;
      for (size_t i = 0; i < params_.size() && !found; ++i) {
        if (t.same_impl(masters_[i]) || t.same_impl(params_[i])) {
          t = masters_[i];
          found = true;
        }
      }
      ZT_CHECK(found, "initialize: the optimizer holds a tensor ", t.str(),
               " that is not a parameter of the model");
    }
  }
}

bool MixedPrecisionOptimizer::unscale_gradients() {
  NoGradGuard no_grad;
  const double inverse = 1.0 / scaler_.scale();
  bool finite = true;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = grad(params_[i]);
    if (!g.defined()) continue;
    if (separate_) {
      Tensor& buffer = master_grads_[i];
      if (!buffer.defined()) {
        MemoryCategoryScope scope(MemoryCategory::gradients);
        buffer = Tensor::empty(masters_[i].shape(), {DType::f32, masters_[i].device()});
      }
      raw::copy_(buffer, g);
      g = buffer;
      set_grad(masters_[i], buffer);
    }
    if (inverse != 1.0) raw::binary_(BinaryOp::mul, g, inverse);
    // Checked for every gradient so the whole model is known clean, in any dtype.
    finite = raw::all_finite(g) && finite;
  }
  return finite;
}

double MixedPrecisionOptimizer::clip_gradients(double max_norm) {
  return clip_grad_norm_(masters_, max_norm);
}

void MixedPrecisionOptimizer::step(Optimizer& optimizer) {
  optimizer.step();
  if (!separate_) return;
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) raw::copy_(params_[i], masters_[i]);
}

void MixedPrecisionOptimizer::zero_grad() {
  for (size_t i = 0; i < params_.size(); ++i) {
    set_grad(params_[i], Tensor());
    if (!separate_) continue;
    set_grad(masters_[i], Tensor());
    // The fp32 gradients live for the step only (as DeepSpeed's), so between steps the model
    // states are the ZeRO paper's 16 bytes per parameter.
    master_grads_[i] = Tensor();
  }
}

}  // namespace zt
