// Tests of the element types: Half / BFloat16 conversions (rounding, subnormals, inf, NaN),
// dtype names, sizes and parsing.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "tests/core/core_test_util.h"

namespace {

using zt::BFloat16;
using zt::DType;
using zt::Half;

float from_bits(uint32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace

TEST_CASE("Half: exact values, rounding, overflow") {
  CHECK(Half(1.0f).bits == 0x3C00);
  CHECK(Half(-2.0f).bits == 0xC000);
  CHECK(Half(0.5f).bits == 0x3800);
  CHECK(Half(65504.0f).bits == 0x7BFF);   // largest finite half
  CHECK(Half(65519.0f).bits == 0x7BFF);   // below the rounding boundary
  CHECK(Half(65520.0f).bits == 0x7C00);   // rounds to inf
  CHECK(Half(1e6f).bits == 0x7C00);
  CHECK(Half(-0.0f).bits == 0x8000);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even gives 1.
  CHECK(Half(1.0f + std::ldexp(1.0f, -11)).bits == 0x3C00);
  // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
  CHECK(Half(1.0f + 3 * std::ldexp(1.0f, -11)).bits == 0x3C02);
  CHECK(float(Half(3.14159f)) == doctest::Approx(3.140625));
}

TEST_CASE("Half: subnormals, inf and NaN") {
  CHECK(Half(std::ldexp(1.0f, -24)).bits == 0x0001);  // smallest subnormal
  CHECK(Half(std::ldexp(1.0f, -25)).bits == 0x0000);  // exactly half of it: ties to even (0)
  CHECK(Half(std::ldexp(3.0f, -26)).bits == 0x0001);  // 0.75 of it rounds up
  CHECK(Half(std::ldexp(1.0f, -15)).bits == 0x0200);  // mid-range subnormal
  CHECK(Half(std::ldexp(1023.0f, -24)).bits == 0x03FF);  // largest subnormal
  CHECK(Half(std::ldexp(1.0f, -14)).bits == 0x0400);  // smallest normal
  CHECK(float(Half::bits_to_float(0x0001)) == std::ldexp(1.0f, -24));
  CHECK(float(Half::bits_to_float(0x03FF)) == std::ldexp(1023.0f, -24));
  CHECK(Half(std::numeric_limits<float>::infinity()).bits == 0x7C00);
  CHECK(Half(-std::numeric_limits<float>::infinity()).bits == 0xFC00);
  CHECK(std::isinf(float(Half::bits_to_float(0x7C00))));
  CHECK(std::isnan(float(Half(std::nanf("")))));
  CHECK(std::isnan(Half::bits_to_float(0x7E00)));
}

TEST_CASE("Half: every finite and infinite bit pattern round-trips through float") {
  int mismatches = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    if (nan) {
      mismatches += !std::isnan(Half::bits_to_float(uint16_t(h)));
      continue;
    }
    mismatches += Half(Half::bits_to_float(uint16_t(h))).bits != h;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("BFloat16: rounding, subnormals, inf, NaN and round trips") {
  CHECK(BFloat16(1.0f).bits == 0x3F80);
  CHECK(BFloat16(-1.0f).bits == 0xBF80);
  CHECK(BFloat16(1.0f + std::ldexp(1.0f, -8)).bits == 0x3F80);      // tie to even (down)
  CHECK(BFloat16(1.0f + 3 * std::ldexp(1.0f, -8)).bits == 0x3F82);  // tie to even (up)
  CHECK(BFloat16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)).bits == 0x3F81);
  CHECK(BFloat16(from_bits(0x00010000)).bits == 0x0001);  // float subnormal kept
  CHECK(float(BFloat16(from_bits(0x00010000))) == from_bits(0x00010000));
  CHECK(BFloat16(std::numeric_limits<float>::infinity()).bits == 0x7F80);
  CHECK(BFloat16(-std::numeric_limits<float>::infinity()).bits == 0xFF80);
  CHECK(BFloat16(3.4e38f).bits == 0x7F80);  // above the largest bf16: rounds to inf
  CHECK(std::isnan(float(BFloat16(std::nanf("")))));
  CHECK(std::isnan(float(BFloat16(from_bits(0x7F800001)))));  // NaN with low payload stays NaN
  int mismatches = 0;
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const bool nan = (b & 0x7F80) == 0x7F80 && (b & 0x7F) != 0;
    BFloat16 v;
    v.bits = uint16_t(b);
    if (nan) {
      mismatches += !std::isnan(float(v));
      continue;
    }
    mismatches += BFloat16(float(v)).bits != b;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("dtype names, sizes, parsing and categories") {
  using zt::dtype_name;
  using zt::dtype_size;
  CHECK(std::string(dtype_name(DType::f32)) == "f32");
  CHECK(std::string(dtype_name(DType::bf16)) == "bf16");
  CHECK(std::string(dtype_name(DType::boolean)) == "bool");
  CHECK(dtype_size(DType::f16) == 2);
  CHECK(dtype_size(DType::f64) == 8);
  CHECK(dtype_size(DType::u8) == 1);
  CHECK(dtype_size(DType::i32) == 4);
  for (DType t : zt::kAllDTypes) CHECK(zt::parse_dtype(dtype_name(t)) == t);
  CHECK(zt::parse_dtype("bfloat16") == DType::bf16);
  CHECK(zt::parse_dtype("float16") == DType::f16);
  CHECK(zt::test::contains(zt::test::error_of([] { zt::parse_dtype("f8"); }), "f8"));
  CHECK(zt::is_floating(DType::bf16));
  CHECK_FALSE(zt::is_floating(DType::i64));
  CHECK(zt::is_integral(DType::u8));
  CHECK_FALSE(zt::is_integral(DType::boolean));
}

TEST_CASE("tensors of every dtype store and read back values") {
  using namespace zt::test;
  const std::vector<double> v{0, 1, 2, 100};
  for (DType t : zt::kAllDTypes) {
    if (t == DType::boolean) continue;
    INFO(zt::dtype_name(t));
    check_values(make(v, {2, 2}, t), v, {2, 2});
  }
  check_values(make({0, 2, -1}, {}, DType::boolean), {0, 1, 1}, {3});
  check_values(make({1e-7, 70000}, {}, DType::f16), {1.1920928955078125e-07, INFINITY}, {2});
}
