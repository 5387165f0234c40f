// Tests of the raw dispatch layer for matrix products and nn ops: matmul shape rules (2-D,
// batched, broadcast batches, flattened leading dims, transposes, strided operands), matmul_acc_,
// softmax over any dim, layer norm, cross-entropy, embedding, index_add_, dropout, and the host
// comparison helpers.
#include <doctest/doctest.h>

#include <cmath>

#include "core/philox.h"
#include "tests/core/core_test_util.h"

using namespace zt;
using namespace zt::test;

namespace {

// Reference (..., M, K) @ (..., K, N) on host doubles for contiguous f64 inputs of equal batch.
std::vector<double> ref_matmul(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const int64_t batch = a.numel() / (m * k);
  const std::vector<double> av = values(a), bv = values(b);
  std::vector<double> out(size_t(batch * m * n), 0.0);
  for (int64_t p = 0; p < batch; ++p)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q) s += av[size_t(p * m * k + i * k + q)] * bv[size_t(p * k * n + q * n + j)];
        out[size_t(p * m * n + i * n + j)] = s;
      }
  return out;
}

Tensor seq(const Shape& shape, double scale = 0.1, DType dt = DType::f64) {
  Tensor t = raw::reshape(arange(0, double(shape_numel(shape)), 1, opts(DType::f64)), shape);
  return raw::to(raw::unary(UnaryOp::neg, raw::binary(BinaryOp::sub, raw::mul(t, scale), 1.0)), dt);
}

Tensor materialize(const Tensor& t, const Shape& shape) {
  return raw::contiguous(raw::expand(t, shape));
}

}  // namespace

TEST_CASE("matmul: 2-D with every transpose combination") {
  Tensor a = make({1, 2, 3, 4, 5, 6}, {2, 3}), b = make({7, 8, 9, 10, 11, 12}, {3, 2});
  check_values(raw::matmul(a, b), {58, 64, 139, 154}, {2, 2});
  Tensor at = raw::contiguous(raw::transpose(a, 0, 1)), bt = raw::contiguous(raw::transpose(b, 0, 1));
  check_values(raw::matmul(at, b, true, false), {58, 64, 139, 154}, {2, 2});
  check_values(raw::matmul(a, bt, false, true), {58, 64, 139, 154}, {2, 2});
  check_values(raw::matmul(at, bt, true, true), {58, 64, 139, 154}, {2, 2});
  check_values(raw::matmul(raw::transpose(at, 0, 1), raw::transpose(bt, 0, 1)), {58, 64, 139, 154}, {2, 2});
}

TEST_CASE("matmul: leading dims flatten, batches broadcast, 2-D @ batched") {
  Tensor a = seq({2, 3, 4, 5}), b = seq({5, 6}, 0.05);
  Tensor out = raw::matmul(a, b);  // (..., M, K) @ (K, N)
  check_values(out, ref_matmul(a, materialize(b, {2, 3, 5, 6})), {2, 3, 4, 6});
  // A leading layout that cannot flatten (batch dims swapped) takes the batched path.
  Tensor ap = raw::permute(seq({3, 2, 4, 5}), {1, 0, 2, 3});
  check_values(raw::matmul(ap, b), ref_matmul(raw::contiguous(ap), materialize(b, {2, 3, 5, 6})), {2, 3, 4, 6});
  // (B, M, K) @ (B, K, N) and with transposes.
  Tensor x = seq({3, 4, 5}), y = seq({3, 5, 2}, 0.3);
  check_values(raw::matmul(x, y), ref_matmul(x, y), {3, 4, 2});
  check_values(raw::matmul(raw::contiguous(raw::transpose(x, 1, 2)), y, true, false), ref_matmul(x, y), {3, 4, 2});
  check_values(raw::matmul(x, raw::contiguous(raw::transpose(y, 1, 2)), false, true), ref_matmul(x, y), {3, 4, 2});
  // Broadcast batch dims: (2, 1, M, K) @ (3, K, N) -> (2, 3, M, N).
  Tensor p = seq({2, 1, 4, 5}), q = seq({3, 5, 2}, 0.2);
  check_values(raw::matmul(p, q), ref_matmul(materialize(p, {2, 3, 4, 5}), materialize(q, {2, 3, 5, 2})),
               {2, 3, 4, 2});
  // 2-D @ batched: the left matrix is shared.
  Tensor w = seq({4, 5});
  check_values(raw::matmul(w, y), ref_matmul(materialize(w, {3, 4, 5}), y), {3, 4, 2});
  // Transposed leading-dim case (trans_a on (..., K, M)).
  Tensor akm = seq({2, 5, 4});
  check_values(raw::matmul(akm, b, true, false),
               ref_matmul(raw::contiguous(raw::transpose(akm, 1, 2)), materialize(b, {2, 5, 6})), {2, 4, 6});
}

