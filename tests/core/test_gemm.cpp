// Tests of the GEMM kernel of the device under test's backend (tests/test_device.h), called
// directly: every transpose combination, transposed views, batches with a broadcast operand,
// alpha/beta, packed (stepped) operands and f16/bf16, against hand values and a naive triple loop;
// then the raw matrix-product ops (matmul, linear and the fused GELU / bias-gradient products).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "tests/test_device.h"

namespace {

using zt::DType;
using zt::Shape;
using zt::Tensor;

// The backend whose kernels are under test.
zt::Backend& backend() { return zt::backend_for(zt::test::device()); }

// A contiguous host tensor of `shape` holding `values` (row-major) converted to `dt`.
Tensor host_tensor(const std::vector<double>& values, const Shape& shape, DType dt) {
  Tensor t = Tensor::empty(shape, dt);
  REQUIRE(size_t(t.numel()) == values.size());
  ZT_DISPATCH_FLOATING(dt, "gemm_tensor", [&]<typename T>() {
    T* p = t.data<T>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = T(static_cast<zt::compute_t<T>>(values[i]));
  });
  return t;
}

// Deterministic small values in [-2, 2] (exactly representable in bf16 when step is 1/4).
std::vector<double> pattern(int64_t n, int seed) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = double(((i * 7 + seed * 13) % 17) - 8) / 4.0;
  return v;
}

// The transpose of a contiguous (rows, cols) tensor as a view: (cols, rows), strides (1, cols).
Tensor t_view(const Tensor& t) {
  return Tensor::view_of(t.storage(), {t.size(1), t.size(0)}, {1, t.size(1)}, t.offset(), t.dtype());
}

// out[b] = alpha * op(a[b]) @ op(b[b]) + beta * out0[b] on logical values (batch stride 0 for
// a 2-D operand).
std::vector<double> reference(const std::vector<double>& a, const Shape& as, bool ta,
                              const std::vector<double>& b, const Shape& bs, bool tb,
                              const std::vector<double>& out0, int64_t B, int64_t M, int64_t N,
                              int64_t K, double alpha, double beta) {
  auto at = [&](const std::vector<double>& v, const Shape& s, int64_t bi, int64_t r, int64_t c) {
    const int64_t R = s[s.size() - 2], C = s[s.size() - 1];
    const int64_t base = s.size() == 3 && s[0] > 1 ? bi * R * C : 0;
    return v[size_t(base + r * C + c)];
  };
  std::vector<double> out(size_t(B * M * N));
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += (ta ? at(a, as, bi, k, m) : at(a, as, bi, m, k)) * (tb ? at(b, bs, bi, n, k) : at(b, bs, bi, k, n));
        const size_t o = size_t((bi * M + m) * N + n);
        out[o] = alpha * acc + (beta == 0.0 ? 0.0 : beta * out0[o]);
      }
  return out;
}

double tolerance(DType dt) { return dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : 1e-2; }

void check_close(const Tensor& got, const std::vector<double>& want, DType dt) {
  const std::vector<double> g = got.to_vector<double>();
  REQUIRE(g.size() == want.size());
  for (size_t i = 0; i < g.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(g[i] - want[i]) <= tolerance(dt) * (1.0 + std::abs(want[i])));
  }
}

constexpr DType kGemmDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};

// host_tensor on the device under test.
Tensor gemm_tensor(const std::vector<double>& values, const Shape& shape, DType dt) {
  return zt::test::on_device(host_tensor(values, shape, dt));
}

// An uninitialised tensor on the device under test.
Tensor device_empty(const Shape& shape, DType dt) { return Tensor::empty(shape, {dt, zt::test::device()}); }

// A fused product against the separate ops it replaces: bitwise on the CPU (the same kernels).
// On CUDA the fusions run in cuBLASLt's epilogues (bias, GELU, bias gradient), whose GELU and
// choice of algorithm round differently from the separate kernels: equal there to dt's tolerance.
void check_fused(const Tensor& fused, const Tensor& composed, DType dt) {
  const double diff = zt::raw::max_abs_diff(fused, composed);
  const double scale = zt::raw::max_abs_diff(composed, zt::zeros_like(composed));
  INFO("max abs difference ", diff, " against max magnitude ", scale);
  CHECK(diff <= (zt::test::on_cuda() ? tolerance(dt) * (1.0 + scale) : 0.0));
}

}  // namespace

