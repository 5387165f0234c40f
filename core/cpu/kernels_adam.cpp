// CPU fused Adam/AdamW step (ops.def: adam_step): one pass over contiguous buffers, in place, one
// contiguous span per OpenMP thread. f32 params run the AVX-512 or AVX2 kernel the CPU supports
// (Note [CPU Adam kernels] in core/cpu/kernels_adam_simd.h), else the scalar loop here, which is
// the reference: every level gives its results bit for bit. f64 params always take the scalar
// loop. Decay mode and the optional model copy are template parameters so the inner loop has no
// data-dependent branches.
#include "core/cpu/kernels_adam.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>

#include "core/adam_scalars.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernels_adam_simd.h"
#include "core/cpu/strided.h"

namespace zt::cpu {

// ---- the instruction set ----

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::scalar: return "scalar";
    case CpuIsa::avx2: return "avx2";
    case CpuIsa::avx512: return "avx512";
  }
  return "unknown";
}

CpuIsa parse_cpu_isa(const std::string& name) {
  for (CpuIsa isa : {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512})
    if (name == cpu_isa_name(isa)) return isa;
  ZT_FAIL("unknown CPU instruction set level '", name, "' (expected scalar, avx2 or avx512)");
}

std::string cpu_missing_features(CpuIsa isa) {
  std::string missing;
  auto need = [&](bool has, const char* feature) {
    if (!has) missing += missing.empty() ? feature : std::string(" ") + feature;
  };
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (isa == CpuIsa::avx2) need(__builtin_cpu_supports("avx2"), "avx2");
  if (isa == CpuIsa::avx512) need(__builtin_cpu_supports("avx512f"), "avx512f");
  if (isa != CpuIsa::scalar) need(__builtin_cpu_supports("f16c"), "f16c");
#else
  if (isa != CpuIsa::scalar) need(false, "x86-64");
#endif
  return missing;
}

bool cpu_supports(CpuIsa isa) { return cpu_missing_features(isa).empty(); }

namespace {

constexpr int kAutomatic = -1;
std::atomic<int> g_forced_isa{kAutomatic};

void check_supported(CpuIsa isa, const char* source) {
  const std::string missing = cpu_missing_features(isa);
  ZT_CHECK(missing.empty(), source, " asks for the ", cpu_isa_name(isa), " Adam kernel, but this CPU lacks ", missing);
}

// The environment's choice, else the best supported; looked up once.
CpuIsa automatic_isa() {
  static const CpuIsa isa = [] {
    if (const char* env = std::getenv("ZT_CPU_ISA"); env && *env) {
      const CpuIsa wanted = parse_cpu_isa(env);
      check_supported(wanted, "ZT_CPU_ISA");
      return wanted;
    }
    if (cpu_supports(CpuIsa::avx512)) return CpuIsa::avx512;
    return cpu_supports(CpuIsa::avx2) ? CpuIsa::avx2 : CpuIsa::scalar;
  }();
  return isa;
}

}  // namespace

CpuIsa adam_isa() {
  const int forced = g_forced_isa.load(std::memory_order_relaxed);
  return forced == kAutomatic ? automatic_isa() : CpuIsa(forced);
}

void force_adam_isa(std::optional<CpuIsa> isa) {
  if (isa) check_supported(*isa, "force_adam_isa");
  g_forced_isa.store(isa ? int(*isa) : kAutomatic, std::memory_order_relaxed);
}

// ---- the kernels ----