TEST_CASE("matmul: operands without a unit stride, and 16-bit dtypes") {
  Tensor big = seq({8, 10});
  Tensor a = raw::slice(raw::slice(big, 0, 0, 8, 2), 1, 0, 10, 2);  // (4, 5), strides (20, 2)
  Tensor b = seq({5, 3});
  check_values(raw::matmul(a, b), ref_matmul(raw::contiguous(a), b), {4, 3});
  Tensor e = raw::expand(seq({1, 5}), {4, 5});  // row stride 0
  check_values(raw::matmul(e, b), ref_matmul(raw::contiguous(e), b), {4, 3});
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    INFO(dtype_name(dt));
    Tensor x = raw::to(seq({2, 3, 8}), dt), y = raw::to(seq({8, 4}, 0.05), dt);
    Tensor r = raw::matmul(x, y);
    CHECK(r.dtype() == dt);
    // Against f64 of the same rounded inputs; one output rounding plus f32 accumulation.
    check_values(r, ref_matmul(raw::to(x, DType::f64), materialize(raw::to(y, DType::f64), {2, 8, 4})),
                 {2, 3, 4}, 4 * tolerance(dt));
  }
}

TEST_CASE("matmul: shape, dim and dtype errors name the operands") {
  std::string err = error_of([] { raw::matmul(ones({2, 3}, opts()), ones({4, 2}, opts())); });
  CHECK(contains(err, "(2, 3)"));
  CHECK(contains(err, "(4, 2)"));
  err = error_of([] { raw::matmul(ones({2, 3}, opts()), ones({2, 4}, opts()), true, true); });
  CHECK(contains(err, "(2, 4)^T"));
  CHECK(contains(error_of([] { raw::matmul(ones({3}, opts()), ones({3, 2}, opts())); }), "at least 2 dims"));
  err = error_of([] { raw::matmul(ones({2, 2, 3}, opts()), ones({3, 3, 2}, opts())); });
  CHECK(contains(err, "(2, 2, 3)"));
  CHECK(contains(err, "(3, 3, 2)"));
  const Tensor i64 = ones({2, 2}, opts(DType::i64));
  CHECK(contains(error_of([&] { raw::matmul(i64, i64); }), "i64"));
  err = error_of([] { raw::matmul(ones({2, 2}, opts()), ones({2, 2}, opts(DType::f64))); });
  CHECK(contains(err, "f32"));
  CHECK(contains(err, "f64"));
}

