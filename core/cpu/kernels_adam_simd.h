// Internal to the CPU fused Adam/AdamW (core/cpu/kernels_adam*.cpp): the flat arguments of one
// f32 step and the vector loop that the per-ISA translation units instantiate.
//
// Note [CPU Adam kernels]
// - One pass over contiguous (n) buffers: f32 param/exp_avg/exp_avg_sq, an f32/bf16/f16 grad
//   (times the optional gradient factors of core/adam_scalars.h) and an optional bf16/f16 model
//   copy; memory-bound (28 bytes per element for f32 grads).
// - kernels_adam_avx2.cpp and kernels_adam_avx512.cpp are compiled with their own -m flags (the
//   top-level CMakeLists.txt); the rest of the build stays portable. kernels_adam.cpp picks one
//   at run time (__builtin_cpu_supports), falls back to the scalar loop, and splits the buffers
//   into one contiguous span per OpenMP thread.
// - Every level computes each element with the same operations in the same order as the scalar
//   reference loop, and those files and kernels_adam.cpp are built with -ffp-contract=off so no
//   multiply-add is fused. IEEE add/mul/div/sqrt are correctly rounded, so all levels give
//   bit-identical params, moments and copies (NaN payloads aside). That makes results
//   independent of the machine a checkpoint resumes on and of how an offloaded shard is split
//   into sub-groups; FMA would buy nothing here, the pass is limited by memory bandwidth.
// - Conversions match core/dtype.h exactly: bf16 rounds to nearest even and turns NaN into
//   (bits >> 16) | 0x40; f16 uses F16C/AVX-512 round-to-nearest-even, NaN becomes sign | 0x7e00.
// - The last n % width elements go through the same vector code on a small stack copy, so an
//   element's result never depends on its position.
// - The vector loops prefetch `prefetch` elements ahead of each stream in software (512 bytes
//   of f32 by default, ZT_ADAM_PREFETCH overrides): the hardware streamers do not cross 4 KiB pages.
// - The ISA files use no library code that could be emitted out of line (no STL, no ZT_CHECK):
//   an inline function compiled there with AVX-512 could be the copy the linker keeps for the
//   whole program. Their templates are instantiated with types from anonymous namespaces, which
//   gives every instantiation internal linkage for the same reason.
#pragma once
#include <cstdint>
#include <type_traits>

#include "core/adam_scalars.h"
#include "core/dtype.h"

namespace zt::cpu {

struct AdamF32Args {
  float* param;          // (n)
  const void* grad;      // (n) of grad_dtype
  float* exp_avg;        // (n)
  float* exp_avg_sq;     // (n)
  void* model_copy;      // (n) of copy_dtype, or null
  DType grad_dtype;      // f32, bf16 or f16
  DType copy_dtype;      // bf16 or f16 when model_copy is set
  int decay_kind;        // 0 none, 1 L2 (g += wd p), 2 decoupled (p *= 1 - lr wd)
  AdamScalars<float> s;
  int64_t prefetch = 0;  // elements ahead to prefetch in software (0: leave it to the hardware)
};

// Elements [begin, end) of one step; defined in the ISA's own translation unit.
void adam_f32_range_avx2(const AdamF32Args& args, int64_t begin, int64_t end);
void adam_f32_range_avx512(const AdamF32Args& args, int64_t begin, int64_t end);

// The loop over vectors of Ops::kWidth lanes. Ops provides F (the vector type), set1, load,
// store, add, sub, mul, div, sqrt, load_grad(const G*) for float/BFloat16/Half and
// store_copy(M*, F) for BFloat16/Half.
template <typename Ops>
struct AdamSimdLoop {
  using F = typename Ops::F;
  static constexpr int kWidth = Ops::kWidth;

  struct Consts {
    F step_size, inv_bc2_sqrt, b1, b2, c1, c2, eps, wd, decay, unscale, clip;
    bool unscales, clips;  // the gradient factors that are not 1
  };

