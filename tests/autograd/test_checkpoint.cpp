// Activation checkpointing (autograd/checkpoint.h): outputs and gradients bitwise equal to the
// plain forward (dropout included), the generator restored after the recompute, gradients into
// captured parameters with their ready hooks, the multi-input form, and a gradcheck through it.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/checkpoint.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "helpers.h"

using namespace zt;

namespace {

// normal(0, 1) values drawn on the CPU, as a leaf on the device under test (tests/test_device.h).
Tensor param(const Shape& shape, uint64_t seed, DType dtype = DType::f32) {
  Generator gen(seed);
  Tensor t = test::on_device(randn(shape, dtype, &gen));
  set_requires_grad(t);
  return t;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.shape() == b.shape() &&
         a.to_vector<double>() == b.to_vector<double>();
}

// A small two-layer function with dropout between, using parameter w: x (4, 8) -> (4, 8).
Tensor two_layers(const Tensor& x, const Tensor& w) {
  Tensor h = dropout(tanh(matmul(x, w)), 0.3, true);  // (4, 8), mask from default_generator()
  return gelu(matmul(h, w, false, true), true);
}

}  // namespace

TEST_CASE("checkpoint: output and gradients bitwise equal to the plain forward, with dropout") {
  Tensor w = param({8, 8}, 1);
  struct Run {
    Tensor out, gx, gw;
    uint64_t offset_after_forward, offset_after_backward;
  };
  auto run = [&](bool use_checkpoint) {
    manual_seed(123);
    Tensor x = param({4, 8}, 2);
    set_grad(w, Tensor());
    Tensor out = use_checkpoint
                     ? checkpoint([&](const Tensor& in) { return two_layers(in, w); }, x)
                     : two_layers(x, w);
    Run r;
    r.offset_after_forward = default_generator().offset();
    Tensor weights = param({4, 8}, 3);
    backward(sum(mul(out, detach(weights))));
    r.offset_after_backward = default_generator().offset();
    r.out = detach(out);
    r.gx = grad(x);
    r.gw = grad(w);
    return r;
  };
  Run plain = run(false), ckpt = run(true);
  CHECK(bitwise_equal(plain.out, ckpt.out));
  CHECK(bitwise_equal(plain.gx, ckpt.gx));
  CHECK(bitwise_equal(plain.gw, ckpt.gw));
  CHECK(plain.offset_after_forward == ckpt.offset_after_forward);
  // The recompute draws the same mask again, then puts the generator back.
  CHECK(ckpt.offset_after_backward == ckpt.offset_after_forward);
  // Dropout really did something (otherwise mask equality would prove nothing).
  CHECK(plain.offset_after_forward > 0);
}

TEST_CASE("checkpoint: the recompute uses the forward's generator state, not the current one") {
  Tensor w = param({8, 8}, 4);
  manual_seed(7);
  Tensor x = param({4, 8}, 5);
  Tensor out = checkpoint([&](const Tensor& in) { return two_layers(in, w); }, x);
  // Draws between forward and backward move the generator; the recompute must not see them.
  Tensor unrelated = rand({1000}, test::opts());
  const uint64_t before_backward = default_generator().offset();
  backward(sum(out));
  CHECK(default_generator().offset() == before_backward);
  Tensor gx_ckpt = grad(x), gw_ckpt = grad(w);

  set_grad(w, Tensor());
  manual_seed(7);
  Tensor x2 = param({4, 8}, 5);
  backward(sum(two_layers(x2, w)));
  CHECK(bitwise_equal(gx_ckpt, grad(x2)));
  CHECK(bitwise_equal(gw_ckpt, grad(w)));
}

TEST_CASE("checkpoint: parameter grads accumulate and their grad-ready hooks fire once") {
  Tensor w = param({3, 3}, 6, DType::f64);
  set_grad(w, ones({3, 3}, test::opts(DType::f64)));  // accumulation adds to what is there
  int fired = 0;
  register_grad_ready_hook(w, [&](const Tensor&) { ++fired; });
  // x does not require grad: the node is still recorded because w does.
  Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}, test::opts(DType::f64));
  Tensor out = checkpoint([&](const Tensor& in) { return matmul(in, w); }, x);  // (2, 3)
  CHECK(requires_grad(out));
  backward(sum(out));
  CHECK(fired == 1);
  // d sum(x @ w) / d w[k][j] = sum_i x[i][k] = {5, 7, 9}, plus the 1 already there.
  CHECK(grad(w).to_vector<double>() ==
        std::vector<double>{6, 6, 6, 8, 8, 8, 10, 10, 10});
  CHECK(!grad(x).defined());
}

TEST_CASE("checkpoint: several inputs, and plain evaluation without grad mode") {
  Tensor a = param({2, 3}, 8, DType::f64), b = param({2, 3}, 9, DType::f64);
  auto fn = [](const std::vector<Tensor>& in) { return mul(in[0], exp(in[1])); };
  Tensor out = checkpoint(fn, std::vector<Tensor>{a, b});
  backward(sum(out));
  // d/da = exp(b); d/db = a * exp(b)
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<double> ga = grad(a).to_vector<double>(), gb = grad(b).to_vector<double>();
  for (size_t i = 0; i < av.size(); ++i) {
    CHECK(ga[i] == doctest::Approx(std::exp(bv[i])).epsilon(1e-12));
    CHECK(gb[i] == doctest::Approx(av[i] * std::exp(bv[i])).epsilon(1e-12));
  }
  NoGradGuard no_grad;
  CHECK(!requires_grad(checkpoint(fn, std::vector<Tensor>{a, b})));
}

TEST_CASE("checkpoint: gradcheck through the recompute (f64)") {
  Tensor w = param({3, 4}, 10, DType::f64);
  Tensor x = param({2, 3}, 11, DType::f64);
  auto fn = [](const std::vector<Tensor>& in) {
    return checkpoint(
        [&in](const Tensor& x) { return sum(tanh(matmul(x, in[1])), {1}); }, in[0]);  // (2)
  };
  GradcheckResult r = test::device_gradcheck(fn, {x, w});
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("checkpoint: intermediate activations are not held between forward and backward") {
  Tensor w = param({256, 256}, 12);
  Tensor x = param({256, 256}, 13);
  auto f = [&](const Tensor& in) {  // four (256, 256) intermediates of 256 KiB each
    Tensor h = in;
    for (int i = 0; i < 4; ++i) h = tanh(matmul(h, w));
    return h;
  };
  Allocator& alloc = allocator_for(test::device());
  auto held = [&](bool use_checkpoint) {
    const int64_t before = alloc.stats().total.in_use;
    Tensor out = use_checkpoint ? checkpoint(f, x) : f(x);
    const int64_t bytes = alloc.stats().total.in_use - before;
    backward(sum(out));
    set_grad(x, Tensor());
    set_grad(w, Tensor());
    return bytes;
  };
  const int64_t plain = held(false), ckpt = held(true);
  MESSAGE("held between forward and backward: plain ", plain, " bytes, checkpointed ", ckpt, " bytes");
  const int64_t one = 256 * 256 * 4;
  CHECK(plain >= 8 * one);  // matmul outputs and tanh outputs of four layers
  CHECK(ckpt <= one);       // just the output
}
