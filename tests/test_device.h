// The device under test: the layer suites (tests/core, autograd, nn, optim) put their tensors and
// modules on test::device(), chosen by the environment variable ZT_TEST_DEVICE (`cpu`, the
// default, or `cuda` for cuda:0), so the same suites run on the CUDA backend on a GPU machine
// (the *_cuda ctest entries). The choice lives here, in the tests: the library has no default
// device (DESIGN.md §3, no global mutable state). tests/main.cpp checks the variable and skips
// (exit 77) when the device is not there; tests that are CPU by nature build on Device::cpu().
#pragma once
#include <cstdlib>
#include <optional>
#include <string>

#include "core/device.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace zt::test {

// The device ZT_TEST_DEVICE names: cpu when unset or empty; nullopt for an unknown value.
inline std::optional<Device> parse_test_device(const char* text) {
  const std::string s = text ? text : "";
  if (s.empty() || s == "cpu") return Device::cpu();
  if (s == "cuda") return Device::cuda(0);
  return std::nullopt;
}

// The device under test, read from the environment once.
inline Device device() {
  static const Device chosen = [] {
    const char* text = std::getenv("ZT_TEST_DEVICE");
    const std::optional<Device> d = parse_test_device(text);
    ZT_CHECK(d, "ZT_TEST_DEVICE=", text, ": expected cpu or cuda");
    return *d;
  }();
  return chosen;
}

inline bool on_cuda() { return device().is_cuda(); }

// Options for a factory call on the device under test: zeros(shape, opts(DType::f64)).
inline TensorOptions opts(DType dtype = DType::f32) { return {dtype, device()}; }

// t on the device under test (t itself when already there). Not differentiable: make leaves
// after the move.
inline Tensor on_device(const Tensor& t) { return raw::to(t, device()); }

}  // namespace zt::test
