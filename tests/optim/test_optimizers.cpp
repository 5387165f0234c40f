// SGD, Adam and AdamW against their published update equations written out by hand here;
// state save/restore, parameter groups, skipped gradients, clip_grad_norm_. Parameters live on the
// device under test (tests/test_device.h).
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "nn/embedding.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/sgd.h"
#include "tests/test_device.h"

using namespace zt;

namespace {

Tensor param(const std::vector<double>& values, DType dtype = DType::f64) {
  Tensor p = from_vector<double>(values, {int64_t(values.size())}, test::opts(dtype));
  set_requires_grad(p);
  return p;
}

void give_grad(const Tensor& p, const std::vector<double>& g) {
  set_grad(p, from_vector<double>(g, p.shape(), {p.dtype(), p.device()}));
}

void check_values(const Tensor& t, const std::vector<double>& expected, double tol = 1e-12) {
  auto v = t.to_vector<double>();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) CHECK(v[i] == doctest::Approx(expected[i]).epsilon(tol));
}

const std::vector<double> kP0 = {1.0, -2.0};
const std::vector<double> kG1 = {0.5, -1.0};
const std::vector<double> kG2 = {1.0, 0.25};

// Runs two steps of `opt` on p with gradients kG1 then kG2; checks after each.
template <typename Opt>
void two_steps(Opt& opt, const Tensor& p, const std::vector<double>& after1,
               const std::vector<double>& after2) {
  give_grad(p, kG1);
  opt.step();
  check_values(p, after1);
  give_grad(p, kG2);
  opt.step();
  check_values(p, after2);
}

// Adam by its equations, for one element over a gradient sequence.
double adam_reference(double p, const std::vector<double>& grads, double lr, double b1, double b2,
                      double eps, double wd, bool decoupled) {
  double m = 0, v = 0;
  for (size_t t = 1; t <= grads.size(); ++t) {
    double g = grads[t - 1];
    if (decoupled) p *= 1 - lr * wd;
    else g += wd * p;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    double bc1 = 1 - std::pow(b1, double(t)), bc2 = 1 - std::pow(b2, double(t));
    p -= lr / bc1 * m / (std::sqrt(v) / std::sqrt(bc2) + eps);
  }
  return p;
}

}  // namespace

TEST_CASE("SGD plain: p -= lr * g") {
  Tensor p = param(kP0);
  SGD opt({p}, SGDOptions{.lr = 0.1});
  // 1 - 0.05, -2 + 0.1; then 0.95 - 0.1, -1.9 - 0.025
  two_steps(opt, p, {0.95, -1.9}, {0.85, -1.925});
}

TEST_CASE("SGD momentum: buf = g, then 0.9 buf + g") {
  Tensor p = param(kP0);
  SGD opt({p}, SGDOptions{.lr = 0.1, .momentum = 0.9});
  // buf1 = (0.5, -1); buf2 = (0.45 + 1, -0.9 + 0.25) = (1.45, -0.65)
  two_steps(opt, p, {0.95, -1.9}, {0.95 - 0.145, -1.9 + 0.065});
}

TEST_CASE("SGD momentum with dampening 0.5") {
  Tensor p = param(kP0);
  SGD opt({p}, SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
  // buf1 = g1 (no dampening on the first step); buf2 = 0.9 buf1 + 0.5 g2 = (0.95, -0.775)
  two_steps(opt, p, {0.95, -1.9}, {0.95 - 0.095, -1.9 + 0.0775});
}

TEST_CASE("SGD Nesterov: d = g + momentum * buf") {
  Tensor p = param(kP0);
  SGD opt({p}, SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true});
  // step 1: d = g1 + 0.9 g1 = (0.95, -1.9)          -> p = (0.905, -1.81)
  // step 2: buf = (1.45, -0.65); d = g2 + 0.9 buf = (2.305, -0.335) -> p = (0.6745, -1.7765)
  two_steps(opt, p, {0.905, -1.81}, {0.6745, -1.7765});
  CHECK_THROWS_AS(SGD({p}, SGDOptions{.lr = 0.1, .nesterov = true}), Error);
}

