// The fused attention op on the device under test (tests/test_device.h) against the unfused
// composition (matmul, mask, softmax, matmul) in f32, forward and backward; its lse, output layout
// and argument errors; and CausalSelfAttention / GPT with the fused path against the unfused one.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "core/attention_checks.h"
#include "core/backend.h"
#include "nn/attention.h"
#include "nn/gpt.h"
#include "tests/test_device.h"

using namespace zt;

namespace {

// normal(0, 1) f32 values on the device under test.
Tensor f32_randn(const Shape& shape, Generator* gen = nullptr) { return randn(shape, test::opts(DType::f32), gen); }

// The relative bound of an f32 comparison of the fused kernels with the unfused ops: `cpu` on the
// CPU. CUDA's kernels take exponentials in base 2 (exp2f) and sum in their own order: the parity
// tests' f32 bound there (attention_tolerance in tests/cuda/test_cuda_parity.cpp).
double f32_bound(double cpu) { return test::on_cuda() ? std::max(cpu, 1e-4) : cpu; }

Tensor f32_leaf(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  Tensor t = f32_randn(shape, &gen);
  set_requires_grad(t);
  return t;
}

// max |a - b| <= rel * max(max |b|, 1) (b the reference; shapes must match). The floor of 1, the
// inputs' scale: a gradient that is zero by cancellation (q and k at T = 1, where the softmax has
// one key) comes out of a fused kernel as rounding noise of its O(1) terms (P * (dP - delta)).
void expect_close(const Tensor& a, const Tensor& b, double rel, const std::string& what) {
  REQUIRE(a.defined());
  REQUIRE(b.defined());
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double scale = 0, err = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    scale = std::max(scale, std::fabs(y[i]));
    err = std::max(err, std::fabs(x[i] - y[i]));
  }
  INFO(what, ": max abs difference ", err, " against max magnitude ", scale);
  CHECK(std::isfinite(err));
  CHECK(err <= rel * std::max(scale, 1.0));
}

// (T, T): 0 where key <= query (or everywhere when not causal), -inf above the diagonal.
Tensor mask_for(int64_t T, bool causal) {
  std::vector<double> m(size_t(T * T), 0.0);
  for (int64_t i = 0; i < T && causal; ++i)
    for (int64_t j = i + 1; j < T; ++j) m[size_t(i * T + j)] = -std::numeric_limits<double>::infinity();
  return from_vector<double>(m, {T, T}, test::opts(DType::f32));
}

// The reference: softmax(q k^T * scale + mask) v from differentiable ops.
Tensor unfused(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale) {
  Tensor att = add(mul(matmul(q, k, false, true), scale), mask_for(q.size(2), causal));
  return matmul(softmax(att, -1), v);
}

struct Grads {
  Tensor out, q, k, v;
};

// Output and input gradients of fn(q, k, v) for sum(out * w).
template <typename Fn>
Grads run(Fn fn, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& w) {
  for (const Tensor& t : {q, k, v}) set_grad(t, Tensor());
  Tensor out = fn(q, k, v);
  backward(sum(mul(out, w)));
  return {detach(out), grad(q), grad(k), grad(v)};
}

struct Case {
  int64_t B, H, T, D;
};

}  // namespace

TEST_CASE("fused attention equals the unfused composition (f32, forward and backward)") {
  const Case cases[] = {{1, 1, 1, 16}, {2, 3, 17, 16}, {1, 2, 33, 5}, {2, 2, 64, 64}, {1, 1, 70, 128}};
  for (const Case& c : cases)
    for (bool causal : {true, false}) {
      INFO("B=", c.B, " H=", c.H, " T=", c.T, " D=", c.D, " causal=", causal);
      const Shape s{c.B, c.H, c.T, c.D};
      const Tensor q = f32_leaf(s, 1), k = f32_leaf(s, 2), v = f32_leaf(s, 3), w = f32_randn(s);
      const double scale = 1.0 / std::sqrt(double(c.D));
      const Grads fused = run([&](auto&... in) { return scaled_dot_product_attention(in..., causal); }, q, k, v, w);
      const Grads ref = run([&](auto&... in) { return unfused(in..., causal, scale); }, q, k, v, w);
      expect_close(fused.out, ref.out, f32_bound(1e-5), "out");
      expect_close(fused.q, ref.q, f32_bound(1e-5), "grad q");
      expect_close(fused.k, ref.k, f32_bound(1e-5), "grad k");
      expect_close(fused.v, ref.v, f32_bound(1e-5), "grad v");
    }
}

