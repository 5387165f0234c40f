// gradcheck (f64 finite differences) of the matrix products, shape ops and nn functions in
// autograd/ops.h.
#include <cmath>
#include <functional>
#include <string>

#include "autograd/meta.h"
#include "helpers.h"

namespace zt {
namespace {

using test::expect_gradcheck;
using test::expect_values;
using test::leaf;
using V = std::vector<Tensor>;

TEST_CASE("gradcheck: matmul, every transpose combination, 2-D and batched") {
  const int64_t B = 2, M = 3, K = 4, N = 2;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      Shape sa = ta ? Shape{K, M} : Shape{M, K}, sb = tb ? Shape{N, K} : Shape{K, N};
      auto fn = [=](const V& in) { return matmul(in[0], in[1], ta, tb); };
      expect_gradcheck(fn, {leaf(sa, 1), leaf(sb, 2)});
      // Batched on both sides.
      Shape ba = {B, sa[0], sa[1]}, bb = {B, sb[0], sb[1]};
      expect_gradcheck(fn, {leaf(ba, 3), leaf(bb, 4)});
      // A batch of rows times one shared matrix, also with two batch dims.
      expect_gradcheck(fn, {leaf(ba, 5), leaf(sb, 6)});
      expect_gradcheck(fn, {leaf({2, B, sa[0], sa[1]}, 7), leaf(sb, 8)});
    }
  }
  Tensor a = leaf({M, K}, 9), b = leaf({K, N}, 10);
  Tensor out = matmul(a, b);
  CHECK(out.shape() == Shape{M, N});
}

TEST_CASE("gradcheck: linear with and without bias") {
  Tensor x2 = leaf({3, 4}, 11), x3 = leaf({2, 3, 4}, 12), w = leaf({5, 4}, 13), b = leaf({5}, 14);
  expect_gradcheck([](const V& in) { return linear(in[0], in[1], in[2]); }, {x2, w, b});
  expect_gradcheck([](const V& in) { return linear(in[0], in[1], in[2]); }, {x3, w, b});
  expect_gradcheck([](const V& in) { return linear(in[0], in[1]); }, {x2, w});
  expect_gradcheck([](const V& in) { return linear(in[0], in[1]); }, {x3, w});
  // Only the weight requires grad (the first layer of a network).
  Tensor x_const = detach(x3);
  expect_gradcheck([&](const V& in) { return linear(x_const, in[0], in[1]); }, {w, b});
}

std::string last_op(const Tensor& t) { return autograd::meta_of(t)->grad_fn->name; }

// Whether out was recorded by `op` and backward hands residual the gradient of out itself (seen
// by a hook on the residual before it is accumulated), not a copy.
bool residual_grad_is_output_grad(const Tensor& out, const Tensor& residual, const std::string& op) {
  CHECK(last_op(out) == op);
  const Tensor g = detach(leaf(out.shape(), 21));
  Tensor seen;
  const HookHandle h = register_grad_hook(residual, [&](const Tensor& t) {
    seen = t;
    return Tensor();
  });
  backward(out, g);
  remove_hook(residual, h);
  return seen.defined() && seen.same_impl(g);
}

TEST_CASE("gradcheck: linear with a residual added in its GEMM, and the residuals it adds apart") {
  Tensor x2 = leaf({3, 4}, 15), x3 = leaf({2, 3, 4}, 16), w = leaf({5, 4}, 17), b = leaf({5}, 18);
  Tensor r2 = leaf({3, 5}, 19), r3 = leaf({2, 3, 5}, 20);
  auto fn = [](const V& in) { return linear(in[0], in[1], in[2], in[3]); };
  expect_gradcheck(fn, {x2, w, b, r2});
  expect_gradcheck(fn, {x3, w, b, r3});
  // The residual's gradient is the output's, the very tensor (no copy).
  CHECK(residual_grad_is_output_grad(linear(x3, w, b, r3), r3, "linear"));
  // Only the residual requires grad; without a bias, or with a broadcast residual, a separate add.
  const Tensor xc = detach(x3), wc = detach(w), bc = detach(b);
  expect_gradcheck([&](const V& in) { return linear(xc, wc, bc, in[0]); }, {r3});
  expect_gradcheck([](const V& in) { return linear(in[0], in[1], Tensor(), in[2]); }, {x3, w, r3});
  Tensor r_row = leaf({5}, 22);
  expect_gradcheck(fn, {x3, w, b, r_row});
  CHECK(last_op(linear(x3, w, b, r_row)) == "add");
}

