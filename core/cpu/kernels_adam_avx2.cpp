// The CPU fused Adam/AdamW step with AVX2 + F16C, 8 lanes (Note [CPU Adam kernels] in
// core/cpu/kernels_adam_simd.h). Built with -mavx2 -mf16c -ffp-contract=off (CMakeLists.txt);
// only called after cpu_supports(CpuIsa::avx2).
#include "core/cpu/kernels_adam_simd.h"

#if defined(__x86_64__)  // other CPUs take the scalar loop
#include <immintrin.h>

namespace zt::cpu {
namespace {

struct Avx2Ops {
  using F = __m256;
  static constexpr int kWidth = 8;
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F x) { _mm256_storeu_ps(p, x); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F sqrt(F a) { return _mm256_sqrt_ps(a); }

  static F load_grad(const float* g) { return _mm256_loadu_ps(g); }
  static F load_grad(const BFloat16* g) {  // bf16 is the top half of an f32: widen and shift
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(g));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static F load_grad(const Half* g) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
  }

  // BFloat16(float): x + 0x7fff + ((x >> 16) & 1), top half; NaN -> (x >> 16) | 0x40.
  static void store_copy(BFloat16* out, F x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i top = _mm256_srli_epi32(bits, 16);
    const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(top, _mm256_set1_epi32(1)));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, bias), 16);
    const __m256i quiet_nan = _mm256_or_si256(top, _mm256_set1_epi32(0x40));
    const __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    const __m256i halves = _mm256_blendv_epi8(rounded, quiet_nan, is_nan);  // (8) in [0, 0xffff]
    // Pack 32 -> 16 bits: packus works per 128-bit lane, so gather the two results after.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(halves, halves), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(packed));
  }
  // Half(float): round to nearest even in hardware; NaN -> sign | 0x7e00 as core/dtype.h does.
  static void store_copy(Half* out, F x) {
    const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m128i magnitude = _mm_and_si128(h, _mm_set1_epi16(0x7fff));
    const __m128i is_nan = _mm_cmpgt_epi16(magnitude, _mm_set1_epi16(0x7c00));
    const __m128i canonical = _mm_or_si128(_mm_and_si128(h, _mm_set1_epi16(-0x8000)), _mm_set1_epi16(0x7e00));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_blendv_epi8(h, canonical, is_nan));
  }
};

}  // namespace

void adam_f32_range_avx2(const AdamF32Args& args, int64_t begin, int64_t end) {
  AdamSimdLoop<Avx2Ops>::range(args, begin, end);
}

}  // namespace zt::cpu

#endif  // __x86_64__
