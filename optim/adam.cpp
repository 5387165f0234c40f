// Adam/AdamW update: the fused one-pass op (raw::adam_step_, ops.def adam_step) for contiguous
// f32/f64 tensors on any device, raw in-place ops otherwise (Note [Optimizer updates] in
// optim/optimizer.h); both apply step_with_gradients()' factors (Note [Folded gradient scaling]).
#include "optim/adam.h"

#include <cmath>

#include "core/ops.h"

namespace zt {

namespace {

struct AdamStep {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;
  int64_t step;
};

// The fused op (raw::adam_step_, one pass on any backend) takes contiguous f32/f64 params with
// state of their dtype and a grad of that dtype or f16/bf16 (f32 param), all on one device.
bool adam_fusable(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v) {
  const DType pt = p.dtype();
  const bool dtypes = (pt == DType::f32 || pt == DType::f64) && m.dtype() == pt && v.dtype() == pt &&
                      (g.dtype() == pt || (pt == DType::f32 && (g.dtype() == DType::f16 || g.dtype() == DType::bf16)));
  const Device d = p.device();
  return dtypes && g.device() == d && m.device() == d && v.device() == d && p.is_contiguous() &&
         g.is_contiguous() && m.is_contiguous() && v.is_contiguous() && g.numel() == p.numel();
}

void adam_raw(const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v,
              const AdamStep& s, const GradientScale& scale) {
  const double bc1 = 1.0 - std::pow(s.beta1, double(s.step));
  const double bc2 = 1.0 - std::pow(s.beta2, double(s.step));
  Tensor g = grad;
  if (g.dtype() != p.dtype() || scale.unscale != 1.0 || scale.clip != 1.0) {
    // The separate passes the fused op folds in (core/adam_scalars.h), on a copy: the caller's
    // gradient stays as it was.
    g = g.dtype() != p.dtype() ? raw::to(g, p.dtype()) : raw::clone(g);
    if (scale.unscale != 1.0) raw::binary_(BinaryOp::mul, g, scale.unscale);
    if (scale.clip != 1.0) raw::binary_(BinaryOp::mul, g, scale.clip);
  }
  if (s.weight_decay != 0) {
    if (s.decoupled) raw::binary_(BinaryOp::mul, p, 1.0 - s.lr * s.weight_decay);
    else g = raw::add(g, raw::mul(p, s.weight_decay));
  }
  raw::binary_(BinaryOp::mul, m, s.beta1);
  raw::binary_(BinaryOp::add, m, raw::mul(g, 1.0 - s.beta1));
  raw::binary_(BinaryOp::mul, v, s.beta2);
  raw::binary_(BinaryOp::add, v, raw::mul(raw::mul(g, g), 1.0 - s.beta2));
  Tensor denom = raw::add(raw::mul(raw::unary(UnaryOp::sqrt, v), 1.0 / std::sqrt(bc2)), s.eps);
  raw::binary_(BinaryOp::sub, p, raw::mul(raw::div(m, denom), s.lr / bc1));
}

}  // namespace

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options, bool decoupled)
    : Optimizer(std::move(groups)), options_(options), decoupled_weight_decay_(decoupled) {
  set_betas(options.beta1, options.beta2);
  ZT_CHECK(options.eps >= 0, "Adam: expected eps >= 0, found ", options.eps);
  fill_group_defaults(options.lr, options.weight_decay);
}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options)
    : Adam(std::move(groups), options, false) {}

Adam::Adam(const std::vector<Tensor>& params, const AdamOptions& options)
    : Adam(std::vector<ParamGroup>{ParamGroup{params}}, options, false) {}

void Adam::set_betas(double beta1, double beta2) {
  ZT_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
           "Adam: expected betas in [0, 1), found beta1=", beta1, " beta2=", beta2);
  options_.beta1 = beta1;
  options_.beta2 = beta2;
}

bool Adam::set_model_copy(const Tensor& param, const Tensor& copy) {
  ZT_CHECK(copy.numel() == param.numel() && copy.is_contiguous() && copy.device() == param.device() &&
               (copy.dtype() == DType::f16 || copy.dtype() == DType::bf16),
           "Adam::set_model_copy: expected a contiguous f16/bf16 tensor of ", param.numel(), " elements on ",
           param.device().str(), ", found ", copy.str());
  model_copies_[param.impl_ptr().get()] = copy;
  return true;
}

void Adam::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                  ParamState& state) {
  if (!state.buffers.contains("exp_avg")) {
    state.buffers.set("exp_avg", make_state_like(param));
    state.buffers.set("exp_avg_sq", make_state_like(param));
  }
  const Tensor& m = state.buffers.at("exp_avg");
  const Tensor& v = state.buffers.at("exp_avg_sq");
  AdamStep s{group.lr,           options_.beta1,          options_.beta2, options_.eps,
             group.weight_decay, decoupled_weight_decay_, state.step};
  auto copy = model_copies_.find(param.impl_ptr().get());
  if (adam_fusable(param, grad, m, v)) {
    raw::adam_step_(param, grad, m, v, s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, s.decoupled, s.step,
                    copy != model_copies_.end() && param.dtype() == DType::f32 ? copy->second : Tensor(),
                    gradient_scale());
    if (copy != model_copies_.end() && param.dtype() != DType::f32)
      raw::copy_(raw::reshape(copy->second, param.shape()), param);
    return;
  }
  adam_raw(param, grad, m, v, s, gradient_scale());
  if (copy != model_copies_.end()) raw::copy_(raw::reshape(copy->second, param.shape()), param);
}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options)
    : Adam(std::move(groups), options, true) {}

AdamW::AdamW(const std::vector<Tensor>& params, const AdamWOptions& options)
    : Adam(std::vector<ParamGroup>{ParamGroup{params}}, options, true) {}

}  // namespace zt