TEST_CASE("gradcheck: gelu_mlp over (B, T, C) and (N, C) inputs, every argument differentiated") {
  const Tensor w1 = leaf({6, 3}, 61), b1 = leaf({6}, 62), w2 = leaf({4, 6}, 63), b2 = leaf({4}, 64);
  for (const Shape& xs : {Shape{5, 3}, Shape{2, 3, 3}}) {
    INFO("x ", shape_str(xs));
    expect_gradcheck([](const V& in) { return gelu_mlp(in[0], in[1], in[2], in[3], in[4]); },
                     {leaf(xs, 60), w1, b1, w2, b2});
  }
  // Only the second layer trains: the first layer's gradients are not computed.
  const Tensor x = detach(leaf({5, 3}, 60)), w1c = detach(w1), b1c = detach(b1);
  expect_gradcheck([&](const V& in) { return gelu_mlp(x, w1c, b1c, in[0], in[1]); }, {w2, b2});
}

TEST_CASE("gradcheck: gelu_mlp with a residual added in its second GEMM") {
  const Tensor w1 = leaf({6, 3}, 71), b1 = leaf({6}, 72), w2 = leaf({4, 6}, 73), b2 = leaf({4}, 74);
  for (const Shape& xs : {Shape{5, 3}, Shape{2, 3, 3}}) {
    INFO("x ", shape_str(xs));
    Shape rs = xs;
    rs.back() = 4;
    const Tensor x = leaf(xs, 70), r = leaf(rs, 75);
    expect_gradcheck([](const V& in) { return gelu_mlp(in[0], in[1], in[2], in[3], in[4], in[5]); },
                     {x, w1, b1, w2, b2, r});
    CHECK(residual_grad_is_output_grad(gelu_mlp(x, w1, b1, w2, b2, r), r, "gelu_mlp"));
  }
  // A broadcast residual is added apart.
  const Tensor x = leaf({5, 3}, 70), r_row = leaf({4}, 77);
  expect_gradcheck([](const V& in) { return gelu_mlp(in[0], in[1], in[2], in[3], in[4], in[5]); },
                   {x, w1, b1, w2, b2, r_row});
}

TEST_CASE("gradcheck: view ops") {
  Tensor a = leaf({2, 3, 4}, 15);
  expect_gradcheck([](const V& in) { return reshape(in[0], {4, -1}); }, {a});
  expect_gradcheck([](const V& in) { return transpose(in[0], 0, 2); }, {a});
  expect_gradcheck([](const V& in) { return permute(in[0], {2, 0, 1}); }, {a});
  expect_gradcheck([](const V& in) { return narrow(in[0], 2, 1, 2); }, {a});
  expect_gradcheck([](const V& in) { return slice(in[0], 2, 0, 4, 2); }, {a});
  expect_gradcheck([](const V& in) { return slice(in[0], -2, 1, 3); }, {a});
  expect_gradcheck([](const V& in) { return select(in[0], 1, 2); }, {a});
  expect_gradcheck([](const V& in) { return unsqueeze(in[0], 1); }, {a});
  expect_gradcheck([](const V& in) { return squeeze(in[0], 1); }, {leaf({3, 1, 2}, 16)});
  expect_gradcheck([](const V& in) { return flatten(in[0], 1); }, {a});
  expect_gradcheck([](const V& in) { return flatten(in[0]); }, {a});
  expect_gradcheck([](const V& in) { return expand(in[0], {2, 3, 4}); }, {leaf({3, 1}, 17)});
  expect_gradcheck([](const V& in) { return contiguous(transpose(in[0], 0, 1)); }, {a});
  // A view of a view, then an op that needs contiguous data.
  expect_gradcheck([](const V& in) { return softmax(transpose(narrow(in[0], 1, 1, 2), 0, 1)); }, {a});
}

TEST_CASE("to(dtype): gradient cast back") {
  Tensor x = leaf({2, 3}, 18);
  // f64 -> f32: finite differences see f32 rounding, so a larger step and tolerance.
  GradcheckOptions loose;
  loose.eps = 1e-2;
  loose.atol = 1e-4;
  expect_gradcheck([](const V& in) { return to(in[0], DType::f32); }, {x}, loose);
  expect_gradcheck([](const V& in) { return to(in[0], DType::f64) * 2.0; }, {x});
  Tensor y = to(x * 3.0, DType::f32);
  CHECK(y.dtype() == DType::f32);
  backward(sum(y));
  CHECK(grad(x).dtype() == DType::f64);
  expect_values(grad(x), {3, 3, 3, 3, 3, 3});
}