TEST_CASE("gemm: hand-computed 2x3 @ 3x2") {
  for (DType dt : kGemmDTypes) {
    CAPTURE(zt::dtype_name(dt));
    Tensor a = gemm_tensor({1, 2, 3, 4, 5, 6}, {2, 3}, dt);
    Tensor b = gemm_tensor({7, 8, 9, 10, 11, 12}, {3, 2}, dt);
    Tensor out = gemm_tensor({0, 0, 0, 0}, {2, 2}, dt);
    backend().gemm(out, a, b, false, false, 1.0, 0.0);
    // [1 2 3; 4 5 6] @ [7 8; 9 10; 11 12] = [58 64; 139 154]
    check_close(out, {58, 64, 139, 154}, dt);
  }
}

TEST_CASE("gemm: every transpose flag combination with contiguous operands") {
  const int64_t M = 5, N = 4, K = 3;
  for (DType dt : kGemmDTypes) {
    for (int combo = 0; combo < 4; ++combo) {
      const bool ta = combo & 1, tb = combo & 2;
      CAPTURE(zt::dtype_name(dt));
      CAPTURE(combo);
      const Shape as = ta ? Shape{K, M} : Shape{M, K}, bs = tb ? Shape{N, K} : Shape{K, N};
      const std::vector<double> av = pattern(M * K, 1), bv = pattern(K * N, 2), ov = pattern(M * N, 3);
      Tensor out = gemm_tensor(ov, {M, N}, dt);
      backend().gemm(out, gemm_tensor(av, as, dt), gemm_tensor(bv, bs, dt), ta, tb, 1.0, 0.0);
      check_close(out, reference(av, as, ta, bv, bs, tb, ov, 1, M, N, K, 1.0, 0.0), dt);
    }
  }
}

TEST_CASE("gemm: transposed views need no flag and combine with flags") {
  const int64_t M = 4, N = 6, K = 5;
  for (DType dt : kGemmDTypes) {
    for (int combo = 0; combo < 4; ++combo) {
      const bool ta = combo & 1, tb = combo & 2;
      CAPTURE(zt::dtype_name(dt));
      CAPTURE(combo);
      // Stored matrices are the transposes of what the view presents.
      const Shape a_view = ta ? Shape{K, M} : Shape{M, K}, b_view = tb ? Shape{N, K} : Shape{K, N};
      const std::vector<double> av = pattern(M * K, 4), bv = pattern(K * N, 5);
      // av/bv are the logical (row-major) values of the views; store their transposes.
      auto transpose_values = [](const std::vector<double>& v, int64_t R, int64_t C) {
        std::vector<double> t(v.size());
        for (int64_t r = 0; r < R; ++r)
          for (int64_t c = 0; c < C; ++c) t[size_t(c * R + r)] = v[size_t(r * C + c)];
        return t;
      };
      Tensor a_store = gemm_tensor(transpose_values(av, a_view[0], a_view[1]), {a_view[1], a_view[0]}, dt);
      Tensor b_store = gemm_tensor(transpose_values(bv, b_view[0], b_view[1]), {b_view[1], b_view[0]}, dt);
      Tensor a = t_view(a_store), b = t_view(b_store);
      REQUIRE(a.shape() == a_view);
      Tensor out = gemm_tensor(std::vector<double>(size_t(M * N), 0.0), {M, N}, dt);
      backend().gemm(out, a, b, ta, tb, 1.0, 0.0);
      check_close(out, reference(av, a_view, ta, bv, b_view, tb, {}, 1, M, N, K, 1.0, 0.0), dt);
    }
  }
}

TEST_CASE("gemm: alpha and beta") {
  const int64_t M = 3, N = 3, K = 4;
  for (DType dt : kGemmDTypes) {
    CAPTURE(zt::dtype_name(dt));
    const std::vector<double> av = pattern(M * K, 6), bv = pattern(K * N, 7), ov = pattern(M * N, 8);
    Tensor out = gemm_tensor(ov, {M, N}, dt);
    backend().gemm(out, gemm_tensor(av, {M, K}, dt), gemm_tensor(bv, {K, N}, dt), false, false, 2.0, 0.5);
    check_close(out, reference(av, {M, K}, false, bv, {K, N}, false, ov, 1, M, N, K, 2.0, 0.5), dt);
  }
}

