// The per-step scalars of the fused Adam/AdamW kernels, computed once on the host in double and
// rounded to the parameter's type, so every backend applies bit-identical constants.
#pragma once
#include <cmath>
#include <cstdint>

namespace zt {

// Factors an optimizer step applies to the gradient it reads, before anything else: g = g *
// unscale, then g = g * clip, each factor rounded to the parameter's type, each product rounded,
// each skipped when its rounded factor is 1. That is exactly what the in-place multiplies they
// replace (raw::binary_ mul by a double, computed in the tensor's type) did to an fp32 master
// gradient, so folding them into the step changes no bit (Note [Folded gradient scaling] in
// optim/optimizer.h). The fused Adam kernels (ops.def adam_step) apply them.
struct GradientScale {
  double unscale = 1.0;  // 1 / loss scale
  double clip = 1.0;     // the clipping coefficient, when below 1
};

template <typename T>
struct AdamScalars {
  T step_size, inv_bc2_sqrt, b1, b2, one_minus_b1, one_minus_b2, eps, wd, decay;
  T grad_unscale, grad_clip;  // GradientScale rounded to T; 1 means "skip"
};

template <typename T>
AdamScalars<T> adam_scalars(double lr, double beta1, double beta2, double eps, double wd, int64_t step,
                            const GradientScale& grad_scale = {}) {
  const double bc1 = 1.0 - std::pow(beta1, double(step));
  const double bc2 = 1.0 - std::pow(beta2, double(step));
  AdamScalars<T> s;
  s.step_size = T(lr / bc1);
  s.inv_bc2_sqrt = T(1.0 / std::sqrt(bc2));
  s.b1 = T(beta1);
  s.b2 = T(beta2);
  s.one_minus_b1 = T(1) - s.b1;  // rounded in T, as the reference loop does
  s.one_minus_b2 = T(1) - s.b2;
  s.eps = T(eps);
  s.wd = T(wd);
  s.decay = T(1.0 - lr * wd);
  s.grad_unscale = T(grad_scale.unscale);
  s.grad_clip = T(grad_scale.clip);
  return s;
}

}  // namespace zt