namespace {

// kDecay: 0 none, 1 L2 (g += wd * p), 2 decoupled (p *= 1 - lr * wd). M: model copy element
// type, or void for none. All pointers (n). The reference every vector level reproduces.
template <int kDecay, typename T, typename G, typename M>
void adam_range(T* __restrict p, const G* __restrict g, T* __restrict m, T* __restrict v, M* __restrict copy,
                int64_t begin, int64_t end, const AdamScalars<T>& s) {
  const T step_size = s.step_size, inv_bc2_sqrt = s.inv_bc2_sqrt, b1 = s.b1, b2 = s.b2;
  const T c1 = s.one_minus_b1, c2 = s.one_minus_b2, eps = s.eps, wd = s.wd, decay = s.decay;
  const T unscale = s.grad_unscale, clip = s.grad_clip;
  const bool unscales = unscale != T(1), clips = clip != T(1);
  for (int64_t j = begin; j < end; ++j) {
    T gj = T(compute_t<G>(g[j]));
    if (unscales) gj *= unscale;  // the gradient factors first, in their order (core/adam_scalars.h)
    if (clips) gj *= clip;
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

// How far ahead the vector loops prefetch, in elements: 512 bytes of f32 per stream. The
// hardware streamers stop at each 4 KiB page, where a thread's four input streams would wait on
// DRAM. On the H200 host (bench/RESULTS.md) 128 beat 0, 256 and 512 in the same calls.
constexpr int64_t kAdamPrefetchElements = 128;

// The prefetch distance in elements (Note [CPU Adam kernels]): ZT_ADAM_PREFETCH, read once, else
// kAdamPrefetchElements; 0 leaves the streams to the hardware prefetchers alone.
int64_t prefetch_distance() {
  static const int64_t distance = [] {
    const char* env = std::getenv("ZT_ADAM_PREFETCH");
    if (!env || !*env) return kAdamPrefetchElements;
    char* end = nullptr;
    const long long value = std::strtoll(env, &end, 10);
    ZT_CHECK(*end == '\0' && value >= 0, "ZT_ADAM_PREFETCH must be a count of elements >= 0, found '", env, "'");
    return int64_t(value);
  }();
  return distance;
}

// Below this many elements one thread does the whole pass (a parallel region costs microseconds).
constexpr int64_t kParallelMin = 65536;

// Calls fn(begin, end) on one contiguous span per OpenMP thread, spans a multiple of 64 elements
// (whole cache lines for aligned buffers, whole vectors for every level).
template <typename Fn>
void for_each_thread_span(int64_t n, const Fn& fn) {
  if (n < kParallelMin || omp_get_max_threads() == 1) return fn(int64_t(0), n);
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t per_thread = ((n + threads - 1) / threads + 63) / 64 * 64;
    const int64_t begin = std::min(n, t * per_thread), end = std::min(n, begin + per_thread);
    if (begin < end) fn(begin, end);
  }
}

template <int kDecay, typename T, typename G, typename M>
void adam_scalar(const AdamF32Args& a, int64_t begin, int64_t end) {
  adam_range<kDecay, T, G, M>(a.param, static_cast<const G*>(a.grad), a.exp_avg, a.exp_avg_sq,
                              static_cast<M*>(a.model_copy), begin, end, a.s);
}

template <int kDecay, typename G>
void adam_scalar_with_copy(const AdamF32Args& a, int64_t begin, int64_t end) {
  if (!a.model_copy) return adam_scalar<kDecay, float, G, void>(a, begin, end);
  if (a.copy_dtype == DType::bf16) return adam_scalar<kDecay, float, G, BFloat16>(a, begin, end);
  adam_scalar<kDecay, float, G, Half>(a, begin, end);
}

template <int kDecay>
void adam_scalar_with_grad(const AdamF32Args& a, int64_t begin, int64_t end) {
  if (a.grad_dtype == DType::bf16) return adam_scalar_with_copy<kDecay, BFloat16>(a, begin, end);
  if (a.grad_dtype == DType::f16) return adam_scalar_with_copy<kDecay, Half>(a, begin, end);
  adam_scalar_with_copy<kDecay, float>(a, begin, end);
}

void adam_f32_range_scalar(const AdamF32Args& a, int64_t begin, int64_t end) {
  if (a.decay_kind == 1) return adam_scalar_with_grad<1>(a, begin, end);
  if (a.decay_kind == 2) return adam_scalar_with_grad<2>(a, begin, end);
  adam_scalar_with_grad<0>(a, begin, end);
}

using AdamF32RangeKernel = void (*)(const AdamF32Args&, int64_t, int64_t);

AdamF32RangeKernel f32_kernel_for(CpuIsa isa) {
#if defined(__x86_64__)
  switch (isa) {
    case CpuIsa::avx512: return adam_f32_range_avx512;
    case CpuIsa::avx2: return adam_f32_range_avx2;
    case CpuIsa::scalar: break;
  }
#endif
  return adam_f32_range_scalar;
}

void adam_f32(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
              const Tensor& model_copy, int kind, const AdamScalars<float>& s) {
  const DType gt = grad.dtype();
  ZT_CHECK(gt == DType::f32 || gt == DType::bf16 || gt == DType::f16,
           "adam_step: grad must be f32, f16 or bf16 for an f32 param, found ", dtype_name(gt));
  const DType ct = model_copy.defined() ? model_copy.dtype() : DType::bf16;
  ZT_CHECK(ct == DType::bf16 || ct == DType::f16, "adam_step: model_copy must be f16 or bf16, found ",
           dtype_name(ct));
  const AdamF32Args args{typed_data<float>(param),
                         grad.raw_data(),
                         typed_data<float>(exp_avg),
                         typed_data<float>(exp_avg_sq),
                         model_copy.defined() ? model_copy.raw_data() : nullptr,
                         gt,
                         ct,
                         kind,
                         s,
                         prefetch_distance()};
  const AdamF32RangeKernel kernel = f32_kernel_for(adam_isa());
  for_each_thread_span(param.numel(), [&](int64_t begin, int64_t end) { kernel(args, begin, end); });
}

// f64 params: the scalar loop, f64 grads, an optional 16-bit copy.
template <int kDecay>
void adam_f64_with_copy(double* p, const double* g, double* m, double* v, const Tensor& model_copy, int64_t n,
                        const AdamScalars<double>& s) {
  auto run = [&]<typename M>(M* copy) {
    for_each_thread_span(n, [&](int64_t begin, int64_t end) {
      adam_range<kDecay, double, double, M>(p, g, m, v, copy, begin, end, s);
    });
  };
  if (!model_copy.defined()) return run(static_cast<void*>(nullptr));
  if (model_copy.dtype() == DType::bf16) return run(typed_data<BFloat16>(model_copy));
  ZT_CHECK(model_copy.dtype() == DType::f16, "adam_step: model_copy must be f16 or bf16, found ",
           dtype_name(model_copy.dtype()));
  run(typed_data<Half>(model_copy));
}

void adam_f64(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
              const Tensor& model_copy, int kind, const AdamScalars<double>& s) {
  ZT_CHECK(grad.dtype() == DType::f64, "adam_step: an f64 param takes an f64 grad, found ", dtype_name(grad.dtype()));
  double* p = typed_data<double>(param);
  const double* g = typed_data<double>(grad);
  double* m = typed_data<double>(exp_avg);
  double* v = typed_data<double>(exp_avg_sq);
  const int64_t n = param.numel();
  if (kind == 1) return adam_f64_with_copy<1>(p, g, m, v, model_copy, n, s);
  if (kind == 2) return adam_f64_with_copy<2>(p, g, m, v, model_copy, n, s);
  adam_f64_with_copy<0>(p, g, m, v, model_copy, n, s);
}

}  // namespace

void CpuBackend::adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                           const Tensor& exp_avg_sq, const Tensor& model_copy, double lr, double beta1,
                           double beta2, double eps, double weight_decay, bool decoupled, int64_t step,
                           const GradientScale& grad_scale) {
  ZT_CHECK(param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous(),
           "adam_step: expected contiguous buffers, found param ", param.str(), ", grad ", grad.str());
  const int kind = weight_decay == 0 ? 0 : (decoupled ? 2 : 1);
  const DType pt = param.dtype();
  if (pt == DType::f64)
    return adam_f64(param, grad, exp_avg, exp_avg_sq, model_copy, kind,
                    adam_scalars<double>(lr, beta1, beta2, eps, weight_decay, step, grad_scale));
  ZT_CHECK(pt == DType::f32, "adam_step: param must be f32 or f64, found ", dtype_name(pt));
  adam_f32(param, grad, exp_avg, exp_avg_sq, model_copy, kind,
           adam_scalars<float>(lr, beta1, beta2, eps, weight_decay, step, grad_scale));
}

}  // namespace zt::cpu