TEST_CASE("gemm: batched, with a broadcast 2-D operand and a stride-0 batch") {
  const int64_t B = 3, M = 4, N = 5, K = 6;
  for (DType dt : kGemmDTypes) {
    CAPTURE(zt::dtype_name(dt));
    const std::vector<double> av = pattern(B * M * K, 9), bv = pattern(B * K * N, 10);
    const std::vector<double> b2 = pattern(K * N, 11), ov = pattern(B * M * N, 12);
    // Both operands batched, a transposed per batch.
    Tensor a3t = gemm_tensor(av, {B, K, M}, dt);
    Tensor out = gemm_tensor(ov, {B, M, N}, dt);
    backend().gemm(out, a3t, gemm_tensor(bv, {B, K, N}, dt), true, false, 1.0, 1.0);
    check_close(out, reference(av, {B, K, M}, true, bv, {B, K, N}, false, ov, B, M, N, K, 1.0, 1.0), dt);
    // b shared by every batch: as a 2-D tensor (the folded path) ...
    Tensor out2 = gemm_tensor(ov, {B, M, N}, dt);
    backend().gemm(out2, gemm_tensor(av, {B, M, K}, dt), gemm_tensor(b2, {K, N}, dt), false, false, 1.0, 0.0);
    const std::vector<double> want = reference(av, {B, M, K}, false, b2, {K, N}, false, ov, B, M, N, K, 1.0, 0.0);
    check_close(out2, want, dt);
    // ... and as a 3-D expand view with batch stride 0.
    Tensor b2t = gemm_tensor(b2, {K, N}, dt);
    Tensor b_expanded = Tensor::view_of(b2t.storage(), {B, K, N}, {0, N, 1}, 0, dt);
    Tensor out3 = gemm_tensor(ov, {B, M, N}, dt);
    backend().gemm(out3, gemm_tensor(av, {B, M, K}, dt), b_expanded, false, false, 1.0, 0.0);
    check_close(out3, want, dt);
  }
}

TEST_CASE("gemm: operands without a unit stride are packed") {
  const int64_t M = 3, N = 2, K = 4;
  for (DType dt : kGemmDTypes) {
    CAPTURE(zt::dtype_name(dt));
    // a: every other column of a (M, 2K) matrix, so neither dim has unit stride.
    const std::vector<double> wide = pattern(M * 2 * K, 13), bv = pattern(K * N, 14);
    Tensor a_wide = gemm_tensor(wide, {M, 2 * K}, dt);
    Tensor a = Tensor::view_of(a_wide.storage(), {M, K}, {2 * K, 2}, 0, dt);
    std::vector<double> av;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) av.push_back(wide[size_t(m * 2 * K + 2 * k)]);
    Tensor out = gemm_tensor(std::vector<double>(size_t(M * N), 0.0), {M, N}, dt);
    backend().gemm(out, a, gemm_tensor(bv, {K, N}, dt), false, false, 1.0, 0.0);
    check_close(out, reference(av, {M, K}, false, bv, {K, N}, false, {}, 1, M, N, K, 1.0, 0.0), dt);
  }
}

TEST_CASE("gemm: an empty inner dim scales out by beta") {
  Tensor out = gemm_tensor({1, 2, 3, 4}, {2, 2}, DType::f32);
  backend().gemm(out, device_empty({2, 0}, DType::f32), device_empty({0, 2}, DType::f32), false, false, 1.0, 0.5);
  check_close(out, {0.5, 1, 1.5, 2}, DType::f32);
}

