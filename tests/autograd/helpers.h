// Shared helpers for the autograd tests: f64 leaves and a gradcheck assertion.
#pragma once
#include <doctest/doctest.h>

#include <vector>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"

namespace zt::test {

// A leaf of normal(0, 1) f64 values that requires grad, reproducible from seed.
inline Tensor leaf(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  Tensor t = randn(shape, DType::f64, &gen);
  set_requires_grad(t);
  return t;
}

// Like leaf(), uniform in [low, high) (for log, sqrt, division by the leaf...).
inline Tensor positive_leaf(const Shape& shape, uint64_t seed, double low = 0.5, double high = 2.0) {
  Generator gen(seed);
  Tensor t = rand(shape, DType::f64, &gen, low, high);
  set_requires_grad(t);
  return t;
}

inline Tensor f64(const std::vector<double>& values, const Shape& shape) {
  return from_vector<double>(values, shape);
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Tighter than GradcheckOptions' defaults: f64 central differences are accurate to ~1e-9 here,
// so a gradient off by 0.01% still fails.
inline GradcheckOptions tight() {
  GradcheckOptions o;
  o.atol = 1e-7;
  o.rtol = 1e-6;
  return o;
}

inline void expect_gradcheck(const Fn& fn, const std::vector<Tensor>& inputs,
                             GradcheckOptions options = tight()) {
  GradcheckResult r = gradcheck(fn, inputs, options);
  INFO(r.message);
  CHECK(r.ok);
}

inline void expect_values(const Tensor& t, const std::vector<double>& expected, double tol = 1e-12) {
  REQUIRE(t.defined());
  std::vector<double> v = t.to_vector<double>();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("element ", i);
    CHECK(v[i] == doctest::Approx(expected[i]).epsilon(tol).scale(1.0));
  }
}

}  // namespace zt::test