TEST_CASE("SGD weight decay: d = g + wd * p") {
  Tensor p = param(kP0);
  SGD opt({p}, SGDOptions{.lr = 0.1, .weight_decay = 0.1});
  // step 1: d = (0.5 + 0.1, -1 - 0.2) = (0.6, -1.2)          -> p = (0.94, -1.88)
  // step 2: d = (1 + 0.094, 0.25 - 0.188) = (1.094, 0.062)   -> p = (0.8306, -1.8862)
  two_steps(opt, p, {0.94, -1.88}, {0.8306, -1.8862});
}

TEST_CASE("Adam: bias-corrected moments, eps outside the sqrt") {
  Tensor p = param(kP0);
  Adam opt({p}, AdamOptions{.lr = 0.1});
  // Step 1 moves each element by lr * sign(g) (m_hat / sqrt(v_hat) = +-1, up to eps).
  const double e1 = 0.1 * 0.5 / (0.5 + 1e-8);
  std::vector<double> after1 = {1.0 - e1, -2.0 + 0.1 * 1.0 / (1.0 + 1e-8)};
  std::vector<double> after2 = {adam_reference(1.0, {0.5, 1.0}, 0.1, 0.9, 0.999, 1e-8, 0, false),
                                adam_reference(-2.0, {-1.0, 0.25}, 0.1, 0.9, 0.999, 1e-8, 0, false)};
  // Step 2 by hand for element 0: m = 0.145, v = 0.00124975, bc1 = 0.19, bc2 = 0.001999.
  double m = 0.145, v = 0.00124975, bc1 = 0.19, bc2 = 0.001999;
  CHECK(after2[0] == doctest::Approx(after1[0] - 0.1 / bc1 * m / (std::sqrt(v / bc2) + 1e-8)));
  two_steps(opt, p, after1, after2);
  CHECK(opt.step_count() == 2);
}

TEST_CASE("Adam with L2 weight decay folds wd * p into the gradient") {
  Tensor p = param(kP0);
  Adam opt({p}, AdamOptions{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.5});
  // Step 1: g' = g + 0.5 p = (1.0, -2.0); the first Adam step moves by lr * g'/(|g'| + eps).
  std::vector<double> after1 = {1.0 - 0.01 * 1.0 / (1.0 + 1e-6), -2.0 + 0.01 * 2.0 / (2.0 + 1e-6)};
  std::vector<double> after2 = {
      adam_reference(1.0, {0.5, 1.0}, 0.01, 0.8, 0.99, 1e-6, 0.5, false),
      adam_reference(-2.0, {-1.0, 0.25}, 0.01, 0.8, 0.99, 1e-6, 0.5, false)};
  two_steps(opt, p, after1, after2);
}

TEST_CASE("AdamW: decoupled decay p *= 1 - lr * wd before the Adam step") {
  Tensor p = param(kP0);
  AdamW opt({p}, [] {
    AdamWOptions o;
    o.lr = 0.1;
    o.weight_decay = 0.1;
    return o;
  }());
  // Step 1: p * 0.99 then -+ 0.1: (0.99 - 0.1, -1.98 + 0.1)
  std::vector<double> after1 = {0.99 - 0.1 * 0.5 / (0.5 + 1e-8), -1.98 + 0.1 * 1.0 / (1.0 + 1e-8)};
  std::vector<double> after2 = {adam_reference(1.0, {0.5, 1.0}, 0.1, 0.9, 0.999, 1e-8, 0.1, true),
                                adam_reference(-2.0, {-1.0, 0.25}, 0.1, 0.9, 0.999, 1e-8, 0.1, true)};
  two_steps(opt, p, after1, after2);
  CHECK(AdamWOptions().weight_decay == 0.01);
}

TEST_CASE("f32 fused loop and the raw-op path (strided gradient) agree") {
  std::vector<double> g = {0.3, -0.7, 1.1, 0.2};
  Tensor pa = from_vector<double>({1, 2, 3, 4}, {2, 2}, test::opts(DType::f32));
  Tensor pb = raw::clone(pa);
  set_requires_grad(pa);
  set_requires_grad(pb);
  AdamW a({pa}, AdamWOptions{});
  AdamW b({pb}, AdamWOptions{});
  for (int s = 0; s < 3; ++s) {
    Tensor gt = from_vector<double>(g, {2, 2}, test::opts(DType::f32));
    set_grad(pa, raw::contiguous(raw::transpose(gt, 0, 1)));
    set_grad(pb, raw::transpose(raw::clone(gt), 0, 1));  // not contiguous: raw path
    CHECK(!grad(pb).is_contiguous());
    a.step();
    b.step();
  }
  CHECK(raw::max_abs_diff(pa, pb) < 1e-6);
  CHECK(raw::max_abs_diff(pa, from_vector<double>({1, 2, 3, 4}, {2, 2}, test::opts(DType::f32))) > 1e-3);
}