TEST_CASE("gemm: bad dtypes and shapes are clear errors") {
  Tensor ai = device_empty({2, 2}, DType::i32);
  CHECK_THROWS_WITH_AS(backend().gemm(device_empty({2, 2}, DType::i32), ai, ai, false, false, 1, 0),
                       doctest::Contains("dtype i32 is not supported"), zt::Error);
  Tensor a = device_empty({2, 3}, DType::f32), b = device_empty({2, 2}, DType::f32);
  CHECK_THROWS_WITH_AS(backend().gemm(device_empty({2, 2}, DType::f32), a, b, false, false, 1, 0),
                       doctest::Contains("do not chain"), zt::Error);
}

TEST_CASE("gemm: raw::matmul with transposes and batches") {
  const int64_t B = 2, M = 3, N = 4, K = 5;
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(zt::dtype_name(dt));
    const std::vector<double> av = pattern(B * M * K, 15), bv = pattern(N * K, 16);
    // (B, M, K) @ (N, K)^T via the flag, and via a transposed view.
    Tensor a = gemm_tensor(av, {B, M, K}, dt), b = gemm_tensor(bv, {N, K}, dt);
    const std::vector<double> want = reference(av, {B, M, K}, false, bv, {N, K}, true, {}, B, M, N, K, 1.0, 0.0);
    Tensor c1 = zt::raw::matmul(a, b, false, true);
    CHECK(c1.shape() == Shape{B, M, N});
    check_close(c1, want, dt);
    Tensor c2 = zt::raw::matmul(a, zt::raw::transpose(b, 0, 1));
    check_close(c2, want, dt);
  }
}

TEST_CASE("gemm: an out that shares memory with an operand is an error") {
  Tensor a = gemm_tensor({1, 2, 3, 4}, {2, 2}, DType::f32);
  CHECK_THROWS_WITH_AS(backend().gemm(a, a, gemm_tensor({1, 0, 0, 1}, {2, 2}, DType::f32), false, false, 1, 0),
                       doctest::Contains("must not share memory"), zt::Error);
}

TEST_CASE("gemm: odd mid-size batched shapes in every transpose combination") {
  const int64_t B = 2, M = 67, N = 45, K = 33;
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    for (int combo = 0; combo < 4; ++combo) {
      const bool ta = combo & 1, tb = combo & 2;
      CAPTURE(zt::dtype_name(dt));
      CAPTURE(combo);
      const Shape as = ta ? Shape{B, K, M} : Shape{B, M, K}, bs = tb ? Shape{B, N, K} : Shape{B, K, N};
      const std::vector<double> av = pattern(B * M * K, 17), bv = pattern(B * K * N, 18), ov = pattern(B * M * N, 19);
      Tensor out = gemm_tensor(ov, {B, M, N}, dt);
      backend().gemm(out, gemm_tensor(av, as, dt), gemm_tensor(bv, bs, dt), ta, tb, -1.0, 1.0);
      check_close(out, reference(av, as, ta, bv, bs, tb, ov, B, M, N, K, -1.0, 1.0), dt);
    }
  }
}

TEST_CASE("gemm_bias and raw::linear: x W^T + b, over flattened leading dims; errors name the shapes") {
  const int64_t B = 2, T = 3, K = 5, N = 4;
  for (DType dt : kGemmDTypes) {
    CAPTURE(zt::dtype_name(dt));
    const std::vector<double> xv = pattern(B * T * K, 1), wv = pattern(N * K, 2), bv = pattern(N, 3);
    const Tensor x = gemm_tensor(xv, {B, T, K}, dt), w = gemm_tensor(wv, {N, K}, dt);
    const Tensor b = gemm_tensor(bv, {N}, dt);
    std::vector<double> want = reference(xv, {B * T, K}, false, wv, {N, K}, true, {}, 1, B * T, N, K, 1.0, 0.0);
    for (int64_t r = 0; r < B * T; ++r)
      for (int64_t n = 0; n < N; ++n) want[size_t(r * N + n)] += bv[size_t(n)];
    const Tensor y = zt::raw::linear(x, w, b);
    CHECK(y.shape() == Shape{B, T, N});
    check_close(y, want, dt);
    // A view whose rows do not flatten (a transposed batch) is packed into rows first, same values.
    const Tensor xt = zt::raw::transpose(zt::raw::contiguous(zt::raw::transpose(x, 0, 1)), 0, 1);
    REQUIRE_FALSE(xt.is_contiguous());
    check_close(zt::raw::linear(xt, w, b), want, dt);
    // K = 0: every row is the bias.
    const Tensor y0 = zt::raw::linear(device_empty({2, 0}, dt), device_empty({N, 0}, dt), b);
    std::vector<double> rows0;
    for (int r = 0; r < 2; ++r) rows0.insert(rows0.end(), bv.begin(), bv.end());
    check_close(y0, rows0, dt);
  }
  const Tensor x = device_empty({2, 5}, DType::f32), w = device_empty({4, 5}, DType::f32);
  CHECK_THROWS_WITH_AS(zt::raw::linear(x, w, device_empty({3}, DType::f32)),
                       doctest::Contains("weight (N, K) and bias (N)"), zt::Error);
  CHECK_THROWS_WITH_AS(zt::raw::linear(x, w, device_empty({4}, DType::f64)), doctest::Contains("dtype"), zt::Error);
  Tensor out = device_empty({2, 4}, DType::f32);
  CHECK_THROWS_WITH_AS(backend().gemm_bias(out, x, w, false, true, device_empty({5}, DType::f32), Tensor()),
                       doctest::Contains("gemm_bias: expected out (M, N) and a contiguous bias (N)"), zt::Error);
}