TEST_CASE("fused attention: lse is the log-sum-exp of each row's scaled, masked scores") {
  const Shape s{2, 2, 9, 6};
  const Tensor q = f32_randn(s), k = f32_randn(s), v = f32_randn(s);
  for (bool causal : {true, false}) {
    const raw::AttentionResult r = raw::attention(q, k, v, 0.3, causal);
    Tensor scores = raw::add(raw::mul(raw::matmul(q, k, false, true), 0.3), mask_for(9, causal));  // (B, H, T, T)
    Tensor mx = raw::amax(scores, {-1}, true);
    Tensor expected = raw::add(raw::reshape(mx, {2, 2, 9}),
                               raw::unary(UnaryOp::log, raw::sum(raw::unary(UnaryOp::exp, raw::sub(scores, mx)), {-1})));
    CHECK(r.lse.dtype() == DType::f32);
    expect_close(r.lse, expected, f32_bound(1e-6), causal ? "lse (causal)" : "lse");
  }
  // f64 inputs keep f64 statistics (gradchecks), 16-bit ones f32.
  CHECK(raw::attention(raw::to(q, DType::f64), raw::to(k, DType::f64), raw::to(v, DType::f64), 0.3, true).lse.dtype() ==
        DType::f64);
  CHECK(raw::attention(raw::to(q, DType::bf16), raw::to(k, DType::bf16), raw::to(v, DType::bf16), 0.3, true).lse.dtype() ==
        DType::f32);
}

// On CUDA 16-bit attention runs cuDNN's fused kernels (cuda/attention_cudnn.h), which round the
// probabilities to the input dtype before the second product too: the parity tests' bounds there.
TEST_CASE("fused attention: 16-bit inputs are computed in f32 and rounded once") {
  const Shape s{1, 2, 19, 40};
  const Tensor q = f32_randn(s), k = f32_randn(s), v = f32_randn(s);
  const Tensor ref = raw::attention(q, k, v, 0.2, true).out;
  for (DType dt : {DType::bf16, DType::f16}) {
    // The reference from the rounded inputs: what remains is the output's own rounding.
    const Tensor q16 = raw::to(q, dt), k16 = raw::to(k, dt), v16 = raw::to(v, dt);
    const Tensor want = raw::attention(raw::to(q16, DType::f32), raw::to(k16, DType::f32), raw::to(v16, DType::f32), 0.2,
                                       true).out;
    const Tensor got = raw::attention(q16, k16, v16, 0.2, true).out;
    CHECK(got.dtype() == dt);
    const double rounded_once = test::on_cuda() ? (dt == DType::bf16 ? 2e-2 : 5e-3) : (dt == DType::bf16 ? 8e-3 : 1e-3);
    expect_close(raw::to(got, DType::f32), want, rounded_once, dtype_name(dt));
    expect_close(raw::to(got, DType::f32), ref, 5e-2, std::string(dtype_name(dt)) + " vs f32 inputs");
  }
}

TEST_CASE("fused attention: output layout and strided inputs") {
  const int64_t B = 2, T = 7, H = 3, D = 4;
  const Tensor qkv = f32_randn({B, T, 3, H, D});
  auto part = [&](int64_t i) { return raw::transpose(raw::select(qkv, 2, i), 1, 2); };  // (B, H, T, D) views
  const raw::AttentionResult r = raw::attention(part(0), part(1), part(2), 0.5, true);
  CHECK(r.out.shape() == Shape{B, H, T, D});
  CHECK(raw::transpose(r.out, 1, 2).is_contiguous());  // (B, T, H, D) memory: heads merge as a view
  const raw::AttentionResult c =
      raw::attention(raw::contiguous(part(0)), raw::contiguous(part(1)), raw::contiguous(part(2)), 0.5, true);
  CHECK(raw::max_abs_diff(r.out, c.out) == 0.0);
  CHECK(raw::max_abs_diff(r.lse, c.lse) == 0.0);
  // A last dim without unit stride is copied first, with the same result.
  const Tensor qt = raw::transpose(raw::contiguous(raw::transpose(part(0), 2, 3)), 2, 3);
  REQUIRE(qt.stride(3) != 1);
  CHECK(raw::max_abs_diff(raw::attention(qt, part(1), part(2), 0.5, true).out, r.out) == 0.0);
}