TEST_CASE("gradcheck: cat and split") {
  Tensor a = leaf({2, 3}, 19), b = leaf({2, 1}, 20), c = leaf({2, 2}, 21);
  expect_gradcheck([](const V& in) { return cat({in[0], in[1], in[2]}, 1); }, {a, b, c});
  expect_gradcheck([](const V& in) { return cat({in[0], in[0]}, 0); }, {a});
  Tensor constant = test::f64({1, 2}, {2, 1});
  expect_gradcheck([&](const V& in) { return cat({constant, in[0]}, -1); }, {a});
  Tensor x = leaf({5, 3}, 22);
  expect_gradcheck([](const V& in) {
    std::vector<Tensor> parts = split(in[0], 2, 0);  // 2, 2, 1 rows
    return cat({parts[2] * 2.0, parts[0]}, 0);        // parts[1] gets no gradient
  }, {x});
  expect_gradcheck([](const V& in) {
    std::vector<Tensor> parts = split(in[0], std::vector<int64_t>{1, 2}, 1);
    return parts[0] * parts[1];  // broadcast (5, 1) * (5, 2)
  }, {x});
}

TEST_CASE("gradcheck: index_select and embedding with repeated indices") {
  Tensor a = leaf({4, 3}, 23);
  Tensor idx = from_vector<int64_t>({2, 0, 2, 3}, {4}, test::opts(DType::i64));
  expect_gradcheck([&](const V& in) { return index_select(in[0], 0, idx); }, {a});
  Tensor ones_idx = from_vector<int64_t>({1, 1}, {2}, test::opts(DType::i64));
  expect_gradcheck([&](const V& in) { return index_select(in[0], 1, ones_idx); }, {a});
  Tensor weight = leaf({5, 3}, 24);
  Tensor tokens = from_vector<int64_t>({1, 4, 1, 0, 4, 4}, {2, 3}, test::opts(DType::i64));
  expect_gradcheck([&](const V& in) { return embedding(in[0], tokens); }, {weight});
  backward(sum(embedding(weight, tokens)));
  expect_values(grad(weight), {1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 3, 3, 3});
}

TEST_CASE("gradcheck: softmax and log_softmax, last and non-last dim") {
  Tensor a = leaf({2, 3, 4}, 25);
  for (int64_t dim : {-1, 0, 1}) {
    CAPTURE(dim);
    expect_gradcheck([=](const V& in) { return softmax(in[0], dim); }, {a});
    expect_gradcheck([=](const V& in) { return log_softmax(in[0], dim); }, {a});
  }
}

TEST_CASE("gradcheck: layer_norm with and without weight and bias") {
  Tensor x = leaf({2, 3, 5}, 26), w = leaf({5}, 27), b = leaf({5}, 28);
  expect_gradcheck([](const V& in) { return layer_norm(in[0], in[1], in[2]); }, {x, w, b});
  expect_gradcheck([](const V& in) { return layer_norm(in[0], Tensor(), Tensor()); }, {x});
  expect_gradcheck([](const V& in) { return layer_norm(in[0], in[1], Tensor()); }, {x, w});
  expect_gradcheck([](const V& in) { return layer_norm(in[0], Tensor(), in[1], 1e-3); }, {x, b});
  Tensor x_const = detach(x);
  expect_gradcheck([&](const V& in) { return layer_norm(x_const, in[0], in[1]); }, {w, b});
}

// Note [Folded gradients] (autograd/engine.cpp): the layer norm's backward adds the gradient
// already waiting for its input (a residual stream's) in its own pass. Each graph below has a
// gradient waiting when the layer norm's node runs, or several edges to one destination.
TEST_CASE("gradcheck: layer_norm on a residual stream folds the waiting gradient") {
  Tensor x = leaf({2, 3, 5}, 61), w = leaf({5}, 62), b = leaf({5}, 63), w2 = leaf({5}, 64), c = leaf({2, 3, 5}, 65);
  // x + c * ln(x): the add hands x its gradient before the branch reaches the layer norm.
  expect_gradcheck([](const V& in) { return add(in[0], mul(in[3], layer_norm(in[0], in[1], in[2]))); },
                   {x, w, b, c});
  // Two layer norms of one x: the second folds the first's gradient.
  expect_gradcheck(
      [](const V& in) { return add(mul(in[3], layer_norm(in[0], in[1], in[2])), layer_norm(in[0], in[4], Tensor())); },
      {x, w, b, c, w2});
  // One tensor as input and weight (edges 0 and 1 to one destination): folded once only.
  Tensor v = leaf({5}, 66);
  expect_gradcheck([](const V& in) { return add(in[0], mul(in[0], layer_norm(in[0], in[0], in[1]))); }, {v, b});
  // The folded gradient equals the two gradients taken apart.
  Tensor xs = leaf({4, 8}, 67);
  Generator gen(68);
  const Tensor r = test::on_device(randn({4, 8}, DType::f64, &gen));
  backward(sum(mul(r, add(xs, layer_norm(xs, Tensor(), Tensor())))));
  const std::vector<double> folded = grad(xs).to_vector<double>();
  set_grad(xs, Tensor());
  backward(sum(mul(r, layer_norm(xs, Tensor(), Tensor()))));
  expect_values(add(grad(xs), r), folded);
}

