// Helpers for the CUDA parity tests: the same random values (and the same view layout) on the
// CPU and on the GPU, running one op on both backends and comparing with a tolerance per dtype.
// Uses only core/ and cuda/cuda_api.h, so no CUDA header reaches the tests (DESIGN.md §1).
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"
#include "cuda/cuda_api.h"

namespace zt::test {

inline bool gpu_available() { return cuda::device_count() > 0 && has_backend(DeviceType::CUDA); }

// Skips a test case (zero checks) when there is no GPU: CI builds the CUDA code without one.
#define ZT_REQUIRE_GPU()                                           \
  do {                                                             \
    if (!::zt::test::gpu_available()) {                            \
      MESSAGE("no CUDA device: CUDA test skipped");                \
      return;                                                      \
    }                                                              \
  } while (0)

inline Backend& cpu_be() { return backend_for(DeviceType::CPU); }
inline Backend& gpu_be() { return backend_for(DeviceType::CUDA); }

// One logical tensor on both sides: [0] on the CPU, [1] on the GPU, same shape/strides/offset.
struct Pair {
  Tensor side[2];
  const Tensor& operator[](int s) const { return side[s]; }
  const Shape& shape() const { return side[0].shape(); }
  DType dtype() const { return side[0].dtype(); }
};

enum class Layout { contiguous, stepped, transposed, broadcast };
inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::contiguous: return "contiguous";
    case Layout::stepped: return "stepped";
    case Layout::transposed: return "transposed";
    case Layout::broadcast: return "broadcast";
  }
  return "?";
}

// A host tensor of `shape` with random values: floats uniform in [lo, hi); integers the
// truncation of that (use lo >= 1 for "never zero"); bool a random mix.
inline Tensor random_host(const Shape& shape, DType dt, double lo, double hi, uint64_t seed) {
  Tensor f = Tensor::empty(shape, DType::f32);
  if (dt == DType::f64) {
    Tensor d = Tensor::empty(shape, DType::f64);
    cpu_be().random_uniform(d, seed, 0, lo, hi);
    return d;
  }
  cpu_be().random_uniform(f, seed, 0, dt == DType::boolean ? -1.0 : lo, dt == DType::boolean ? 1.0 : hi);
  if (dt == DType::f32) return f;
  Tensor out = Tensor::empty(shape, dt);
  if (dt == DType::boolean) {
    cpu_be().binary_scalar(BinaryOp::gt, out, f, 0.0, false);
  } else {
    cpu_be().copy(out, f);
  }
  return out;
}

// The host tensor's storage copied to the GPU, viewed with the same shape/strides/offset.
inline Tensor mirror_on_gpu(const Tensor& host) {
  const int64_t bytes = int64_t(host.storage()->bytes());
  Tensor hb = Tensor::view_of(host.storage(), {bytes}, {1}, 0, DType::u8);
  Tensor db = Tensor::empty({bytes}, TensorOptions(DType::u8, Device::cuda(0)));
  if (bytes > 0) gpu_be().copy(db, hb);
  return Tensor::view_of(db.storage(), host.shape(), host.strides(), host.offset(), host.dtype());
}

// A random Pair whose views have the given layout over a larger or differently ordered base.
inline Pair random_pair(const Shape& shape, DType dt, Layout layout = Layout::contiguous, double lo = -2.0,
                        double hi = 2.0, uint64_t seed = 1) {
  const size_t nd = shape.size();
  if (nd < 2 && layout == Layout::transposed) layout = Layout::contiguous;
  if (nd < 1 && layout != Layout::contiguous) layout = Layout::contiguous;
  Shape base = shape, strides, view_strides;
  int64_t offset = 0;
  switch (layout) {
    case Layout::contiguous: break;
    case Layout::stepped: base[nd - 1] = 2 * shape[nd - 1] + 1; break;
    case Layout::transposed: std::swap(base[nd - 1], base[nd - 2]); break;
    case Layout::broadcast: base[0] = 1; break;
  }
  const Tensor hb = random_host(base, dt, lo, hi, seed);
  view_strides = hb.strides();
  switch (layout) {
    case Layout::contiguous: break;
    case Layout::stepped:
      view_strides[nd - 1] = 2;
      offset = 1;
      break;
    case Layout::transposed: std::swap(view_strides[nd - 1], view_strides[nd - 2]); break;
    case Layout::broadcast: view_strides[0] = 0; break;
  }
  Pair p;
  p.side[0] = Tensor::view_of(hb.storage(), shape, view_strides, offset, dt);
  p.side[1] = mirror_on_gpu(p.side[0]);
  return p;
}

