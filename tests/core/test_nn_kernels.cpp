// Tests of the nn kernels of the device under test's backend (tests/test_device.h), called
// directly: softmax / log-softmax (+ backward), layer norm (+ backward by finite differences),
// cross-entropy (+ backward), index_select / index_add and dropout. Errors that depend on tensor
// values (an index or target out of range) are the CPU kernels' (Note [CUDA kernel errors]).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/ops.h"
#include "core/philox.h"
#include "core/tensor.h"
#include "tests/test_device.h"

namespace {

using zt::DType;
using zt::Shape;
using zt::Tensor;
using zt::test::opts;

// The kernels under test; cpu() for the value-dependent errors only the CPU reports.
zt::Backend& be() { return zt::backend_for(zt::test::device()); }
zt::cpu::CpuBackend& cpu() { return zt::cpu::cpu_backend(); }

// A contiguous host tensor of `shape` holding `values` (row-major) converted to `dt`.
Tensor host_tensor(const std::vector<double>& values, const Shape& shape, DType dt) {
  Tensor t = Tensor::empty(shape, dt);
  REQUIRE(size_t(t.numel()) == values.size());
  ZT_DISPATCH_ALL(dt, "nn_tensor", [&]<typename T>() {
    T* p = t.data<T>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = T(static_cast<zt::compute_t<T>>(values[i]));
  });
  return t;
}

// An uninitialised tensor on the device under test, for the kernels' outputs.
Tensor device_empty(const Shape& shape, DType dt) { return Tensor::empty(shape, opts(dt)); }

// host_tensor on the device under test.
Tensor nn_tensor(const std::vector<double>& values, const Shape& shape, DType dt) {
  return zt::test::on_device(host_tensor(values, shape, dt));
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// Smooth, non-repeating values in about [-2, 2].
std::vector<double> wave(int64_t n, double phase) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = 2.0 * std::sin(0.7 * double(i) + phase);
  return v;
}

double tol(DType dt) { return dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : 2e-2; }

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tolerance) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(got[i] - want[i]) <= tolerance * (1.0 + std::abs(want[i])));
  }
}

constexpr DType kFloatDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};

// Rounds values through dt, so references start from exactly the values the kernel sees.
std::vector<double> rounded(const std::vector<double>& v, DType dt) { return values(nn_tensor(v, {int64_t(v.size())}, dt)); }

}  // namespace

TEST_CASE("softmax: rows sum to 1 and equal exp(x) / sum(exp(x)); log_softmax is their log") {
  const int64_t R = 3, C = 7;
  for (DType dt : kFloatDTypes) {
    CAPTURE(zt::dtype_name(dt));
    std::vector<double> xv = rounded(wave(R * C, 0.3), dt);
    xv[0] = 80.0;  // exp(80) overflows f32 without the max subtraction
    if (dt == DType::f16) xv[0] = 11.0;  // f16 holds up to 65504
    Tensor x = nn_tensor(xv, {R, C}, dt);
    Tensor y = device_empty({R, C}, dt), ly = device_empty({R, C}, dt);
    be().softmax(y, x, false);
    be().softmax(ly, x, true);
    std::vector<double> want(size_t(R * C)), want_log(size_t(R * C));
    for (int64_t r = 0; r < R; ++r) {
      double mx = -1e300, s = 0;
      for (int64_t c = 0; c < C; ++c) mx = std::max(mx, xv[size_t(r * C + c)]);
      for (int64_t c = 0; c < C; ++c) s += std::exp(xv[size_t(r * C + c)] - mx);
      for (int64_t c = 0; c < C; ++c) {
        want[size_t(r * C + c)] = std::exp(xv[size_t(r * C + c)] - mx) / s;
        want_log[size_t(r * C + c)] = xv[size_t(r * C + c)] - mx - std::log(s);
      }
    }
    const std::vector<double> got = values(y);
    check_close(got, want, tol(dt));
    check_close(values(ly), want_log, tol(dt));
    for (int64_t r = 0; r < R; ++r) {
      const double s = std::accumulate(got.begin() + r * C, got.begin() + (r + 1) * C, 0.0);
      CHECK(std::abs(s - 1.0) <= tol(dt) * 2);
    }
  }
}