TEST_CASE("packed_qkv_attention equals attention over the split slices, forward and backward, bitwise") {
  const int64_t B = 2, T = 9, H = 3, D = 4, C = H * D;
  for (DType dtype : {DType::f32, DType::bf16}) {
    for (bool causal : {true, false}) {
      INFO(dtype_name(dtype), " causal=", causal);
      const Tensor qkv = raw::to(f32_randn({B, T, 3 * C}), dtype);
      set_requires_grad(qkv, true);
      const Tensor w = raw::to(f32_randn({B, T, C}), dtype);
      const Tensor packed = packed_qkv_attention(qkv, H, causal);
      REQUIRE(packed.shape() == Shape{B, T, C});
      backward(sum(mul(packed, w)));
      const Tensor packed_grad = grad(qkv);
      set_grad(qkv, Tensor());
      // The split path: three (B, T, C) slices viewed as heads, merged back after attention.
      std::vector<Tensor> parts = split(qkv, C, 2);
      auto heads = [&](const Tensor& t) { return transpose(reshape(t, {B, T, H, D}), 1, 2); };
      const Tensor y = scaled_dot_product_attention(heads(parts[0]), heads(parts[1]), heads(parts[2]), causal);
      const Tensor split_out = reshape(contiguous(transpose(y, 1, 2)), {B, T, C});
      backward(sum(mul(split_out, w)));
      // Bitwise, except bf16 on CUDA: cuDNN's backward sums dQ with atomics, in no fixed order
      // (cuda/attention_cudnn.h), and may pick another engine for the packed gradient's layout.
      const double tol = test::on_cuda() && dtype == DType::bf16 ? 2e-2 : 0.0;
      CHECK(raw::max_abs_diff(packed, split_out) <= tol);
      CHECK(raw::max_abs_diff(packed_grad, grad(qkv)) <= tol);
    }
  }
}

TEST_CASE("attention_backward_into writes interleaved slices of one gradient; overlapping ones are refused") {
  const int64_t B = 1, T = 5, H = 2, D = 3, C = H * D;
  const Tensor qkv = f32_randn({B, T, 3 * C});
  auto heads = [&](const Tensor& packed, int64_t part) {
    return raw::transpose(raw::reshape(raw::narrow(packed, 2, part * C, C), {B, T, H, D}), 1, 2);
  };
  const raw::AttentionResult r = raw::attention(heads(qkv, 0), heads(qkv, 1), heads(qkv, 2), 0.5, true);
  const Tensor g = f32_randn({B, H, T, D});
  const raw::AttentionGrads want =
      raw::attention_backward(g, heads(qkv, 0), heads(qkv, 1), heads(qkv, 2), r.out, r.lse, 0.5, true);
  const Tensor packed = Tensor::empty({B, T, 3 * C}, test::opts(DType::f32));
  raw::attention_backward_into({heads(packed, 0), heads(packed, 1), heads(packed, 2)}, g, heads(qkv, 0),
                               heads(qkv, 1), heads(qkv, 2), r.out, r.lse, 0.5, true);
  CHECK(raw::max_abs_diff(heads(packed, 0), want.q) == 0.0);
  CHECK(raw::max_abs_diff(heads(packed, 1), want.k) == 0.0);
  CHECK(raw::max_abs_diff(heads(packed, 2), want.v) == 0.0);
  // Slices one element apart share elements: a clear error, nothing written.
  const Tensor shifted = raw::transpose(raw::reshape(raw::narrow(packed, 2, 1, C), {B, T, H, D}), 1, 2);
  CHECK_THROWS_WITH_AS(raw::attention_backward_into({heads(packed, 0), shifted, heads(packed, 2)}, g, heads(qkv, 0),
                                                    heads(qkv, 1), heads(qkv, 2), r.out, r.lse, 0.5, true),
                       doctest::Contains("outputs grad_q and grad_k overlap"), Error);
}

TEST_CASE("packed_qkv_attention: argument errors name what was wrong") {
  CHECK_THROWS_WITH_AS(packed_qkv_attention(f32_randn({2, 3}), 1),
                       doctest::Contains("qkv must be 3-D (B, T, 3C)"), Error);
  CHECK_THROWS_WITH_AS(packed_qkv_attention(f32_randn({1, 4, 12}), 3),
                       doctest::Contains("must be 3 * n_head * head_dim with n_head = 3"), Error);
}

