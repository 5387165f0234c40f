// Shared helpers for the autograd tests (and the nn tests' gradchecks): f64 leaves on the device
// under test (tests/test_device.h) and a gradcheck assertion that runs fn there.
#pragma once
#include <doctest/doctest.h>

#include <deque>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tests/test_device.h"

namespace zt::test {

// A leaf of normal(0, 1) f64 values that requires grad, reproducible from seed, on the device
// under test. Drawn on the CPU, so every device checks the same values.
inline Tensor leaf(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  Tensor t = on_device(randn(shape, DType::f64, &gen));
  set_requires_grad(t);
  return t;
}

// Like leaf(), uniform in [low, high) (for log, sqrt, division by the leaf...).
inline Tensor positive_leaf(const Shape& shape, uint64_t seed, double low = 0.5, double high = 2.0) {
  Generator gen(seed);
  Tensor t = on_device(rand(shape, DType::f64, &gen, low, high));
  set_requires_grad(t);
  return t;
}

// An f64 constant on the device under test.
inline Tensor f64(const std::vector<double>& values, const Shape& shape) {
  return from_vector<double>(values, shape, opts(DType::f64));
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// gradcheck of fn over inputs on the device under test. gradcheck perturbs contiguous f64 CPU
// leaves in host memory (autograd/gradcheck.h), so off the CPU it checks CPU copies of the inputs
// (leaves again where the inputs require grad) through a fn that moves them to the device with
// the differentiable to() and its result back: the ops of fn run on the device, in backward and
// in every finite-difference evaluation. The inputs' own gradients are left alone. The moved
// inputs live as long as the check, as gradcheck's own do: fn may keep references to them (a
// checkpointed fn recomputes from them in backward).
inline GradcheckResult device_gradcheck(const Fn& fn, const std::vector<Tensor>& inputs,
                                        GradcheckOptions options = {}) {
  if (device().is_cpu()) return gradcheck(fn, inputs, options);
  std::vector<Tensor> host;
  for (const Tensor& t : inputs) {
    if (!t.defined() || t.device().is_cpu()) {
      host.push_back(t);
      continue;
    }
    Tensor h = raw::contiguous(raw::to(t, Device::cpu()));  // a fresh tensor, no autograd state
    if (requires_grad(t)) set_requires_grad(h);
    host.push_back(h);
  }
  std::deque<std::vector<Tensor>> moved;  // a deque: references to its elements stay valid
  auto on_device_fn = [&fn, &moved](const std::vector<Tensor>& in) {
    std::vector<Tensor>& on = moved.emplace_back();
    for (const Tensor& t : in) on.push_back(t.defined() ? to(t, device()) : t);
    return to(fn(on), Device::cpu());
  };
  return gradcheck(on_device_fn, host, options);
}

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
  GradcheckResult r = device_gradcheck(fn, inputs, options);
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
