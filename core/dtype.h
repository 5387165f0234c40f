// Element types: DType, the 16-bit float storage types (Half, BFloat16) and dispatch macros.
// f16/bf16 are stored natively and computed in f32 on the CPU (DESIGN.md §2).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"

#if defined(__CUDACC__)
#define ZT_HOST_DEVICE __host__ __device__
#else
#define ZT_HOST_DEVICE
#endif

namespace zt {

enum class DType : uint8_t { f32, f16, bf16, f64, i32, i64, u8, boolean };

inline constexpr DType kAllDTypes[] = {DType::f32, DType::f16, DType::bf16, DType::f64,
                                       DType::i32, DType::i64, DType::u8,   DType::boolean};

size_t dtype_size(DType t);
const char* dtype_name(DType t);
DType parse_dtype(const std::string& name);  // "f32", "float32", "bf16", "bfloat16", ...
inline bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f16 || t == DType::bf16 || t == DType::f64;
}
inline bool is_integral(DType t) { return !is_floating(t) && t != DType::boolean; }

// IEEE binary16, stored as raw bits; arithmetic happens in float.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  ZT_HOST_DEVICE Half(float f) : bits(float_to_bits(f)) {}
  ZT_HOST_DEVICE operator float() const { return bits_to_float(bits); }
  ZT_HOST_DEVICE static uint16_t float_to_bits(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u) return uint16_t(sign | (mag > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (mag >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // overflow rounds to inf
    if (mag < 0x38800000u) {                                   // subnormal or zero
      if (mag < 0x33000000u) return uint16_t(sign);
      // value = m * 2^(e-150); the half subnormal unit is 2^-24, so q = m >> (126 - e).
      uint32_t e = mag >> 23, m = (mag & 0x7fffffu) | 0x800000u;
      uint32_t shift = 126 - e;
      uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
      if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
      return uint16_t(sign | q);
    }
    uint32_t h = ((mag - 0x38000000u) >> 13);
    uint32_t rem = mag & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return uint16_t(sign | h);
  }
  ZT_HOST_DEVICE static float bits_to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, x;
    if (exp == 0) {
      if (man == 0) {
        x = sign;
      } else {  // subnormal: normalise
        exp = 113;
        while (!(man & 0x400u)) { man <<= 1; --exp; }
        x = sign | (exp << 23) | ((man & 0x3ffu) << 13);
      }
    } else if (exp == 31) {
      x = sign | 0x7f800000u | (man << 13);
    } else {
      x = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    std::memcpy(&f, &x, 4);
    return f;
  }
};

// bfloat16: the top half of an f32, rounded to nearest even.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  ZT_HOST_DEVICE BFloat16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
      bits = uint16_t((x >> 16) | 0x40u);  // quiet NaN
    } else {
      x += 0x7fffu + ((x >> 16) & 1u);
      bits = uint16_t(x >> 16);
    }
  }
  ZT_HOST_DEVICE operator float() const {
    uint32_t x = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
  }
};

// C++ type <-> DType.
template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<Half> { static constexpr DType value = DType::f16; };
template <> struct DTypeOf<BFloat16> { static constexpr DType value = DType::bf16; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::f64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::i32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::i64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::boolean; };

// The type arithmetic is done in: f32 for the 16-bit floats, the type itself otherwise.
template <typename T> struct ComputeType { using type = T; };
template <> struct ComputeType<Half> { using type = float; };
template <> struct ComputeType<BFloat16> { using type = float; };
template <typename T> using compute_t = typename ComputeType<T>::type;

}  // namespace zt

// ZT_DISPATCH_<set>(dtype, "op name", [&]<typename scalar_t>() { ... }) calls the lambda with
// scalar_t bound to the C++ type of dtype, or throws naming the op and the unsupported dtype.
#define ZT_DISPATCH_CASE(DT, T, fn) \
  case ::zt::DType::DT: return fn.template operator()<T>();

#define ZT_DISPATCH_FLOATING(dtype, op_name, fn)                                          \
  [&] {                                                                                    \
    switch (dtype) {                                                                       \
      ZT_DISPATCH_CASE(f32, float, fn)                                                     \
      ZT_DISPATCH_CASE(f64, double, fn)                                                    \
      ZT_DISPATCH_CASE(f16, ::zt::Half, fn)                                                \
      ZT_DISPATCH_CASE(bf16, ::zt::BFloat16, fn)                                           \
      default:                                                                             \
        ZT_FAIL(op_name, ": dtype ", ::zt::dtype_name(dtype), " is not supported (expected f32, f64, f16 or bf16)"); \
    }                                                                                      \
  }()

#define ZT_DISPATCH_ALL(dtype, op_name, fn)                                                \
  [&] {                                                                                    \
    switch (dtype) {                                                                       \
      ZT_DISPATCH_CASE(f32, float, fn)                                                     \
      ZT_DISPATCH_CASE(f64, double, fn)                                                    \
      ZT_DISPATCH_CASE(f16, ::zt::Half, fn)                                                \
      ZT_DISPATCH_CASE(bf16, ::zt::BFloat16, fn)                                           \
      ZT_DISPATCH_CASE(i32, int32_t, fn)                                                   \
      ZT_DISPATCH_CASE(i64, int64_t, fn)                                                   \
      ZT_DISPATCH_CASE(u8, uint8_t, fn)                                                    \
      ZT_DISPATCH_CASE(boolean, bool, fn)                                                  \
    }                                                                                      \
    ZT_FAIL(op_name, ": unknown dtype");                                                   \
  }()

#define ZT_DISPATCH_INDEX(dtype, op_name, fn)                                              \
  [&] {                                                                                    \
    switch (dtype) {                                                                       \
      ZT_DISPATCH_CASE(i32, int32_t, fn)                                                   \
      ZT_DISPATCH_CASE(i64, int64_t, fn)                                                   \
      default:                                                                             \
        ZT_FAIL(op_name, ": index dtype ", ::zt::dtype_name(dtype), " is not supported (expected i32 or i64)"); \
    }                                                                                      \
  }()