TEST_CASE("matmul_acc_: accumulate with alpha/beta, into strided outputs") {
  Tensor a = make({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64), b = make({7, 8, 9, 10, 11, 12}, {3, 2}, DType::f64);
  Tensor out = make({1, 1, 1, 1}, {2, 2}, DType::f64);
  raw::matmul_acc_(out, a, b, false, false, 0.5, 2.0);
  check_values(out, {31, 34, 71.5, 79}, {2, 2});
  Tensor base = zeros({2, 2}, opts(DType::f64));
  Tensor tview = raw::transpose(base, 0, 1);  // not contiguous
  raw::matmul_acc_(tview, a, b, false, false);
  check_values(base, {58, 139, 64, 154}, {2, 2});
  Tensor batched = zeros({2, 2, 2}, opts(DType::f64));
  raw::matmul_acc_(batched, raw::expand(a, {2, 2, 3}), b, false, false);
  check_values(batched, {58, 64, 139, 154, 58, 64, 139, 154}, {2, 2, 2});
  const std::string err = error_of([&] { raw::matmul_acc_(zeros({3, 2}, opts(DType::f64)), a, b, false, false); });
  CHECK(contains(err, "(3, 2)"));
  CHECK(contains(err, "(2, 2)"));
}

TEST_CASE("softmax and log_softmax over any dim") {
  Tensor x = make({0, 1, 2, 3, 4, 5}, {2, 3});
  const double e1 = std::exp(1.0), e2 = std::exp(2.0), s3 = 1 + e1 + e2;
  check_values(raw::softmax(x, 1), {1 / s3, e1 / s3, e2 / s3, 1 / s3, e1 / s3, e2 / s3}, {2, 3});
  const double e3 = std::exp(3.0);
  Tensor s0 = raw::softmax(x, 0);  // columns: (v, v + 3)
  check_values(s0, {1 / (1 + e3), 1 / (1 + e3), 1 / (1 + e3), e3 / (1 + e3), e3 / (1 + e3), e3 / (1 + e3)}, {2, 3});
  CHECK(s0.is_contiguous());
  check_values(raw::log_softmax(x, 0), {-std::log1p(e3), -std::log1p(e3), -std::log1p(e3),
                                        3 - std::log1p(e3), 3 - std::log1p(e3), 3 - std::log1p(e3)}, {2, 3});
  Tensor t = raw::transpose(seq({4, 3, 2}), 0, 2);  // (2, 3, 4), strided
  Tensor sm = raw::softmax(t, 1);
  check_values(raw::sum(sm, {1}), std::vector<double>(8, 1.0), {2, 4});
  check_values(raw::softmax(scalar_tensor(3.0, opts())), {1}, {});
  CHECK(contains(error_of([&] { raw::softmax(x, 2); }), "out of range"));
  CHECK(contains(error_of([] { raw::softmax(ones({2}, opts(DType::i32))); }), "i32"));
}

TEST_CASE("softmax_backward over a non-last dim equals y * (g - sum(g * y))") {
  Tensor x = seq({3, 4}, 0.3), g = seq({3, 4}, -0.2);
  Tensor y = raw::softmax(x, 0);
  Tensor gi = raw::softmax_backward(g, y, 0, false);
  Tensor dot = raw::sum(raw::mul(g, y), {0}, true);
  check_values(gi, values(raw::mul(y, raw::sub(g, dot))), {3, 4});
  // log_softmax: g - softmax * sum(g).
  Tensor ly = raw::log_softmax(x, 0);
  Tensor lgi = raw::softmax_backward(g, ly, 0, true);
  check_values(lgi, values(raw::sub(g, raw::mul(raw::unary(UnaryOp::exp, ly), raw::sum(g, {0}, true)))), {3, 4});
  CHECK(contains(error_of([&] { raw::softmax_backward(g, raw::softmax(seq({4, 3}), 0), 0, false); }), "(4, 3)"));
}

TEST_CASE("layer_norm dispatch: (..., C) input, affine params, statistics, backward grads") {
  Tensor x = make({1, 2, 3, 4, 2, 2, 2, 2}, {2, 1, 4}, DType::f64);
  Tensor w = make({1, 2, 1, 1}, {4}, DType::f64), b = make({0, 0, 1, 0}, {4}, DType::f64);
  raw::LayerNormResult r = raw::layer_norm(x, w, b, 1e-12);  // row 1 is constant: needs eps > 0
  const double s = 1 / std::sqrt(1.25);  // row 0: mean 2.5, var 1.25
  check_values(r.y, {-1.5 * s, -1 * s, 1 + 0.5 * s, 1.5 * s, 0, 0, 1, 0}, {2, 1, 4});
  check_values(r.mean, {2.5, 2}, {2});
  CHECK(r.mean.dtype() == DType::f64);
  CHECK(raw::layer_norm(raw::to(x, DType::bf16), Tensor(), Tensor(), 1e-5).rstd.dtype() == DType::f32);
  Tensor gy = seq({2, 1, 4});
  raw::LayerNormGrads g = raw::layer_norm_backward(gy, x, r.mean, r.rstd, w, true);
  CHECK(g.x.shape() == x.shape());
  check_values(g.bias, values(raw::sum(gy, {0, 1})), {4});
  REQUIRE(g.weight.defined());
  raw::LayerNormGrads nog = raw::layer_norm_backward(gy, x, r.mean, r.rstd, w, false);
  CHECK_FALSE(nog.weight.defined());
  CHECK_FALSE(nog.bias.defined());
  check_values(nog.x, values(g.x), {2, 1, 4});
  const std::string err = error_of([&] { raw::layer_norm(x, make({1, 1, 1}, {3}, DType::f64), b, 1e-5); });
  CHECK(contains(err, "(3,)"));
  CHECK(contains(err, "(2, 1, 4)"));
  CHECK(contains(error_of([&] { raw::layer_norm(x, raw::to(w, DType::f32), b, 1e-5); }), "f32"));
}

TEST_CASE("cross_entropy dispatch: strided logits, i32 targets, shape errors") {
  Tensor logits = raw::transpose(make({0, 0, 1, 0, 2, 0}, {3, 2}), 0, 1);  // (2, 3) strided
  Tensor target = make({2, 1}, {}, DType::i32);
  Tensor loss = raw::cross_entropy(logits, target);
  const double lse0 = std::log(1 + std::exp(1.0) + std::exp(2.0));
  check_values(loss, {lse0 - 2, std::log(3.0)}, {2});
  CHECK(loss.dtype() == DType::f32);
  Tensor grad = raw::cross_entropy_backward(make({1, 1}), logits, target);
  check_values(raw::sum(grad, {1}), {0, 0}, {2});
  check_values(raw::cross_entropy(logits, make({-100, 0}, {}, DType::i64)), {0, std::log(3.0)}, {2});
  CHECK(contains(error_of([&] { raw::cross_entropy(logits, make({0, 0, 0}, {}, DType::i64)); }), "(3,)"));
  CHECK(contains(error_of([&] { raw::cross_entropy(logits, make({0, 0}, {}, DType::f32)); }), "i32 or i64"));
}

TEST_CASE("embedding, index_select and index_add_ dispatch") {
  Tensor w = raw::reshape(arange(0, 15, 1, opts(DType::f32)), {5, 3});
  Tensor idx = make({4, 0, 4, 1}, {2, 2}, DType::i64);
  check_values(raw::embedding(w, idx), {12, 13, 14, 0, 1, 2, 12, 13, 14, 3, 4, 5}, {2, 2, 3});
  check_values(raw::index_select(w, 1, make({2, 0}, {}, DType::i32)), {2, 0, 5, 3, 8, 6, 11, 9, 14, 12}, {5, 2});
  // CPU only: on CUDA an index out of range traps and loses the context (Note [CUDA kernel errors]).
  const Tensor w_cpu = raw::to(w, Device::cpu());
  CHECK(contains(error_of([&] { raw::embedding(w_cpu, from_vector<double>({5}, {}, DType::i64)); }), "5"));
  Tensor acc = zeros({3, 2}, opts());
  Tensor acc_t = raw::transpose(acc, 0, 1);  // (2, 3), strided
  raw::index_add_(acc_t, 1, make({2, 2, 0}, {}, DType::i64), make({1, 2, 3, 4, 5, 6}, {2, 3}));
  check_values(acc, {3, 6, 0, 0, 3, 9}, {3, 2});
  const Tensor twos = ones({2, 2}, opts());
  CHECK(contains(error_of([&] { raw::index_add_(acc, 0, make({0}, {}, DType::i64), twos); }), "(1, 2)"));
}

TEST_CASE("dropout dispatch: p validated, counters reserved, mask and scale") {
  Generator gen(11);
  gen.set_state(11, 4);
  Tensor x = ones({1000}, opts());
  raw::DropoutResult r = raw::dropout(x, 0.25, gen);
  CHECK(gen.offset() == 4 + philox::counters_for(1000));
  CHECK(r.mask.dtype() == DType::u8);
  const std::vector<double> m = values(r.mask), o = values(r.out);
  int kept = 0, consistent = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    kept += int(m[i]);
    consistent += (m[i] == 1 && std::abs(o[i] - 1 / 0.75) < 1e-6) || (m[i] == 0 && o[i] == 0);
    CHECK(m[i] == double(philox::uniform(11, 4, i) > 0.25f));
  }
  CHECK(consistent == 1000);
  CHECK(std::abs(kept - 750) < 60);
  CHECK(contains(error_of([&] { raw::dropout(x, 1.0, gen); }), "[0, 1)"));
  CHECK(contains(error_of([&] { raw::dropout(x, -0.1, gen); }), "[0, 1)"));
}