TEST_CASE("gemm_bias and raw::linear with a residual: op(x) W^T + b + r in one product; errors name the residual") {
  const int64_t M = 6, K = 5, N = 4;
  for (DType dt : kGemmDTypes) {
    for (bool ta : {false, true}) {
      CAPTURE(zt::dtype_name(dt));
      CAPTURE(ta);
      const Shape xs = ta ? Shape{K, M} : Shape{M, K};
      const std::vector<double> xv = pattern(M * K, 4), wv = pattern(N * K, 5), bv = pattern(N, 6),
                                rv = pattern(M * N, 7);
      std::vector<double> want = reference(xv, xs, ta, wv, {N, K}, true, {}, 1, M, N, K, 1.0, 0.0);
      for (int64_t r = 0; r < M; ++r)
        for (int64_t n = 0; n < N; ++n) want[size_t(r * N + n)] += bv[size_t(n)] + rv[size_t(r * N + n)];
      const Tensor x = gemm_tensor(xv, xs, dt), w = gemm_tensor(wv, {N, K}, dt), b = gemm_tensor(bv, {N}, dt);
      const Tensor residual = gemm_tensor(rv, {M, N}, dt);
      Tensor out = device_empty({M, N}, dt);
      backend().gemm_bias(out, x, w, ta, true, b, residual);
      check_close(out, want, dt);
      CHECK(residual.to_vector<double>() == rv);  // read, not written
    }
    // raw::linear over (B, T, K), a residual of the result's shape (a transposed view: made
    // contiguous first), and K = 0 (bias + residual).
    const int64_t B = 2, T = 3;
    const std::vector<double> xv = pattern(B * T * K, 1), wv = pattern(N * K, 2), bv = pattern(N, 3),
                              rv = pattern(B * T * N, 8);
    const Tensor x = gemm_tensor(xv, {B, T, K}, dt), w = gemm_tensor(wv, {N, K}, dt), b = gemm_tensor(bv, {N}, dt);
    const Tensor residual = gemm_tensor(rv, {B, T, N}, dt);
    std::vector<double> want = reference(xv, {B * T, K}, false, wv, {N, K}, true, {}, 1, B * T, N, K, 1.0, 0.0);
    for (int64_t r = 0; r < B * T; ++r)
      for (int64_t n = 0; n < N; ++n) want[size_t(r * N + n)] += bv[size_t(n)] + rv[size_t(r * N + n)];
    const Tensor y = zt::raw::linear(x, w, b, residual);
    CHECK(y.shape() == Shape{B, T, N});
    check_close(y, want, dt);
    const Tensor rt = zt::raw::transpose(zt::raw::contiguous(zt::raw::transpose(residual, 0, 1)), 0, 1);
    REQUIRE_FALSE(rt.is_contiguous());
    check_close(zt::raw::linear(x, w, b, rt), want, dt);
    std::vector<double> rows0(rv.begin(), rv.begin() + 2 * N);
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t n = 0; n < N; ++n) rows0[size_t(r * N + n)] += bv[size_t(n)];
    const Tensor r0 = gemm_tensor(std::vector<double>(rv.begin(), rv.begin() + 2 * N), {2, N}, dt);
    check_close(zt::raw::linear(device_empty({2, 0}, dt), device_empty({N, 0}, dt), b, r0), rows0, dt);
  }
  if (!zt::test::on_cuda()) {
    // bf16 rounds residual + bias + product once: 256 + 1 + 1 = 258 exactly, where rounding
    // 256 + 1 first (to 256, the even neighbour) would end at 256 again.
    const DType bf16 = DType::bf16;
    Tensor out = device_empty({1, 1}, bf16);
    backend().gemm_bias(out, gemm_tensor({1}, {1, 1}, bf16), gemm_tensor({1}, {1, 1}, bf16), false, true,
                        gemm_tensor({1}, {1}, bf16), gemm_tensor({256}, {1, 1}, bf16));
    CHECK(out.to_vector<double>() == std::vector<double>{258});
  }
  // Errors: the residual's shape, dtype, layout and aliasing; out's layout.
  const DType f32 = DType::f32;
  const Tensor x = device_empty({2, 5}, f32), w = device_empty({4, 5}, f32), b = device_empty({4}, f32);
  Tensor out = device_empty({2, 4}, f32);
  const auto expected = doctest::Contains("gemm_bias: expected a contiguous residual (2, 4) of f32");
  CHECK_THROWS_WITH_AS(backend().gemm_bias(out, x, w, false, true, b, device_empty({2, 3}, f32)), expected, zt::Error);
  CHECK_THROWS_WITH_AS(backend().gemm_bias(out, x, w, false, true, b, device_empty({4, 2}, f32)), expected, zt::Error);
  CHECK_THROWS_WITH_AS(backend().gemm_bias(out, x, w, false, true, b, device_empty({2, 4}, DType::f64)), expected,
                       zt::Error);
  CHECK_THROWS_WITH_AS(backend().gemm_bias(out, x, w, false, true, b, t_view(device_empty({4, 2}, f32))), expected,
                       zt::Error);
  CHECK_THROWS_WITH_AS(backend().gemm_bias(out, x, w, false, true, b, out), doctest::Contains("share memory with out"),
                       zt::Error);
  const Tensor wide = device_empty({2, 6}, f32);
  const Tensor strided_out = Tensor::view_of(wide.storage(), {2, 4}, {6, 1}, wide.offset(), f32);
  CHECK_THROWS_WITH_AS(backend().gemm_bias(strided_out, x, w, false, true, b, device_empty({2, 4}, f32)),
                       doctest::Contains("out must be contiguous when a residual is added"), zt::Error);
  CHECK_THROWS_WITH_AS(zt::raw::linear(x, w, b, device_empty({2, 5}, f32)),
                       doctest::Contains("linear: expected a residual of the result's shape (2, 4)"), zt::Error);
  CHECK_THROWS_WITH_AS(zt::raw::linear(x, w, b, device_empty({2, 4}, DType::f64)),
                       doctest::Contains("linear: operands must share a dtype"), zt::Error);
}

