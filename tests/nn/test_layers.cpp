// Layers: initialisation ranges, forward values against hand-computed results (on the device under
// test, tests/test_device.h), and f64 gradchecks of Linear, LayerNorm, Embedding and cross-entropy
// through the modules.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <numbers>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/activation.h"
#include "nn/embedding.h"
#include "nn/init.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/loss.h"
#include "tests/test_device.h"

using namespace zt;

namespace {

void set_values(const Tensor& t, const std::vector<double>& values) {
  NoGradGuard ng;
  raw::copy_(t, from_vector<double>(values, t.shape(), t.dtype()));
}

}  // namespace

TEST_CASE("Linear: PyTorch init ranges, seeded reproducibility, forward values") {
  Generator gen_a(42), gen_b(42);
  Linear a(LinearOptions{16, 8, true, DType::f32, test::device(), &gen_a});
  Linear b(LinearOptions{16, 8, true, DType::f32, test::device(), &gen_b});
  CHECK(a.weight().shape() == Shape{8, 16});
  CHECK(a.bias().shape() == Shape{8});
  CHECK(raw::max_abs_diff(a.weight(), b.weight()) == 0);
  CHECK(raw::max_abs_diff(a.bias(), b.bias()) == 0);
  const double bound = 1.0 / std::sqrt(16.0);  // 0.25
  double w_max = 0;
  for (float w : a.weight().to_vector<float>()) w_max = std::max(w_max, double(std::fabs(w)));
  CHECK(w_max <= bound);
  CHECK(w_max > 0.8 * bound);  // 128 draws fill the range
  for (float v : a.bias().to_vector<float>()) CHECK(std::fabs(v) <= bound);

  Linear small(2, 2);
  small.to(test::device());
  set_values(small.weight(), {1, 2, 3, 4});  // (out, in)
  set_values(small.bias(), {0.5, -1});
  Tensor x = from_vector<float>({1, 1, 2, -1}, {2, 2}, test::opts());
  // row 0: [1+2+0.5, 3+4-1] = [3.5, 6]; row 1: [2-2+0.5, 6-4-1] = [0.5, 1]
  CHECK(small(x).to_vector<float>() == std::vector<float>{3.5f, 6.f, 0.5f, 1.f});
  CHECK(!Linear(2, 2, false).bias().defined());
  CHECK_THROWS_AS(small(zeros({2, 3}, test::opts())), Error);
}

TEST_CASE("init: kaiming/xavier bounds and normal moments") {
  Generator gen(7);
  Tensor w = empty({64, 100}, test::opts());
  init::kaiming_uniform_(w, 0.0, gen);  // bound sqrt(2) * sqrt(3/100)
  double bound = std::sqrt(2.0) * std::sqrt(3.0 / 100.0);
  double mx = 0;
  for (float v : w.to_vector<float>()) mx = std::max(mx, double(std::fabs(v)));
  CHECK(mx <= bound);
  CHECK(mx > 0.95 * bound);
  init::xavier_uniform_(w, 1.0, gen);  // bound sqrt(6 / 164)
  mx = 0;
  for (float v : w.to_vector<float>()) mx = std::max(mx, double(std::fabs(v)));
  CHECK(mx <= std::sqrt(6.0 / 164.0));
  CHECK(mx > 0.95 * std::sqrt(6.0 / 164.0));
  init::normal_(w, 1.0, 2.0, gen);
  auto v = w.to_vector<double>();
  double mean = 0, sq = 0;
  for (double e : v) mean += e / double(v.size());
  for (double e : v) sq += (e - mean) * (e - mean) / double(v.size());
  CHECK(mean == doctest::Approx(1.0).epsilon(0.1));   // 6400 draws: sd of mean 0.025
  CHECK(std::sqrt(sq) == doctest::Approx(2.0).epsilon(0.05));
  init::ones_(w);
  CHECK(raw::sum(w).item() == 6400);
  init::zeros_(w);
  CHECK(raw::sum(w).item() == 0);
  CHECK_THROWS_AS(init::kaiming_uniform_(empty({5}, test::opts()), 0.0, gen), Error);
}

TEST_CASE("LayerNorm and Embedding forward values") {
  LayerNorm ln(4, 1e-5);
  ln.to(test::device());
  CHECK(ln.weight().to_vector<float>() == std::vector<float>{1, 1, 1, 1});
  CHECK(ln.bias().to_vector<float>() == std::vector<float>{0, 0, 0, 0});
  Tensor x = from_vector<float>({1, 2, 3, 4}, {1, 4}, test::opts());
  auto y = ln(x).to_vector<float>();
  const double rstd = 1.0 / std::sqrt(1.25 + 1e-5);  // mean 2.5, biased variance 1.25
  for (int i = 0; i < 4; ++i) CHECK(y[i] == doctest::Approx((i + 1 - 2.5) * rstd).epsilon(1e-5));
  CHECK(LayerNorm(4, 1e-5, false).named_parameters().empty());

  Embedding emb(5, 3);
  emb.to(test::device());
  CHECK(emb.weight().shape() == Shape{5, 3});
  Tensor idx = from_vector<int64_t>({4, 0, 4}, {3}, test::opts(DType::i64));
  Tensor rows = emb(idx);
  CHECK(rows.shape() == Shape{3, 3});
  auto w = emb.weight().to_vector<float>(), r = rows.to_vector<float>();
  for (int j = 0; j < 3; ++j) {
    CHECK(r[j] == w[12 + j]);
    CHECK(r[3 + j] == w[j]);
    CHECK(r[6 + j] == w[12 + j]);
  }
}

