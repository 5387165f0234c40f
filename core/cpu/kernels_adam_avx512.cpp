// The CPU fused Adam/AdamW step with AVX-512F, 16 lanes (Note [CPU Adam kernels] in
// core/cpu/kernels_adam_simd.h). Built with -mavx512f -mf16c -ffp-contract=off
// (CMakeLists.txt); only called after cpu_supports(CpuIsa::avx512).
#include "core/cpu/kernels_adam_simd.h"

#if defined(__x86_64__)  // other CPUs take the scalar loop
// GCC 12's _mm512_undefined_ps() initialises a variable with itself on purpose, which
// -Wmaybe-uninitialized reports at every use; the pragma must precede the header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace zt::cpu {
namespace {

struct Avx512Ops {
  using F = __m512;
  static constexpr int kWidth = 16;
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F x) { _mm512_storeu_ps(p, x); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F sqrt(F a) { return _mm512_sqrt_ps(a); }

  static F load_grad(const float* g) { return _mm512_loadu_ps(g); }
  static F load_grad(const BFloat16* g) {  // bf16 is the top half of an f32: widen and shift
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static F load_grad(const Half* g) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g)));
  }

  // BFloat16(float): x + 0x7fff + ((x >> 16) & 1), top half; NaN -> (x >> 16) | 0x40. Not
  // AVX512_BF16's vcvtneps2bf16, which flushes subnormals to zero.
  static void store_copy(BFloat16* out, F x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i top = _mm512_srli_epi32(bits, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(top, _mm512_set1_epi32(1)));
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
    const __mmask16 is_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512i halves = _mm512_mask_or_epi32(rounded, is_nan, top, _mm512_set1_epi32(0x40));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi32_epi16(halves));
  }
  // Half(float): round to nearest even in hardware; NaN -> sign | 0x7e00 as core/dtype.h does.
  static void store_copy(Half* out, F x) {
    const __m256i h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i magnitude = _mm256_and_si256(h, _mm256_set1_epi16(0x7fff));
    const __m256i is_nan = _mm256_cmpgt_epi16(magnitude, _mm256_set1_epi16(0x7c00));
    const __m256i canonical =
        _mm256_or_si256(_mm256_and_si256(h, _mm256_set1_epi16(-0x8000)), _mm256_set1_epi16(0x7e00));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_blendv_epi8(h, canonical, is_nan));
  }
};

}  // namespace

void adam_f32_range_avx512(const AdamF32Args& args, int64_t begin, int64_t end) {
  AdamSimdLoop<Avx512Ops>::range(args, begin, end);
}

}  // namespace zt::cpu

#endif  // __x86_64__