TEST_CASE("linear_gelu, gelu_linear_input_grads and linear_weight_grads equal their compositions") {
  const int64_t B = 2, T = 3, K = 5, N = 6, M = 4;
  for (DType dt : kGemmDTypes) {
    CAPTURE(zt::dtype_name(dt));
    const Tensor x = gemm_tensor(pattern(B * T * K, 1), {B, T, K}, dt);
    const Tensor w1 = gemm_tensor(pattern(N * K, 2), {N, K}, dt), b1 = gemm_tensor(pattern(N, 3), {N}, dt);
    const Tensor w2 = gemm_tensor(pattern(M * N, 4), {M, N}, dt);
    const Tensor g = gemm_tensor(pattern(B * T * M, 5), {B, T, M}, dt);
    // Forward: pre = x w1^T + b1, out = gelu_tanh(pre), each rounded as the separate ops round.
    const zt::raw::LinearGelu h = zt::raw::linear_gelu(x, w1, b1);
    const Tensor pre = zt::raw::linear(x, w1, b1);
    CHECK(h.pre.shape() == Shape{B, T, N});
    check_fused(h.pre, pre, dt);
    check_fused(h.out, zt::raw::unary(zt::UnaryOp::gelu_tanh, pre), dt);
    // Backward through the second layer's input and the GELU: (g w2) * gelu'(pre), column sums.
    const zt::raw::GeluLinearGrads d = zt::raw::gelu_linear_input_grads(g, w2, pre);
    const Tensor d_pre = zt::raw::unary_backward(zt::UnaryOp::gelu_tanh, zt::raw::matmul(g, w2), pre);
    check_fused(d.pre, d_pre, dt);
    const double sum_tol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : 3e-2;
    CHECK(zt::raw::max_abs_diff(d.bias, zt::raw::sum(d_pre, {0, 1})) <= sum_tol);
    // Weight and bias gradients of a layer from one product: g^T h and the column sums of g.
    const zt::raw::LinearGrads wb = zt::raw::linear_weight_grads(g, h.out);
    const Tensor g2 = zt::raw::reshape(g, {B * T, M}), h2 = zt::raw::reshape(h.out, {B * T, N});
    check_fused(wb.weight, zt::raw::matmul(g2, h2, true, false), dt);
    CHECK(zt::raw::max_abs_diff(wb.bias, zt::raw::sum(g, {0, 1})) <= sum_tol);
  }
  // No rows: the bias gradients are zeros.
  const DType f32 = DType::f32;
  const Tensor w = device_empty({3, 2}, f32);
  const zt::raw::GeluLinearGrads none =
      zt::raw::gelu_linear_input_grads(device_empty({0, 3}, f32), w, device_empty({0, 2}, f32));
  CHECK(none.bias.to_vector<double>() == std::vector<double>{0, 0});
  const zt::raw::LinearGrads none_wb =
      zt::raw::linear_weight_grads(device_empty({0, 3}, f32), device_empty({0, 2}, f32));
  CHECK(none_wb.bias.to_vector<double>() == std::vector<double>{0, 0, 0});
  CHECK(none_wb.weight.to_vector<double>() == std::vector<double>(6, 0.0));
  CHECK_THROWS_WITH_AS(zt::raw::linear_weight_grads(device_empty({4, 3}, f32), device_empty({5, 2}, f32)),
                       doctest::Contains("must share their leading dims"), zt::Error);
  CHECK_THROWS_WITH_AS(zt::raw::gelu_linear_input_grads(device_empty({4, 3}, f32), w, device_empty({4, 5}, f32)),
                       doctest::Contains("expected grad_out (..., N), weight (N, K) and pre (..., K)"), zt::Error);
}

