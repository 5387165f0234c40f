// Raw optimizer ops: the fused Adam/AdamW step (ops.def: adam_step). Checks the buffers agree
// (contiguous, one numel, one device, supported dtypes) and the hyperparameters are in range,
// then hands the whole update to the device's backend in one call.
#include <cmath>

#include "core/ops.h"
#include "core/ops_util.h"

namespace zt::raw {
namespace {

void check_buffer(const char* what, const Tensor& t, const Tensor& param) {
  ZT_CHECK(t.is_contiguous(), "adam_step_: ", what, " must be contiguous, found ", t.str(), " with strides ",
           shape_str(t.strides()));
  ZT_CHECK(t.numel() == param.numel(), "adam_step_: ", what, " must have param's ", param.numel(),
           " elements, found ", t.str());
}

}  // namespace

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled,
                int64_t step, const Tensor& model_copy, const GradientScale& grad_scale) {
  const char* op = "adam_step_";
  detail::check_same_device(op, {&param, &grad, &exp_avg, &exp_avg_sq});
  if (model_copy.defined()) detail::check_same_device(op, {&param, &model_copy});
  const DType pt = param.dtype();
  ZT_CHECK(pt == DType::f32 || pt == DType::f64, op, ": param must be f32 or f64 (the master copy), found ",
           dtype_name(pt));
  ZT_CHECK(exp_avg.dtype() == pt && exp_avg_sq.dtype() == pt, op, ": exp_avg and exp_avg_sq must have param's dtype ",
           dtype_name(pt), ", found ", dtype_name(exp_avg.dtype()), " and ", dtype_name(exp_avg_sq.dtype()));
  const DType gt = grad.dtype();
  ZT_CHECK(gt == pt || (pt == DType::f32 && (gt == DType::f16 || gt == DType::bf16)), op,
           ": grad must have param's dtype ", dtype_name(pt), " (or f16/bf16 for an f32 param), found ",
           dtype_name(gt));
  if (model_copy.defined())
    ZT_CHECK(model_copy.dtype() == DType::f16 || model_copy.dtype() == DType::bf16, op,
             ": model_copy must be f16 or bf16, found ", dtype_name(model_copy.dtype()));
  check_buffer("param", param, param);
  check_buffer("grad", grad, param);
  check_buffer("exp_avg", exp_avg, param);
  check_buffer("exp_avg_sq", exp_avg_sq, param);
  if (model_copy.defined()) check_buffer("model_copy", model_copy, param);
  ZT_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, op, ": expected betas in [0, 1), found beta1=",
           beta1, " beta2=", beta2);
  ZT_CHECK(eps >= 0, op, ": expected eps >= 0, found ", eps);
  ZT_CHECK(step >= 1, op, ": expected step >= 1 (the bias corrections divide by 1 - beta^step), found ", step);
  ZT_CHECK(std::isfinite(grad_scale.unscale) && std::isfinite(grad_scale.clip), op,
           ": expected finite gradient factors, found unscale=", grad_scale.unscale, " clip=", grad_scale.clip);
  for (const Tensor* t : {&grad, &exp_avg, &exp_avg_sq})
    ZT_CHECK(!detail::may_overlap(param, *t) && !detail::may_overlap(exp_avg, exp_avg_sq), op,
             ": param, grad, exp_avg and exp_avg_sq must not share memory");
  if (param.numel() == 0) return;
  backend_for(param.device())
      .adam_step(param, grad, exp_avg, exp_avg_sq, model_copy, lr, beta1, beta2, eps, weight_decay, decoupled, step,
                 grad_scale);
}

}  // namespace zt::raw