TEST_CASE("losses: cross-entropy and MSE values") {
  Tensor logits = from_vector<float>({0, 0, 1, 2, 0, 0}, {2, 3}, test::opts());
  Tensor target = from_vector<int64_t>({1, 0}, {2}, test::opts(DType::i64));
  // row 0 (0, 0, 1), target 1: log(2 + e) - 0; row 1 (2, 0, 0), target 0: log(e^2 + 2) - 2
  double l0 = std::log(2.0 + std::exp(1.0)), l1 = std::log(std::exp(2.0) + 2.0) - 2.0;
  CHECK(CrossEntropyLoss()(logits, target).item() == doctest::Approx((l0 + l1) / 2).epsilon(1e-5));
  CHECK(CrossEntropyLoss(-100, Reduction::sum)(logits, target).item() ==
        doctest::Approx(l0 + l1).epsilon(1e-5));
  Tensor ignored = from_vector<int64_t>({1, -100}, {2}, test::opts(DType::i64));
  CHECK(CrossEntropyLoss()(logits, ignored).item() == doctest::Approx(l0).epsilon(1e-5));
  CHECK_THROWS_AS(CrossEntropyLoss()(logits, from_vector<int64_t>({1, 0, 1}, {3, 1}, test::opts(DType::i64))), Error);

  Tensor a = from_vector<float>({1, 2, 3}, {3}, test::opts()), b = from_vector<float>({1, 0, 0}, {3}, test::opts());
  CHECK(MSELoss()(a, b).item() == doctest::Approx(13.0 / 3).epsilon(1e-6));
  CHECK(MSELoss(Reduction::sum)(a, b).item() == doctest::Approx(13.0).epsilon(1e-6));
}

// The module's own parameter tensors are gradcheck inputs, so perturbing them perturbs the
// module's forward. gradcheck perturbs them in host memory: these modules stay on the CPU (their
// ops are gradchecked on the device under test in tests/autograd, through their inputs).
TEST_CASE("gradcheck (f64): Linear") {
  Linear lin(LinearOptions{3, 2, true, DType::f64});
  Tensor x = randn({4, 3}, DType::f64);
  set_requires_grad(x);
  auto fn = [&](const std::vector<Tensor>& in) { return lin(in[0]); };
  GradcheckResult r = gradcheck(fn, {x, lin.weight(), lin.bias()});
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("gradcheck (f64): LayerNorm with affine parameters") {
  LayerNorm ln(LayerNormOptions{5, 1e-5, true, DType::f64});
  {
    Generator gen(3);
    init::normal_(ln.weight(), 1.0, 0.5, gen);
    init::normal_(ln.bias(), 0.0, 0.5, gen);
  }
  Tensor x = randn({3, 5}, DType::f64);
  set_requires_grad(x);
  auto fn = [&](const std::vector<Tensor>& in) { return ln(in[0]); };
  GradcheckResult r = gradcheck(fn, {x, ln.weight(), ln.bias()});
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("gradcheck (f64): Embedding with repeated indices") {
  Embedding emb(EmbeddingOptions{4, 3, DType::f64});
  Tensor idx = from_vector<int64_t>({1, 3, 1, 0}, {2, 2});
  auto fn = [&](const std::vector<Tensor>&) { return emb(idx); };
  GradcheckResult r = gradcheck(fn, {emb.weight()});
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("gradcheck (f64): CrossEntropyLoss through a Linear, with an ignored target") {
  Linear lin(LinearOptions{3, 4, true, DType::f64});
  Tensor x = randn({5, 3}, DType::f64);
  set_requires_grad(x);
  Tensor target = from_vector<int64_t>({0, 3, -100, 2, 3}, {5});
  CrossEntropyLoss loss;
  auto fn = [&](const std::vector<Tensor>& in) { return loss(lin(in[0]), target); };
  GradcheckResult r = gradcheck(fn, {x, lin.weight(), lin.bias()});
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("activations match their formulas") {
  Tensor x = from_vector<double>({-1.0, 0.5, 2.0}, {3}, test::opts(DType::f64));
  CHECK(ReLU()(x).to_vector<double>() == std::vector<double>{0.0, 0.5, 2.0});
  auto t = Tanh()(x).to_vector<double>();
  auto g = GELU(true)(x).to_vector<double>();
  auto ge = GELU()(x).to_vector<double>();
  auto xs = x.to_vector<double>();
  for (int i = 0; i < 3; ++i) {
    double v = xs[i];
    CHECK(t[i] == doctest::Approx(std::tanh(v)).epsilon(1e-12));
    double inner = std::sqrt(2.0 / std::numbers::pi) * (v + 0.044715 * v * v * v);
    CHECK(g[i] == doctest::Approx(0.5 * v * (1 + std::tanh(inner))).epsilon(1e-9));
    CHECK(ge[i] == doctest::Approx(0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))).epsilon(1e-9));
  }
}
