// CUDA fused Adam/AdamW step (ops.def: adam_step): one pass over contiguous buffers, 16-byte
// loads of param/exp_avg/exp_avg_sq (grad and the model copy at the same element count), the
// update (of the gradient times its optional factors) and the optional f16/bf16 model copy
// written in the same pass. The fewest bytes: read p, g, m, v and write p, m, v (+ copy): 28
// bytes per f32 element with an f32 grad, 26 with a bf16 one.
// The arithmetic uses explicitly rounded intrinsics (no FMA contraction) in the CPU kernel's
// order (core/cpu/kernels_adam.cpp), so results match the CPU bit for bit; the kernel is
// memory-bound, so the lost FMAs cost nothing.
#include <cmath>

#include "core/adam_scalars.h"
#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/elementwise.cuh"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {
namespace {

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ float sqrt_rn(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ double sqrt_rn(double a) { return __dsqrt_rn(a); }

// One element's update; kDecay: 0 none, 1 L2 (g += wd * p), 2 decoupled (p *= 1 - lr * wd). The
// gradient factors come first, each skipped when 1 (core/adam_scalars.h); the test is uniform
// over the grid, so no warp diverges.
template <int kDecay, typename T>
__device__ __forceinline__ void adam_element(T& p, T g, T& m, T& v, const AdamScalars<T>& s) {
  if (s.grad_unscale != T(1)) g = mul_rn(g, s.grad_unscale);
  if (s.grad_clip != T(1)) g = mul_rn(g, s.grad_clip);
  if constexpr (kDecay == 1) g = add_rn(g, mul_rn(s.wd, p));
  if constexpr (kDecay == 2) p = mul_rn(p, s.decay);
  m = add_rn(mul_rn(s.b1, m), mul_rn(s.one_minus_b1, g));
  v = add_rn(mul_rn(s.b2, v), mul_rn(mul_rn(s.one_minus_b2, g), g));
  const T denom = add_rn(mul_rn(sqrt_rn(v), s.inv_bc2_sqrt), s.eps);
  p = sub_rn(p, div_rn(mul_rn(s.step_size, m), denom));
}

// The optional model copy: M = void writes nothing.
template <typename M, typename T>
__device__ __forceinline__ void store_copy(M* copy, int64_t i, T p) {
  if constexpr (!std::is_void_v<M>) copy[i] = to_element<M>(float(p));
}

// V elements per thread per iteration (16 bytes of T); the tail past the last full vector one
// element per thread. All pointers (n), 16-byte aligned when V > 1.
template <int V, int kDecay, typename T, typename G, typename M>
__global__ void adam_kernel(T* __restrict__ p, const G* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                            M* __restrict__ copy, int64_t n, AdamScalars<T> s) {
  const int64_t nvec = n / V;
  ZT_GRID_STRIDE_LOOP(i, nvec) {
    Vec<T, V> pv = reinterpret_cast<const Vec<T, V>*>(p)[i];
    const Vec<G, V> gv = reinterpret_cast<const Vec<G, V>*>(g)[i];
    Vec<T, V> mv = reinterpret_cast<const Vec<T, V>*>(m)[i];
    Vec<T, V> vv = reinterpret_cast<const Vec<T, V>*>(v)[i];
#pragma unroll
    for (int j = 0; j < V; ++j) adam_element<kDecay>(pv.v[j], T(to_compute(gv.v[j])), mv.v[j], vv.v[j], s);
    reinterpret_cast<Vec<T, V>*>(p)[i] = pv;
    reinterpret_cast<Vec<T, V>*>(m)[i] = mv;
    reinterpret_cast<Vec<T, V>*>(v)[i] = vv;
    if constexpr (!std::is_void_v<M>) {
      Vec<M, V> cv;
#pragma unroll
      for (int j = 0; j < V; ++j) cv.v[j] = to_element<M>(float(pv.v[j]));
      reinterpret_cast<Vec<M, V>*>(copy)[i] = cv;
    }
  }
  ZT_GRID_STRIDE_LOOP(t, n - nvec * V) {
    const int64_t i = nvec * V + t;
    T pi = p[i], mi = m[i], vi = v[i];
    adam_element<kDecay>(pi, T(to_compute(g[i])), mi, vi, s);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    store_copy(copy, i, pi);
  }
}

// Each pointer aligned to its vector's size (V elements of its own type); null (no copy) passes.
template <typename P>
bool aligned_to(const P* ptr, int v) {
  if constexpr (std::is_void_v<P>) {
    return true;
  } else {
    return reinterpret_cast<uintptr_t>(ptr) % (sizeof(P) * size_t(v)) == 0;
  }
}

template <int kDecay, typename T, typename G, typename M>
void launch_adam(T* p, const G* g, T* m, T* v, M* copy, int64_t n, const AdamScalars<T>& s, cudaStream_t stream) {
  constexpr int kV = 16 / int(sizeof(T));
  if (aligned_to(p, kV) && aligned_to(g, kV) && aligned_to(m, kV) && aligned_to(v, kV) && aligned_to(copy, kV)) {
    adam_kernel<kV, kDecay><<<grid_for(n / kV + 1), kBlockSize, 0, stream>>>(p, g, m, v, copy, n, s);
  } else {
    adam_kernel<1, kDecay><<<grid_for(n), kBlockSize, 0, stream>>>(p, g, m, v, copy, n, s);
  }
  ZT_CUDA_LAUNCH_CHECK("adam_kernel");
}

template <typename T, typename G, typename M>
void adam_decay(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq, M* copy,
                int kind, const AdamScalars<T>& s, cudaStream_t stream) {
  T* p = device_data<T>(param);
  const G* g = device_data<G>(grad);
  T* m = device_data<T>(exp_avg);
  T* v = device_data<T>(exp_avg_sq);
  const int64_t n = param.numel();
  if (kind == 1) {
    launch_adam<1>(p, g, m, v, copy, n, s, stream);
  } else if (kind == 2) {
    launch_adam<2>(p, g, m, v, copy, n, s, stream);
  } else {
    launch_adam<0>(p, g, m, v, copy, n, s, stream);
  }
}

template <typename T, typename G>
void adam_copy(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& model_copy, int kind, const AdamScalars<T>& s, cudaStream_t stream) {
  if (!model_copy.defined()) {
    adam_decay<T, G, void>(param, grad, exp_avg, exp_avg_sq, nullptr, kind, s, stream);
  } else if (model_copy.dtype() == DType::bf16) {
    adam_decay<T, G>(param, grad, exp_avg, exp_avg_sq, device_data<BFloat16>(model_copy), kind, s, stream);
  } else {
    ZT_CHECK(model_copy.dtype() == DType::f16, "adam_step: model_copy must be f16 or bf16, found ",
             dtype_name(model_copy.dtype()));
    adam_decay<T, G>(param, grad, exp_avg, exp_avg_sq, device_data<Half>(model_copy), kind, s, stream);
  }
}

}  // namespace

void CudaBackend::adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                            const Tensor& exp_avg_sq, const Tensor& model_copy, double lr, double beta1,
                            double beta2, double eps, double weight_decay, bool decoupled, int64_t step,
                            const GradientScale& grad_scale) {
  ZT_CHECK(param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous() &&
               (!model_copy.defined() || model_copy.is_contiguous()),
           "adam_step: expected contiguous buffers, found param ", param.str(), ", grad ", grad.str());
  const int device = model_copy.defined() ? common_device("adam_step", {&param, &grad, &exp_avg, &exp_avg_sq, &model_copy})
                                          : common_device("adam_step", {&param, &grad, &exp_avg, &exp_avg_sq});
  DeviceGuard guard(device);
  if (param.numel() == 0) return;
  const cudaStream_t stream = current_stream(device);
  const int kind = weight_decay == 0 ? 0 : (decoupled ? 2 : 1);
  const DType pt = param.dtype(), gt = grad.dtype();
  if (pt == DType::f64) {
    ZT_CHECK(gt == DType::f64, "adam_step: an f64 param takes an f64 grad, found ", dtype_name(gt));
    adam_copy<double, double>(param, grad, exp_avg, exp_avg_sq, model_copy, kind,
                              adam_scalars<double>(lr, beta1, beta2, eps, weight_decay, step, grad_scale), stream);
    return;
  }
  ZT_CHECK(pt == DType::f32, "adam_step: param must be f32 or f64, found ", dtype_name(pt));
  const AdamScalars<float> s = adam_scalars<float>(lr, beta1, beta2, eps, weight_decay, step, grad_scale);
  if (gt == DType::f32) {
    adam_copy<float, float>(param, grad, exp_avg, exp_avg_sq, model_copy, kind, s, stream);
  } else if (gt == DType::bf16) {
    adam_copy<float, BFloat16>(param, grad, exp_avg, exp_avg_sq, model_copy, kind, s, stream);
  } else if (gt == DType::f16) {
    adam_copy<float, Half>(param, grad, exp_avg, exp_avg_sq, model_copy, kind, s, stream);
  } else {
    ZT_FAIL("adam_step: grad must be f32, f16 or bf16 for an f32 param, found ", dtype_name(gt));
  }
}

}  // namespace zt::cuda