TEST_CASE("allclose, max_abs_diff, all_finite") {
  Tensor a = make({1, 2, 3}), b = make({1, 2.000001, 3});
  CHECK(raw::allclose(a, b, 1e-5, 0));
  CHECK_FALSE(raw::allclose(a, b, 1e-8, 1e-8));
  CHECK(raw::max_abs_diff(a, b) == doctest::Approx(1e-6).epsilon(0.1));
  CHECK_FALSE(raw::allclose(make({NAN}), make({NAN})));
  CHECK(raw::allclose(make({INFINITY}), make({INFINITY})));
  CHECK(raw::allclose(make({1, 2}, {}, DType::f64), make({1, 2}, {}, DType::bf16)));
  CHECK(contains(error_of([&] { raw::allclose(a, make({1, 2})); }), "(3,)"));
  CHECK(raw::all_finite(a));
  CHECK_FALSE(raw::all_finite(make({1, INFINITY})));
  CHECK_FALSE(raw::all_finite(make({NAN, 1}, {}, DType::bf16)));
  CHECK_FALSE(raw::all_finite(make({1e5}, {}, DType::f16)));  // overflows to inf in f16
  CHECK_FALSE(raw::all_finite(raw::transpose(make({1, 2, 3, -INFINITY}, {2, 2}), 0, 1)));
  CHECK(raw::all_finite(make({1, 2}, {}, DType::i32)));
}