  // One vector of elements: the scalar reference's operations, in its order.
  template <int kDecay, typename G, typename M>
  static void block(const Consts& c, float* p, const G* g, float* m, float* v, M* copy) {
    F gj = Ops::load_grad(g);
    if (c.unscales) gj = Ops::mul(gj, c.unscale);
    if (c.clips) gj = Ops::mul(gj, c.clip);
    F pj = Ops::load(p);
    if constexpr (kDecay == 1) gj = Ops::add(gj, Ops::mul(c.wd, pj));
    if constexpr (kDecay == 2) pj = Ops::mul(pj, c.decay);
    const F mj = Ops::add(Ops::mul(c.b1, Ops::load(m)), Ops::mul(c.c1, gj));
    const F vj = Ops::add(Ops::mul(c.b2, Ops::load(v)), Ops::mul(Ops::mul(c.c2, gj), gj));
    const F denom = Ops::add(Ops::mul(Ops::sqrt(vj), c.inv_bc2_sqrt), c.eps);
    pj = Ops::sub(pj, Ops::div(Ops::mul(c.step_size, mj), denom));
    Ops::store(m, mj);
    Ops::store(v, vj);
    Ops::store(p, pj);
    if constexpr (!std::is_void_v<M>) Ops::store_copy(copy, pj);
  }

  template <int kDecay, typename G, typename M>
  static void run(const AdamF32Args& a, int64_t begin, int64_t end) {
    const AdamScalars<float>& s = a.s;
    const Consts c{Ops::set1(s.step_size), Ops::set1(s.inv_bc2_sqrt), Ops::set1(s.b1), Ops::set1(s.b2),
                   Ops::set1(s.one_minus_b1), Ops::set1(s.one_minus_b2), Ops::set1(s.eps), Ops::set1(s.wd),
                   Ops::set1(s.decay), Ops::set1(s.grad_unscale), Ops::set1(s.grad_clip),
                   s.grad_unscale != 1.0f, s.grad_clip != 1.0f};
    float* p = a.param;
    const G* g = static_cast<const G*>(a.grad);
    float *m = a.exp_avg, *v = a.exp_avg_sq;
    M* copy = static_cast<M*>(a.model_copy);
    int64_t j = begin;
    const int64_t ahead = a.prefetch;
    for (; j + kWidth <= end; j += kWidth) {
      if (ahead > 0 && j + ahead < end) {  // the hardware streamers stop at 4 KiB pages; these do not
        __builtin_prefetch(p + j + ahead, 1);
        __builtin_prefetch(g + j + ahead, 0);
        __builtin_prefetch(m + j + ahead, 1);
        __builtin_prefetch(v + j + ahead, 1);
      }
      if constexpr (std::is_void_v<M>) {
        block<kDecay, G, M>(c, p + j, g + j, m + j, v + j, nullptr);
      } else {
        block<kDecay, G, M>(c, p + j, g + j, m + j, v + j, copy + j);
      }
    }
    if (j == end) return;
    // The ragged tail on a zero-padded stack copy, through the same block.
    using CopyElement = std::conditional_t<std::is_void_v<M>, char, M>;
    float tp[kWidth] = {}, tm[kWidth] = {}, tv[kWidth] = {};
    G tg[kWidth] = {};
    CopyElement tc[kWidth] = {};
    const int64_t rest = end - j;
    for (int64_t i = 0; i < rest; ++i) {
      tp[i] = p[j + i];
      tg[i] = g[j + i];
      tm[i] = m[j + i];
      tv[i] = v[j + i];
    }
    if constexpr (std::is_void_v<M>) {
      block<kDecay, G, M>(c, tp, tg, tm, tv, nullptr);
    } else {
      block<kDecay, G, M>(c, tp, tg, tm, tv, tc);
    }
    for (int64_t i = 0; i < rest; ++i) {
      p[j + i] = tp[i];
      m[j + i] = tm[i];
      v[j + i] = tv[i];
      if constexpr (!std::is_void_v<M>) copy[j + i] = tc[i];
    }
  }

  template <int kDecay, typename G>
  static void with_copy(const AdamF32Args& a, int64_t begin, int64_t end) {
    if (!a.model_copy) return run<kDecay, G, void>(a, begin, end);
    if (a.copy_dtype == DType::bf16) return run<kDecay, G, BFloat16>(a, begin, end);
    run<kDecay, G, Half>(a, begin, end);
  }

  template <int kDecay>
  static void with_grad(const AdamF32Args& a, int64_t begin, int64_t end) {
    if (a.grad_dtype == DType::bf16) return with_copy<kDecay, BFloat16>(a, begin, end);
    if (a.grad_dtype == DType::f16) return with_copy<kDecay, Half>(a, begin, end);
    with_copy<kDecay, float>(a, begin, end);
  }

  // Dtypes were checked by the caller (kernels_adam.cpp).
  static void range(const AdamF32Args& a, int64_t begin, int64_t end) {
    if (a.decay_kind == 1) return with_grad<1>(a, begin, end);
    if (a.decay_kind == 2) return with_grad<2>(a, begin, end);
    with_grad<0>(a, begin, end);
  }
};

}  // namespace zt::cpu
