// CPU fused Adam/AdamW step (ops.def: adam_step): one pass over contiguous buffers, in place,
// OpenMP over chunks. The per-element arithmetic is the fused loop optim/adam.cpp used before
// this op, operation for operation in the param's dtype, so results are bitwise the
// same; decay mode and the optional model copy are template parameters so the inner loop has no
// data-dependent branches.
#include <cmath>

#include "core/adam_scalars.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"

namespace zt::cpu {
namespace {

// kDecay: 0 none, 1 L2 (g += wd * p), 2 decoupled (p *= 1 - lr * wd). M: model copy element
// type, or void for none. All pointers (n).
// The loop is branch-free apart from sqrt's errno guard (the build keeps -fmath-errno, under which
// GCC does not vectorise it); the pass is memory-bound either way: 28 bytes per f32 element.
template <int kDecay, typename T, typename G, typename M>
void adam_range(T* __restrict p, const G* __restrict g, T* __restrict m, T* __restrict v, M* __restrict copy,
                int64_t begin, int64_t end, const AdamScalars<T>& s) {
  const T step_size = s.step_size, inv_bc2_sqrt = s.inv_bc2_sqrt, b1 = s.b1, b2 = s.b2;
  const T c1 = s.one_minus_b1, c2 = s.one_minus_b2, eps = s.eps, wd = s.wd, decay = s.decay;
  for (int64_t j = begin; j < end; ++j) {
    T gj = T(compute_t<G>(g[j]));
    T pj = p[j];
    if constexpr (kDecay == 1) gj += wd * pj;
    if constexpr (kDecay == 2) pj *= decay;
    const T mj = b1 * m[j] + c1 * gj;
    const T vj = b2 * v[j] + c2 * gj * gj;
    const T denom = std::sqrt(vj) * inv_bc2_sqrt + eps;
    pj -= step_size * mj / denom;
    m[j] = mj;
    v[j] = vj;
    p[j] = pj;
    if constexpr (!std::is_void_v<M>) copy[j] = M(float(pj));
  }
}

// Chunks of a few pages per OpenMP iteration: each thread streams its own contiguous span.
constexpr int64_t kChunk = 16384;

template <int kDecay, typename T, typename G, typename M>
void adam_all(T* p, const G* g, T* m, T* v, M* copy, int64_t n, const AdamScalars<T>& s) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > 4 * kChunk)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk, end = begin + kChunk < n ? begin + kChunk : n;
    adam_range<kDecay>(p, g, m, v, copy, begin, end, s);
  }
}

template <typename T, typename G, typename M>
void adam_dispatch_decay(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                         M* copy, int kind, const AdamScalars<T>& s) {
  T* p = typed_data<T>(param);
  const G* g = typed_data<G>(grad);
  T* m = typed_data<T>(exp_avg);
  T* v = typed_data<T>(exp_avg_sq);
  const int64_t n = param.numel();
  if (kind == 1) {
    adam_all<1>(p, g, m, v, copy, n, s);
  } else if (kind == 2) {
    adam_all<2>(p, g, m, v, copy, n, s);
  } else {
    adam_all<0>(p, g, m, v, copy, n, s);
  }
}

template <typename T, typename G>
void adam_dispatch_copy(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                        const Tensor& model_copy, int kind, const AdamScalars<T>& s) {
  if (!model_copy.defined()) {
    adam_dispatch_decay<T, G, void>(param, grad, exp_avg, exp_avg_sq, nullptr, kind, s);
  } else if (model_copy.dtype() == DType::bf16) {
    adam_dispatch_decay<T, G>(param, grad, exp_avg, exp_avg_sq, typed_data<BFloat16>(model_copy), kind, s);
  } else {
    ZT_CHECK(model_copy.dtype() == DType::f16, "adam_step: model_copy must be f16 or bf16, found ",
             dtype_name(model_copy.dtype()));
    adam_dispatch_decay<T, G>(param, grad, exp_avg, exp_avg_sq, typed_data<Half>(model_copy), kind, s);
  }
}

}  // namespace

void CpuBackend::adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                           const Tensor& exp_avg_sq, const Tensor& model_copy, double lr, double beta1,
                           double beta2, double eps, double weight_decay, bool decoupled, int64_t step) {
  ZT_CHECK(param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous(),
           "adam_step: expected contiguous buffers, found param ", param.str(), ", grad ", grad.str());
  const int kind = weight_decay == 0 ? 0 : (decoupled ? 2 : 1);
  const DType pt = param.dtype(), gt = grad.dtype();
  if (pt == DType::f64) {
    ZT_CHECK(gt == DType::f64, "adam_step: an f64 param takes an f64 grad, found ", dtype_name(gt));
    adam_dispatch_copy<double, double>(param, grad, exp_avg, exp_avg_sq, model_copy, kind,
                                       adam_scalars<double>(lr, beta1, beta2, eps, weight_decay, step));
    return;
  }
  ZT_CHECK(pt == DType::f32, "adam_step: param must be f32 or f64, found ", dtype_name(pt));
  const AdamScalars<float> s = adam_scalars<float>(lr, beta1, beta2, eps, weight_decay, step);
  if (gt == DType::f32) {
    adam_dispatch_copy<float, float>(param, grad, exp_avg, exp_avg_sq, model_copy, kind, s);
  } else if (gt == DType::bf16) {
    adam_dispatch_copy<float, BFloat16>(param, grad, exp_avg, exp_avg_sq, model_copy, kind, s);
  } else if (gt == DType::f16) {
    adam_dispatch_copy<float, Half>(param, grad, exp_avg, exp_avg_sq, model_copy, kind, s);
  } else {
    ZT_FAIL("adam_step: grad must be f32, f16 or bf16 for an f32 param, found ", dtype_name(gt));
  }
}

}  // namespace zt::cpu