TEST_CASE("softmax_backward: Jacobian-vector products for softmax and log_softmax") {
  const int64_t R = 2, C = 5;
  for (DType dt : kFloatDTypes) {
    CAPTURE(zt::dtype_name(dt));
    Tensor x = nn_tensor(wave(R * C, 0.1), {R, C}, dt);
    Tensor g = nn_tensor(wave(R * C, 1.9), {R, C}, dt);
    const std::vector<double> gv = values(g);
    for (bool log : {false, true}) {
      CAPTURE(log);
      Tensor y = device_empty({R, C}, dt), gin = device_empty({R, C}, dt);
      be().softmax(y, x, log);
      be().softmax_backward(gin, g, y, log);
      const std::vector<double> yv = values(y);
      // dL/dx_j = sum_i g_i dy_i/dx_j with p = softmax(x): softmax dy_i/dx_j = p_i (d_ij - p_j);
      // log-softmax dy_i/dx_j = d_ij - p_j.
      std::vector<double> want(size_t(R * C));
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < C; ++j) {
          double acc = 0;
          for (int64_t i = 0; i < C; ++i) {
            const double pi = log ? std::exp(yv[size_t(r * C + i)]) : yv[size_t(r * C + i)];
            const double pj = log ? std::exp(yv[size_t(r * C + j)]) : yv[size_t(r * C + j)];
            const double d = (i == j ? 1.0 : 0.0) - pj;
            acc += gv[size_t(r * C + i)] * (log ? d : pi * d);
          }
          want[size_t(r * C + j)] = acc;
        }
      check_close(values(gin), want, dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : 5e-2);
    }
  }
}

TEST_CASE("layer_norm: hand example and zero-mean / unit-variance rows") {
  for (DType dt : kFloatDTypes) {
    CAPTURE(zt::dtype_name(dt));
    // x = [1 2 3 4]: mean 2.5, var 1.25; w = [1 2 1 2], b = [0 0 1 1].
    Tensor x = nn_tensor({1, 2, 3, 4}, {1, 4}, dt);
    Tensor w = nn_tensor({1, 2, 1, 2}, {4}, dt), b = nn_tensor({0, 0, 1, 1}, {4}, dt);
    Tensor y = device_empty({1, 4}, dt), mean = device_empty({1}, DType::f32), rstd = device_empty({1}, DType::f32);
    be().layer_norm(y, mean, rstd, x, w, b, 0.0);
    const double r = 1.0 / std::sqrt(1.25);
    check_close(values(y), {-1.5 * r, -0.5 * r * 2, 0.5 * r + 1, 1.5 * r * 2 + 1}, tol(dt) * 10);
    check_close(values(mean), {2.5}, 1e-6);
    check_close(values(rstd), {r}, 1e-6);

    const int64_t R = 5, C = 33;
    Tensor x2 = nn_tensor(wave(R * C, 0.5), {R, C}, dt);
    Tensor y2 = device_empty({R, C}, dt), m2 = device_empty({R}, DType::f32), r2 = device_empty({R}, DType::f32);
    be().layer_norm(y2, m2, r2, x2, Tensor(), Tensor(), 1e-5);
    const std::vector<double> yv = values(y2);
    for (int64_t row = 0; row < R; ++row) {
      double s = 0, ss = 0;
      for (int64_t c = 0; c < C; ++c) s += yv[size_t(row * C + c)];
      for (int64_t c = 0; c < C; ++c) ss += std::pow(yv[size_t(row * C + c)] - s / C, 2);
      CHECK(std::abs(s / C) <= 5 * tol(dt));
      CHECK(std::abs(ss / C - 1.0) <= 1e-3 + 5 * tol(dt));  // eps shifts the variance by ~1e-5
    }
  }
}