TEST_CASE("Adam writes a bf16 model copy of each update in the same step, on the fused and raw paths") {
  for (bool strided_grad : {false, true}) {
    CAPTURE(strided_grad);
    Tensor p = from_vector<double>({1.001, -2.5, 3.25, 0.125}, {2, 2}, test::opts(DType::f32));
    set_requires_grad(p);
    Tensor copy = raw::to(p, DType::bf16);
    AdamW opt({p}, AdamWOptions{});
    CHECK(opt.set_model_copy(p, raw::reshape(copy, {4})));
    for (int s = 0; s < 3; ++s) {
      Tensor gt = from_vector<double>({0.3, -0.7, 1.1, 0.2}, {2, 2}, test::opts(DType::f32));
      set_grad(p, strided_grad ? raw::transpose(raw::clone(gt), 0, 1) : gt);
      opt.step();
      // The copy is the update rounded to bf16, bit for bit.
      CHECK(raw::to(copy, DType::f64).to_vector<double>() ==
            raw::to(raw::to(p, DType::bf16), DType::f64).to_vector<double>());
    }
  }
  Tensor p = from_vector<double>({1, 2}, {2}, test::opts(DType::f32));
  AdamW opt({p}, AdamWOptions{});
  CHECK_THROWS_WITH_AS(opt.set_model_copy(p, zeros({3}, test::opts(DType::bf16))),
                       doctest::Contains("f16/bf16 tensor of 2"), Error);
  SGD sgd({p}, SGDOptions{0.1});
  CHECK_FALSE(sgd.set_model_copy(p, zeros({2}, test::opts(DType::bf16))));  // the caller copies
}

TEST_CASE("Adam state memory is counted as optimizer_state") {
  Tensor p = param(std::vector<double>(1000, 1.0));
  Adam opt({p}, AdamOptions{});
  Allocator& allocator = allocator_for(test::device());
  const int64_t before = allocator.stats().of(MemoryCategory::optimizer_state).in_use;
  give_grad(p, std::vector<double>(1000, 0.5));
  opt.step();
  const int64_t after = allocator.stats().of(MemoryCategory::optimizer_state).in_use;
  CHECK(after - before == 2 * 1000 * 8);  // exp_avg and exp_avg_sq in f64
}

TEST_CASE("bf16 parameters take the raw-op path and track the f32 update") {
  std::vector<double> g = {0.5, -1.0, 0.25, 2.0};
  Tensor p16 = from_vector<double>({1, -2, 3, 0.5}, {4}, test::opts(DType::bf16));
  Tensor p32 = from_vector<double>({1, -2, 3, 0.5}, {4}, test::opts(DType::f32));
  set_requires_grad(p16);
  set_requires_grad(p32);
  Adam a({p16}, AdamOptions{.lr = 0.05});
  Adam b({p32}, AdamOptions{.lr = 0.05});
  for (int s = 0; s < 3; ++s) {
    set_grad(p16, from_vector<double>(g, {4}, test::opts(DType::bf16)));
    set_grad(p32, from_vector<double>(g, {4}, test::opts(DType::f32)));
    a.step();
    b.step();
  }
  // bf16 keeps 8 bits of mantissa: compare at its resolution.
  CHECK(raw::max_abs_diff(raw::to(p16, DType::f32), p32) < 0.02);
  CHECK(raw::max_abs_diff(p32, from_vector<double>({1, -2, 3, 0.5}, {4}, test::opts(DType::f32))) > 0.1);
}

TEST_CASE("parameters without a gradient are skipped and keep their step count") {
  Tensor a = param({1.0}), b = param({1.0});
  Adam opt({a, b}, AdamOptions{.lr = 0.1});
  give_grad(a, {1.0});
  opt.step();  // b has no grad
  check_values(b, {1.0});
  give_grad(b, {1.0});
  opt.step();
  // b's first Adam step (bias corrections at t = 1): moves by lr.
  check_values(b, {1.0 - 0.1 / (1.0 + 1e-8)});
  opt.zero_grad();
  CHECK(!grad(a).defined());
}

