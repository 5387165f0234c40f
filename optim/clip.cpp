// Gradient norms through raw reductions (any backend); the per-tensor partial results are
// combined on the host in double.
#include "optim/clip.h"

#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "core/ops.h"

namespace zt {

namespace {

// f16/bf16 gradients are reduced in f32 so the sum of squares cannot overflow.
Tensor reduction_view(const Tensor& g) {
  return (g.dtype() == DType::f64 || g.dtype() == DType::f32) ? g : raw::to(g, DType::f32);
}

}  // namespace

double grad_norm(const std::vector<Tensor>& params, double norm_type) {
  ZT_CHECK(norm_type > 0, "grad_norm: expected norm_type > 0, found ", norm_type);
  NoGradGuard no_grad;
  double acc = 0.0;
  for (const Tensor& p : params) {
    Tensor g = grad(p);
    if (!g.defined() || g.numel() == 0) continue;
    Tensor a = raw::unary(UnaryOp::abs, reduction_view(g));
    if (std::isinf(norm_type)) {
      acc = std::max(acc, raw::amax(a).item());
    } else if (norm_type == 2.0) {
      acc += raw::sum(raw::mul(a, a)).item();
    } else {
      acc += raw::sum(raw::binary(BinaryOp::pow, a, norm_type)).item();
    }
  }
  if (std::isinf(norm_type)) return acc;
  return norm_type == 2.0 ? std::sqrt(acc) : std::pow(acc, 1.0 / norm_type);
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  ZT_CHECK(max_norm >= 0, "clip_grad_norm_: expected max_norm >= 0, found ", max_norm);
  double total = grad_norm(params, norm_type);
  double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) {
    NoGradGuard no_grad;
    for (const Tensor& p : params) {
      Tensor g = grad(p);
      if (g.defined()) raw::binary_(BinaryOp::mul, g, coef);
    }
  }
  return total;
}

}  // namespace zt