// L(x, w, b) = sum(gy * layer_norm(x, w, b)); backward must match its central differences.
TEST_CASE("layer_norm_backward: matches finite differences in f64") {
  const int64_t R = 3, C = 6;
  const double eps = 1e-5, h = 1e-6;
  for (DType stats : {DType::f64, DType::f32}) {
    CAPTURE(zt::dtype_name(stats));
    std::vector<double> xv = wave(R * C, 0.2), wv = wave(C, 1.1), bv = wave(C, 2.3), gyv = wave(R * C, 0.9);
    for (double& v : xv) v += 3.0;  // a mean far from zero
    auto loss = [&](const std::vector<double>& xs, const std::vector<double>& ws, const std::vector<double>& bs) {
      Tensor y = device_empty({R, C}, DType::f64), m = device_empty({R}, stats), r = device_empty({R}, stats);
      be().layer_norm(y, m, r, nn_tensor(xs, {R, C}, DType::f64), nn_tensor(ws, {C}, DType::f64),
                       nn_tensor(bs, {C}, DType::f64), eps);
      const std::vector<double> yv = values(y);
      return std::inner_product(yv.begin(), yv.end(), gyv.begin(), 0.0);
    };
    Tensor x = nn_tensor(xv, {R, C}, DType::f64), w = nn_tensor(wv, {C}, DType::f64);
    Tensor y = device_empty({R, C}, DType::f64), m = device_empty({R}, stats), r = device_empty({R}, stats);
    be().layer_norm(y, m, r, x, w, nn_tensor(bv, {C}, DType::f64), eps);
    Tensor gx = device_empty({R, C}, DType::f64), gw = nn_tensor(std::vector<double>(C, 7.0), {C}, DType::f64);
    Tensor gb = nn_tensor(std::vector<double>(C, 7.0), {C}, DType::f64);  // overwritten, not accumulated
    be().layer_norm_backward(gx, gw, gb, nn_tensor(gyv, {R, C}, DType::f64), x, m, r, w, Tensor());
    const double tolerance = stats == DType::f64 ? 1e-6 : 1e-5;
    auto numeric = [&](std::vector<double>& v, size_t i, auto&& eval) {
      const double old = v[i];
      v[i] = old + h;
      const double up = eval();
      v[i] = old - h;
      const double down = eval();
      v[i] = old;
      return (up - down) / (2 * h);
    };
    auto eval = [&] { return loss(xv, wv, bv); };
    const std::vector<double> gxv = values(gx), gwv = values(gw), gbv = values(gb);
    for (size_t i = 0; i < xv.size(); ++i) CHECK(gxv[i] == doctest::Approx(numeric(xv, i, eval)).epsilon(tolerance));
    for (size_t i = 0; i < wv.size(); ++i) CHECK(gwv[i] == doctest::Approx(numeric(wv, i, eval)).epsilon(tolerance));
    for (size_t i = 0; i < bv.size(); ++i) CHECK(gbv[i] == doctest::Approx(numeric(bv, i, eval)).epsilon(tolerance));

    // Without weight the same formula holds with w = 1; unwanted grads stay undefined.
    Tensor gx1 = device_empty({R, C}, DType::f64);
    be().layer_norm(y, m, r, x, Tensor(), Tensor(), eps);
    be().layer_norm_backward(gx1, Tensor(), Tensor(), nn_tensor(gyv, {R, C}, DType::f64), x, m, r, Tensor(),
                            Tensor());
    std::vector<double> ones(size_t(C), 1.0), zeros(size_t(C), 0.0);
    auto eval_plain = [&] { return loss(xv, ones, zeros); };
    const std::vector<double> gx1v = values(gx1);
    for (size_t i = 0; i < xv.size(); ++i)
      CHECK(gx1v[i] == doctest::Approx(numeric(xv, i, eval_plain)).epsilon(tolerance));
  }
}

TEST_CASE("layer_norm_backward: 16-bit and f32 agree with f64") {
  const int64_t R = 4, C = 16;
  const std::vector<double> xv = wave(R * C, 0.4), wv = wave(C, 1.3), gyv = wave(R * C, 2.2);
  auto run = [&](DType dt) {
    Tensor x = nn_tensor(rounded(xv, DType::bf16), {R, C}, dt), w = nn_tensor(rounded(wv, DType::bf16), {C}, dt);
    Tensor gy = nn_tensor(rounded(gyv, DType::bf16), {R, C}, dt);
    Tensor y = device_empty({R, C}, dt), m = device_empty({R}, DType::f32), r = device_empty({R}, DType::f32);
    be().layer_norm(y, m, r, x, w, Tensor(), 1e-5);
    Tensor gx = device_empty({R, C}, dt), gw = device_empty({C}, dt), gb = device_empty({C}, dt);
    be().layer_norm_backward(gx, gw, gb, gy, x, m, r, w, Tensor());
    return std::vector<std::vector<double>>{values(gx), values(gw), values(gb)};
  };
  const auto ref = run(DType::f64);
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    CAPTURE(zt::dtype_name(dt));
    const auto got = run(dt);
    const double t = dt == DType::f32 ? 1e-5 : 3e-2;
    for (size_t k = 0; k < 3; ++k) check_close(got[k], ref[k], t);
  }
}