// Columns [col_offset, col_offset + cols) of a random (rows, wide) matrix: rows with a stride
// of `wide`, contiguous within a row (one of q, k, v in a fused qkv projection).
inline Pair column_slice_pair(int64_t rows, int64_t cols, int64_t wide, int64_t col_offset, DType dt, double lo,
                              double hi, uint64_t seed) {
  const Tensor hb = random_host({rows, wide}, dt, lo, hi, seed);
  Pair p;
  p.side[0] = Tensor::view_of(hb.storage(), {rows, cols}, {wide, 1}, col_offset, dt);
  p.side[1] = mirror_on_gpu(p.side[0]);
  return p;
}

// A random vector of the last dim of `shape` broadcast over the leading dims (a bias).
inline Pair bias_pair(const Shape& shape, DType dt, double lo, double hi, uint64_t seed) {
  const Tensor hb = random_host({shape.back()}, dt, lo, hi, seed);
  Shape strides(shape.size(), 0);
  strides.back() = 1;
  Pair p;
  p.side[0] = Tensor::view_of(hb.storage(), shape, strides, 0, dt);
  p.side[1] = mirror_on_gpu(p.side[0]);
  return p;
}

// An output Pair (contiguous); the two sides start from different values, so an element a
// kernel forgets to write cannot match.
inline Pair output_pair(const Shape& shape, DType dt) {
  Pair p;
  p.side[0] = Tensor::empty(shape, dt);
  p.side[1] = Tensor::empty(shape, TensorOptions(dt, Device::cuda(0)));
  cpu_be().fill(p.side[0], 0.0);
  gpu_be().fill(p.side[1], is_floating(dt) ? NAN : 7.0);
  return p;
}

inline Pair undefined_pair() { return Pair{}; }

// The values of a tensor (either side) in logical order, as double, read on the host.
inline std::vector<double> host_values(const Tensor& t) {
  if (t.device().is_cpu()) return t.to_vector<double>();
  Tensor h = Tensor::empty(t.shape(), t.dtype());
  gpu_be().copy(h, t);
  return h.to_vector<double>();
}

// Relative tolerance per dtype: f32 1e-5, f16/bf16 about 1e-2, integers exact.
inline double rel_tolerance(DType dt) {
  switch (dt) {
    case DType::f32: return 1e-5;
    case DType::f64: return 1e-11;
    case DType::f16: return 5e-3;
    case DType::bf16: return 2e-2;
    default: return 0.0;
  }
}

// Compares both sides of out: |gpu - cpu| <= tol * (|cpu| + 0.1 * max|cpu|); NaN only where the
// CPU has NaN. Returns false (and reports the first bad element) on mismatch.
inline bool same_values(const std::string& what, const Pair& out, double tol) {
  const std::vector<double> c = host_values(out[0]), g = host_values(out[1]);
  REQUIRE(c.size() == g.size());
  double max_abs = 0;
  for (double v : c)
    if (std::isfinite(v)) max_abs = std::max(max_abs, std::fabs(v));
  for (size_t i = 0; i < c.size(); ++i) {
    const bool ok = std::isnan(c[i]) ? std::isnan(g[i])
                    : std::isinf(c[i]) ? g[i] == c[i]
                                       : std::fabs(g[i] - c[i]) <= tol * (std::fabs(c[i]) + 0.1 * max_abs);
    if (!ok) {
      FAIL_CHECK(what << ": element " << i << " of " << c.size() << ": cpu " << c[i] << ", cuda " << g[i]);
      return false;
    }
  }
  return true;
}

// Runs fn on the CPU (side 0) and the GPU (side 1). When the CPU rejects the arguments the GPU
// must reject them too (the CPU kernel defines what is supported); otherwise each output is
// compared. Returns whether the case ran (false: both sides rejected it).
inline bool run_parity(const std::string& what, const std::function<void(Backend&, int)>& fn,
                       const std::vector<const Pair*>& outputs, double tol) {
  std::string cpu_error, gpu_error;
  try {
    fn(cpu_be(), 0);
  } catch (const Error& e) {
    cpu_error = e.what();
  }
  try {
    fn(gpu_be(), 1);
    cuda::synchronize(0);
  } catch (const Error& e) {
    gpu_error = e.what();
  }
  if (!cpu_error.empty() || !gpu_error.empty()) {
    CHECK_MESSAGE(!cpu_error.empty(), what << ": CUDA failed where the CPU succeeded: " << gpu_error);
    CHECK_MESSAGE(!gpu_error.empty(), what << ": CUDA accepted what the CPU rejects: " << cpu_error);
    return false;
  }
  bool all = true;
  for (const Pair* o : outputs) all = same_values(what, *o, tol) && all;
  CHECK_MESSAGE(all, what);
  return true;
}

}  // namespace zt::test