TEST_CASE("fused attention: argument errors name what was wrong") {
  const Tensor q = f32_randn({1, 2, 5, 4}), k = f32_randn({1, 2, 5, 4});
  auto message = [](auto fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(message([&] { raw::attention(raw::reshape(q, {2, 5, 4}), k, k, 1.0, true); }).find("4-D (B, H, T, D)") !=
        std::string::npos);
  CHECK(message([&] { raw::attention(q, f32_randn({1, 2, 6, 4}), k, 1.0, true); }).find("k must have q's shape") !=
        std::string::npos);
  CHECK(message([&] { raw::attention(q, raw::to(k, DType::f64), k, 1.0, true); }).find("k must have q's dtype f32") !=
        std::string::npos);
  const Tensor wide = f32_randn({1, 1, 3, kMaxAttentionHeadDim + 1});
  CHECK(message([&] { raw::attention(wide, wide, wide, 1.0, true); }).find("head dim D must be in [1, 128]") !=
        std::string::npos);
  CHECK(message([&] { raw::attention(q, k, k, std::nan(""), true); }).find("scale must be finite") !=
        std::string::npos);
  CHECK(message([&] { raw::attention(raw::to(q, DType::i32), k, k, 1.0, true); }).find("floating dtype") !=
        std::string::npos);
  // The kernel contract, checked by every backend: lse dtype, outputs that overlap.
  Backend& be = backend_for(test::device());
  const Tensor out = Tensor::empty(q.shape(), test::opts(DType::f32));
  const Tensor lse64 = Tensor::empty({1, 2, 5}, test::opts(DType::f64));
  CHECK(message([&] { be.attention_forward(out, lse64, q, k, k, 1.0, true); })
            .find("lse must be a contiguous f32 tensor of shape (1, 2, 5)") != std::string::npos);
  const Tensor lse = Tensor::empty({1, 2, 5}, test::opts(DType::f32));
  CHECK(message([&] { be.attention_forward(q, lse, q, k, k, 1.0, true); }).find("output out overlaps input q") !=
        std::string::npos);
  const Tensor row = Tensor::empty({1, 1, 1, 4}, test::opts(DType::f32));
  CHECK(message([&] { be.attention_forward(raw::expand(row, q.shape()), lse, q, k, k, 1.0, true); })
            .find("output out has overlapping elements") != std::string::npos);
}

TEST_CASE("CausalSelfAttention: the fused path equals the unfused one (f32), and is skipped under dropout") {
  const int64_t C = 32, nh = 4;
  CausalSelfAttentionOptions o{C, nh, 0.0, true, nullptr};
  Generator g1(5), g2(5);
  o.generator = &g1;
  CausalSelfAttention fused(o);
  o.generator = &g2;
  o.fused = false;
  CausalSelfAttention unfused_attn(o);
  fused.to(test::device());
  unfused_attn.to(test::device());
  CHECK(fused.uses_fused());
  CHECK_FALSE(unfused_attn.uses_fused());
  Generator xg(6);
  const Tensor x = f32_randn({3, 13, C}, &xg), w = f32_randn({3, 13, C}, &xg);
  Tensor yf = fused(x), yu = unfused_attn(x);
  expect_close(yf, yu, f32_bound(1e-5), "output");
  backward(sum(mul(yf, w)));
  backward(sum(mul(yu, w)));
  const auto pf = fused.named_parameters(), pu = unfused_attn.named_parameters();
  REQUIRE(pf.size() == pu.size());
  for (size_t i = 0; i < pf.size(); ++i) {
    expect_close(grad(pf[i].second), grad(pu[i].second), f32_bound(1e-5), pf[i].first);
  }

  // With attention dropout: unfused while training, fused in eval mode (dropout is the identity).
  CausalSelfAttention dropping(CausalSelfAttentionOptions{C, nh, 0.3, true, nullptr});
  dropping.to(test::device());
  CHECK_FALSE(dropping.uses_fused());
  dropping.eval();
  CHECK(dropping.uses_fused());
  NoGradGuard ng;
  const Tensor eval_fused = dropping(x);
  dropping.set_fused(false);
  expect_close(eval_fused, dropping(x), f32_bound(1e-5), "eval output");
}

TEST_CASE("GPT: logits and gradients with fused attention match the unfused model (f32)") {
  GPTConfig c;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_embd = 32;
  c.block_size = 24;
  c.vocab_size = 37;
  Generator g1(11), g2(11);
  GPT fused(c, &g1), unfused_model(c, &g2);
  fused.to(test::device());
  unfused_model.to(test::device());
  int switched = 0;
  for (auto& [name, m] : unfused_model.named_modules())
    if (auto* attn = dynamic_cast<CausalSelfAttention*>(m)) {
      attn->set_fused(false);
      ++switched;
    }
  REQUIRE(switched == c.n_layer);
  Generator tg(12);
  const Tensor idx = randint(0, c.vocab_size, {2, 24}, test::opts(DType::i64), &tg);
  const Tensor targets = randint(0, c.vocab_size, {2, 24}, test::opts(DType::i64), &tg);
  expect_close(detach(fused(idx)), detach(unfused_model(idx)), f32_bound(1e-5), "logits");
  backward(fused.loss(idx, targets));
  backward(unfused_model.loss(idx, targets));
  const auto pf = fused.named_parameters(), pu = unfused_model.named_parameters();
  REQUIRE(pf.size() == pu.size());
  for (size_t i = 0; i < pf.size(); ++i) {
    expect_close(grad(pf[i].second), grad(pu[i].second), f32_bound(1e-4), pf[i].first);
  }
}