TEST_CASE("cross_entropy: hand values, ignore_index and the gradient") {
  for (DType dt : kFloatDTypes) {
    for (DType it : {DType::i32, DType::i64}) {
      CAPTURE(zt::dtype_name(dt));
      CAPTURE(zt::dtype_name(it));
      Tensor logits = nn_tensor({1, 2, 3, 1, 1, 1, 5, -5, 0}, {3, 3}, dt);
      Tensor target = nn_tensor({2, 0, -100}, {3}, it);
      const DType loss_dt = dt == DType::f64 ? DType::f64 : DType::f32;  // f64 logits: f64 loss
      Tensor loss = device_empty({3}, loss_dt);
      be().cross_entropy(loss, logits, target, -100);
      const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
      check_close(values(loss), {lse0 - 3.0, std::log(3.0), 0.0}, dt == DType::f64 ? 1e-12 : tol(dt));

      Tensor grad_loss = nn_tensor({1.0, 0.5, 2.0}, {3}, loss_dt);
      Tensor grad = device_empty({3, 3}, dt);
      be().cross_entropy_backward(grad, grad_loss, logits, target, -100);
      const double p0 = std::exp(1.0 - lse0), p1 = std::exp(2.0 - lse0), p2 = std::exp(3.0 - lse0);
      check_close(values(grad), {p0, p1, p2 - 1.0, 0.5 / 3 - 0.5, 0.5 / 3, 0.5 / 3, 0, 0, 0}, tol(dt));
    }
  }
}

TEST_CASE("cross_entropy: a broadcast grad_loss and a custom ignore_index") {
  Tensor logits = nn_tensor({0, 0, 0, 0}, {2, 2}, DType::f32);
  Tensor target = nn_tensor({1, 7}, {2}, DType::i64);
  Tensor scalar = nn_tensor({0.5}, {1}, DType::f32);
  Tensor grad_loss = Tensor::view_of(scalar.storage(), {2}, {0}, 0, DType::f32);
  Tensor grad = device_empty({2, 2}, DType::f32);
  be().cross_entropy_backward(grad, grad_loss, logits, target, 7);
  check_close(values(grad), {0.25, -0.25, 0, 0}, 1e-6);
}

TEST_CASE("cross_entropy: an out-of-range target names the row, value and C") {
  // CPU only: on CUDA such a row's loss is NaN instead (Note [CUDA kernel errors]).
  const Tensor cpu_logits = host_tensor({0, 0, 0, 0, 0, 0}, {2, 3}, DType::f32);
  const Tensor cpu_loss = Tensor::empty({2}, DType::f32);
  CHECK_THROWS_WITH_AS(cpu().cross_entropy(cpu_loss, cpu_logits, host_tensor({0, 3}, {2}, DType::i64), -100),
                       doctest::Contains("target[1] = 3 is out of range for 3 classes"), zt::Error);
  CHECK_THROWS_WITH_AS(cpu().cross_entropy(cpu_loss, cpu_logits, host_tensor({-1, 0}, {2}, DType::i32), -100),
                       doctest::Contains("target[0] = -1"), zt::Error);
  Tensor loss = device_empty({2}, DType::f32);
  Tensor logits64 = nn_tensor({0, 0, 0, 0, 0, 0}, {2, 3}, DType::f64);
  CHECK_THROWS_WITH_AS(be().cross_entropy(loss, logits64, nn_tensor({0, 1}, {2}, DType::i64), -100),
                       doctest::Contains("loss must be f64 for f64 logits"), zt::Error);
}