TEST_CASE("raw::linear with a transposed weight view and a strided input equals matmul plus bias") {
  const int64_t R = 7, K = 6, N = 5;
  for (DType dt : kGemmDTypes) {
    CAPTURE(zt::dtype_name(dt));
    // weight (N, K) as the transpose of a contiguous (K, N): unit stride in its first dim.
    const Tensor wt = gemm_tensor(pattern(K * N, 7), {K, N}, dt);
    const Tensor w = t_view(wt);
    REQUIRE_FALSE(w.is_contiguous());
    // x: every other row of a (2R, K) tensor.
    const Tensor big = gemm_tensor(pattern(2 * R * K, 8), {2 * R, K}, dt);
    const Tensor x = zt::raw::slice(big, 0, 0, 2 * R, 2);
    REQUIRE(x.shape() == Shape{R, K});
    const Tensor b = gemm_tensor(pattern(N, 9), {N}, dt);
    Tensor want = zt::raw::matmul(x, w, false, true);
    zt::raw::binary_(zt::BinaryOp::add, want, b);
    const double tol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : 2e-2;
    CHECK(zt::raw::max_abs_diff(zt::raw::linear(x, w, b), want) <= tol * 8);
    const zt::raw::LinearGelu h = zt::raw::linear_gelu(x, w, b);
    CHECK(zt::raw::max_abs_diff(h.pre, want) <= tol * 8);
    check_fused(h.out, zt::raw::unary(zt::UnaryOp::gelu_tanh, h.pre), dt);
  }
}