TEST_CASE("gradcheck: cross_entropy with ignore_index, every reduction") {
  // f64 logits give f64 per-row losses, so the default tight tolerances apply.
  Tensor logits = leaf({4, 5}, 29);
  Tensor target = from_vector<int64_t>({1, -100, 4, 0}, {4}, test::opts(DType::i64));
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    expect_gradcheck([&](const V& in) { return cross_entropy(in[0], target, -100, r); }, {logits});
  }
  Tensor logits3 = leaf({2, 3, 4}, 30);
  Tensor target3 = from_vector<int64_t>({0, 3, 7, 2, 7, 1}, {2, 3}, test::opts(DType::i64));
  expect_gradcheck([&](const V& in) { return cross_entropy(in[0], target3, 7); }, {logits3});

  // Mean over the 3 non-ignored rows: d/dlogits = (softmax - onehot) / 3, ignored row zero.
  Tensor zeros_logits = zeros({4, 5}, test::opts(DType::f64));
  set_requires_grad(zeros_logits);
  Tensor loss = cross_entropy(zeros_logits, target);
  expect_values(loss, {std::log(5.0)}, 1e-6);
  backward(loss);
  std::vector<double> g = grad(zeros_logits).to_vector<double>();
  CHECK(g[0] == doctest::Approx(0.2 / 3));
  CHECK(g[1] == doctest::Approx(-0.8 / 3));
  for (int c = 5; c < 10; ++c) CHECK(g[size_t(c)] == 0.0);
}

TEST_CASE("gradcheck: mse_loss") {
  Tensor input = leaf({3, 4}, 31), target = leaf({3, 4}, 32);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    expect_gradcheck([=](const V& in) { return mse_loss(in[0], in[1], r); }, {input, target});
  }
  expect_values(mse_loss(test::f64({1, 2}, {2}), test::f64({0, 4}, {2})), {2.5});
}

TEST_CASE("dropout: gradcheck with a fixed generator state, mask/(1-p) gradient") {
  Generator gen(5);
  Tensor x = leaf({4, 6}, 33);
  expect_gradcheck([&](const V& in) {
    gen.set_state(5, 0);  // the same mask for every evaluation
    return dropout(in[0], 0.3, /*training=*/true, &gen);
  }, {x});

  gen.set_state(11, 0);
  Tensor out = dropout(x, 0.5, true, &gen);
  Tensor upstream = leaf({4, 6}, 34);
  backward(out, upstream);
  std::vector<double> xs = x.to_vector<double>(), os = out.to_vector<double>();
  std::vector<double> us = upstream.to_vector<double>(), gs = grad(x).to_vector<double>();
  int kept = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const bool keep = os[i] != 0.0;
    kept += keep;
    CHECK(os[i] == doctest::Approx(keep ? 2.0 * xs[i] : 0.0));
    CHECK(gs[i] == doctest::Approx(keep ? 2.0 * us[i] : 0.0));
  }
  CHECK(kept > 0);
  CHECK(kept < 24);
  CHECK(dropout(x, 0.5, /*training=*/false).same_impl(x));
  CHECK(dropout(x, 0.0, true).same_impl(x));
  CHECK_THROWS_AS(dropout(x, 1.5, true), Error);
}

// sum's backward hands on a stride-0 broadcast view; every op must accept it as its gradient.
TEST_CASE("broadcast-view gradients flow through every backward") {
  Tensor x = test::leaf({2, 3, 4}, 40), w = test::leaf({5, 4}, 41), b = test::leaf({5}, 42);
  Tensor m = test::leaf({4, 3}, 43), mt = test::leaf({3, 4}, 45), lw = test::leaf({4}, 44);
  Tensor cols = from_vector<int64_t>({0, 2}, {2}, test::opts(DType::i64));
  using Op = std::function<Tensor()>;
  std::vector<std::pair<const char*, Op>> ops = {
      {"linear", [&] { return linear(x, w, b); }},
      {"matmul", [&] { return matmul(x, m); }},
      {"matmul_t", [&] { return matmul(x, mt, false, true); }},
      {"softmax", [&] { return softmax(x, 1); }},
      {"layer_norm", [&] { return layer_norm(x, lw, lw); }},
      {"transpose", [&] { return transpose(x, 0, 2); }},
      {"index_select", [&] { return index_select(x, 1, cols); }},
  };
  for (auto& [name, op] : ops) {
    CAPTURE(name);
    // Reference: the same gradient as a contiguous tensor of ones.
    Tensor out = op();
    backward(out, ones(out.shape(), test::opts(DType::f64)));
    std::vector<double> expected = grad(x).to_vector<double>();
    set_grad(x, Tensor());
    backward(sum(op()));
    std::vector<double> got = grad(x).to_vector<double>();
    REQUIRE(got.size() == expected.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expected[i]));
    set_grad(x, Tensor());
  }
}

}  // namespace
}  // namespace zt