TEST_CASE("index_select: dims 0 and 1, repeated indices, a strided source, every dtype") {
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8}) {
    CAPTURE(zt::dtype_name(dt));
    Tensor a = nn_tensor({0, 1, 2, 3, 4, 5}, {3, 2}, dt);  // [[0 1] [2 3] [4 5]]
    Tensor out0 = device_empty({3, 2}, dt);
    be().index_select(out0, a, 0, nn_tensor({2, 0, 2}, {3}, DType::i64));
    check_close(values(out0), {4, 5, 0, 1, 4, 5}, 0);
    Tensor out1 = device_empty({3, 3}, dt);
    be().index_select(out1, a, 1, nn_tensor({1, 1, 0}, {3}, DType::i32));
    check_close(values(out1), {1, 1, 0, 3, 3, 2, 5, 5, 4}, 0);
    // a^T as a view: (2, 3) [[0 2 4] [1 3 5]].
    Tensor at = Tensor::view_of(a.storage(), {2, 3}, {1, 2}, 0, dt);
    Tensor out2 = device_empty({2, 2}, dt);
    be().index_select(out2, at, 1, nn_tensor({2, 1}, {2}, DType::i64));
    check_close(values(out2), {4, 2, 5, 3}, 0);
  }
}

TEST_CASE("index_select: large gathers (the embedding case) and bounds errors") {
  const int64_t V = 50, C = 40, N = 2000;
  Tensor table = nn_tensor(wave(V * C, 0.0), {V, C}, DType::f32);
  std::vector<double> idx(N);
  for (int64_t i = 0; i < N; ++i) idx[size_t(i)] = double((i * 31) % V);
  Tensor out = device_empty({N, C}, DType::f32);
  be().index_select(out, table, 0, nn_tensor(idx, {N}, DType::i64));
  const std::vector<double> tv = values(table), ov = values(out);
  bool all_match = true;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t c = 0; c < C; ++c) all_match &= ov[size_t(i * C + c)] == tv[size_t(int64_t(idx[size_t(i)]) * C + c)];
  CHECK(all_match);
  // CPU only: on CUDA an index out of range traps and loses the context (Note [CUDA kernel errors]).
  const Tensor cpu_table = zt::raw::to(table, zt::Device::cpu());
  const Tensor cpu_out = Tensor::empty({1, C}, DType::f32);
  CHECK_THROWS_WITH_AS(cpu().index_select(cpu_out, cpu_table, 0, host_tensor({50}, {1}, DType::i64)),
                       doctest::Contains("index[0] = 50 is out of range for dim 0 of size 50"), zt::Error);
}

TEST_CASE("index_add: repeated indices accumulate, on dims 0 and 1") {
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i64}) {
    CAPTURE(zt::dtype_name(dt));
    Tensor out = nn_tensor({0, 0, 0, 0, 0, 0}, {3, 2}, dt);
    be().index_add(out, 0, nn_tensor({0, 2, 0}, {3}, DType::i64), nn_tensor({1, 2, 3, 4, 5, 6}, {3, 2}, dt));
    check_close(values(out), {6, 8, 0, 0, 3, 4}, 0);
    Tensor out1 = nn_tensor({1, 1, 1, 1}, {2, 2}, dt);
    be().index_add(out1, 1, nn_tensor({1, 1, 1}, {3}, DType::i32), nn_tensor({1, 2, 3, 4, 5, 6}, {2, 3}, dt));
    check_close(values(out1), {1, 7, 1, 16}, 0);
  }
  // CPU only, as for index_select.
  CHECK_THROWS_WITH_AS(cpu().index_add(Tensor::empty({2, 2}, DType::f32), 0, host_tensor({2}, {1}, DType::i64),
                                       Tensor::empty({1, 2}, DType::f32)),
                       doctest::Contains("out of range"), zt::Error);
}

TEST_CASE("index_add: many repeats across threads (the embedding backward)") {
  const int64_t V = 4, C = 600, N = 1000;
  std::vector<double> idx(N);
  for (int64_t i = 0; i < N; ++i) idx[size_t(i)] = double(i % V);
  Tensor out = nn_tensor(std::vector<double>(size_t(V * C), 0.0), {V, C}, DType::f32);
  be().index_add(out, 0, nn_tensor(idx, {N}, DType::i64), nn_tensor(std::vector<double>(size_t(N * C), 1.0), {N, C}, DType::f32));
  check_close(values(out), std::vector<double>(size_t(V * C), double(N / V)), 0);
}

