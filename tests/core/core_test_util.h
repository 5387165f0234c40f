// Helpers shared by the core op tests: build tensors from doubles on the device under test
// (tests/test_device.h), read them back from any device, and compare with a tolerance per dtype.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/ops.h"
#include "tests/error_of.h"
#include "tests/test_device.h"

namespace zt::test {

// A tensor of `shape` (1-D when empty) holding `values`, converted to dt, on the device under test.
inline Tensor make(const std::vector<double>& values, Shape shape = {}, DType dt = DType::f32) {
  return from_vector<double>(values, std::move(shape), opts(dt));
}

inline std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// Relative tolerance of one rounding in dt (a few ulps for the floats, exact for integers).
inline double tolerance(DType dt) {
  switch (dt) {
    case DType::f64: return 1e-12;
    case DType::f32: return 1e-6;
    case DType::f16: return 2e-3;
    case DType::bf16: return 1e-2;
    default: return 0.0;
  }
}

// Checks t's shape and every element against expected within dt's tolerance (NaN == NaN).
inline void check_values(const Tensor& t, const std::vector<double>& expected, const Shape& shape,
                         double tol = -1.0) {
  REQUIRE(t.defined());
  CHECK(shape_str(t.shape()) == shape_str(shape));
  const std::vector<double> got = values(t);
  REQUIRE(got.size() == expected.size());
  if (tol < 0) tol = tolerance(t.dtype());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element ", i, " of ", t.str(), ": got ", got[i], ", expected ", expected[i]);
    if (std::isnan(expected[i])) {
      CHECK(std::isnan(got[i]));
    } else if (std::isinf(expected[i])) {
      CHECK(got[i] == expected[i]);
    } else {
      CHECK(std::abs(got[i] - expected[i]) <= tol * std::max(1.0, std::abs(expected[i])));
    }
  }
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

inline constexpr DType kFloatDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};

}  // namespace zt::test