TEST_CASE("optimizer state_dict resumes exactly and is tagged optimizer_state") {
  Tensor p = param(kP0), q = param(kP0);
  Adam a({p}, AdamOptions{.lr = 0.05, .weight_decay = 0.01});
  give_grad(p, kG1);
  a.step();
  OptimizerState saved = a.state_dict();
  CHECK(saved.tensors.contains("state.0.0.exp_avg"));
  CHECK(saved.tensors.contains("state.0.0.exp_avg_sq"));
  CHECK(saved.scalars.at("state.0.0.step") == 1);
  CHECK(saved.tensors.at("state.0.0.exp_avg").storage()->category() == MemoryCategory::optimizer_state);
  {
    NoGradGuard ng;
    raw::copy_(q, p);
  }
  Adam b({q}, AdamOptions{.lr = 1.0});
  b.load_state_dict(saved);
  CHECK(b.lr() == 0.05);
  CHECK(b.step_count() == 1);
  give_grad(p, kG2);
  give_grad(q, kG2);
  a.step();
  b.step();
  CHECK(raw::max_abs_diff(p, q) == 0);

  Adam wrong({param({1, 2, 3})}, AdamOptions{});
  CHECK_THROWS_AS(wrong.load_state_dict(saved), Error);
  Adam two_groups(std::vector<ParamGroup>{{{param(kP0)}}, {{param(kP0)}}}, AdamOptions{});
  CHECK_THROWS_AS(two_groups.load_state_dict(saved), Error);
}

TEST_CASE("groups: per-group lr and weight decay; make_param_groups by name and shape") {
  Sequential net;
  net.push_back(std::make_shared<Embedding>(10, 4));
  net.push_back(std::make_shared<Linear>(4, 4));
  net.push_back(std::make_shared<LayerNorm>(4));
  net.to(test::device());
  auto groups = make_param_groups(net, 0.1);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].weight_decay == 0.1);
  CHECK(groups[1].weight_decay == 0.0);
  auto named = net.named_parameters();  // 0.weight, 1.weight, 1.bias, 2.weight, 2.bias
  REQUIRE(groups[0].params.size() == 1);
  CHECK(groups[0].params[0].same_impl(named[1].second));  // only the Linear weight decays
  CHECK(groups[1].params.size() == 4);

  SGD opt(groups, SGDOptions{.lr = 0.5, .weight_decay = 0.9});
  CHECK(opt.param_groups()[0].weight_decay == 0.1);  // set by the group, kept
  CHECK(opt.param_groups()[1].weight_decay == 0.0);
  CHECK(opt.lr(1) == 0.5);                            // unset, filled from the options
  opt.set_lr(1, 0.25);
  CHECK(opt.lr(0) == 0.5);
  CHECK(opt.lr(1) == 0.25);
  CHECK_THROWS_AS(SGD(std::vector<Tensor>{named[0].second, named[0].second}, SGDOptions{}), Error);
}

TEST_CASE("clip_grad_norm_: total norm and scaling") {
  Tensor a = param({0.0, 0.0}), b = param({0.0}), c = param({0.0});
  give_grad(a, {3.0, 4.0});
  give_grad(b, {12.0});  // c has no gradient: skipped
  CHECK(grad_norm({a, b, c}, 1.0) == doctest::Approx(19.0));
  CHECK(grad_norm({a, b, c}, kInfNorm) == doctest::Approx(12.0));
  CHECK(grad_norm({a, b, c}, 3.0) == doctest::Approx(std::cbrt(27.0 + 64.0 + 1728.0)));
  double total = clip_grad_norm_({a, b, c}, 100.0);
  CHECK(total == doctest::Approx(13.0));
  check_values(grad(a), {3.0, 4.0});  // below max_norm: untouched
  total = clip_grad_norm_({a, b, c}, 6.5);
  CHECK(total == doctest::Approx(13.0));
  double coef = 6.5 / (13.0 + 1e-6);
  check_values(grad(a), {3.0 * coef, 4.0 * coef});
  check_values(grad(b), {12.0 * coef});
  CHECK(grad_norm({a, b}) == doctest::Approx(6.5).epsilon(1e-6));
}