TEST_CASE("dropout: the Philox rule, scaling, p = 0 and reproducibility") {
  const int64_t n = 100000;
  const double p = 0.3;
  for (DType dt : kFloatDTypes) {
    CAPTURE(zt::dtype_name(dt));
    Tensor x = nn_tensor(std::vector<double>(size_t(n), 1.5), {n}, dt);
    Tensor out = device_empty({n}, dt), mask = device_empty({n}, DType::u8);
    be().dropout(out, mask, x, p, 42, 8);
    const std::vector<double> mv = values(mask), ov = values(out);
    int64_t kept = 0;
    bool rule = true, scaled = true;
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = zt::philox::uniform(42, 8, uint64_t(i)) > float(p);
      rule &= (mv[size_t(i)] == 1.0) == keep;
      kept += keep;
      scaled &= std::abs(ov[size_t(i)] - (keep ? 1.5 / (1 - p) : 0.0)) <= tol(dt) * 2;
    }
    CHECK(rule);
    CHECK(scaled);
    CHECK(std::abs(double(kept) / double(n) - (1 - p)) < 0.01);

    Tensor out2 = device_empty({n}, dt), mask2 = device_empty({n}, DType::u8);
    be().dropout(out2, mask2, x, p, 42, 8);
    CHECK(values(mask2) == mv);
    be().dropout(out2, mask2, x, p, 42, 9);
    CHECK(values(mask2) != mv);

    be().dropout(out2, mask2, x, 0.0, 42, 8);
    CHECK(values(out2) == values(x));
    const std::vector<double> all = values(mask2);
    CHECK(std::all_of(all.begin(), all.end(), [](double v) { return v == 1.0; }));
  }
}

TEST_CASE("dropout: a strided input draws the mask by logical position") {
  Tensor x = nn_tensor(wave(6, 0.0), {2, 3}, DType::f32);
  Tensor xt = Tensor::view_of(x.storage(), {3, 2}, {1, 3}, 0, DType::f32);  // x^T
  Tensor out = device_empty({3, 2}, DType::f32), mask = device_empty({3, 2}, DType::u8);
  be().dropout(out, mask, xt, 0.5, 7, 0);
  const std::vector<double> xv = values(xt), ov = values(out), mv = values(mask);
  for (size_t i = 0; i < 6; ++i) {
    const bool keep = zt::philox::uniform(7, 0, i) > 0.5f;
    CHECK((mv[i] == 1.0) == keep);
    CHECK(ov[i] == doctest::Approx(keep ? xv[i] * 2.0 : 0.0));
  }
}

TEST_CASE("nn kernels through zt::raw") {
  Tensor x = nn_tensor({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f32);
  const std::vector<double> sm = values(zt::raw::softmax(x));
  const double e = std::exp(1.0), s = 1 + e + e * e;
  check_close(sm, {1 / s, e / s, e * e / s, 1 / s, e / s, e * e / s}, 1e-6);
  check_close(values(zt::raw::log_softmax(x)), {-std::log(s), 1 - std::log(s), 2 - std::log(s),
                                                -std::log(s), 1 - std::log(s), 2 - std::log(s)}, 1e-6);
  zt::raw::LayerNormResult ln = zt::raw::layer_norm(x, Tensor(), Tensor(), 0.0);
  const double r = std::sqrt(1.5);
  check_close(values(ln.y), {-r, 0, r, -r, 0, r}, 1e-5);
  Tensor loss = zt::raw::cross_entropy(x, nn_tensor({2, -100}, {2}, DType::i64));
  check_close(values(loss), {std::log(s) - 2, 0}, 1e-6);
  Tensor emb = zt::raw::index_select(x, 0, nn_tensor({1, 1, 0}, {3}, DType::i64));
  check_close(values(emb), {4, 5, 6, 4, 5, 6, 1, 2, 3}, 0);
  zt::Generator gen(3);
  zt::raw::DropoutResult d = zt::raw::dropout(x, 0.0, gen);
  check_close(values(d.out), values(x), 0);
}
