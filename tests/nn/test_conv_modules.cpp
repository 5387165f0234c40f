// Conv2d, MaxPool2d, AvgPool2d, Flatten and BatchNorm2d modules on the device under test
// (tests/test_device.h): PyTorch init ranges, shapes, forward values against hand-computed results,
// gradchecks through the modules, train/eval.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/batch_norm.h"
#include "nn/conv.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "nn/sequential.h"
#include "tests/autograd/helpers.h"

using namespace zt;

namespace {

void set_values(const Tensor& t, const std::vector<double>& values) {
  NoGradGuard ng;
  raw::copy_(t, from_vector<double>(values, t.shape(), t.dtype()));
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::fabs(v));
  return m;
}

}  // namespace

TEST_CASE("Conv2d: shapes, PyTorch init bounds, seeded reproducibility") {
  Generator ga(7), gb(7);
  Conv2dOptions o = Conv2dOptions::square(4, 6, 3, 1, 1, 1, 2);
  o.device = test::device();
  o.generator = &ga;
  Conv2d a(o);
  o.generator = &gb;
  Conv2d b(o);
  CHECK(a.weight().shape() == Shape{6, 2, 3, 3});
  CHECK(a.bias().shape() == Shape{6});
  CHECK(raw::max_abs_diff(a.weight(), b.weight()) == 0);
  // fan_in = 2 * 3 * 3 = 18: weight and bias within 1/sqrt(18), and not all tiny.
  const double bound = 1.0 / std::sqrt(18.0);
  CHECK(max_abs(a.weight()) <= bound);
  CHECK(max_abs(a.weight()) > 0.5 * bound);
  CHECK(max_abs(a.bias()) <= bound);
  CHECK(a.named_parameters().size() == 2);
  Tensor y = a(randn({2, 4, 7, 5}, test::opts()));
  CHECK(y.shape() == Shape{2, 6, 7, 5});
  Conv2dOptions nb = Conv2dOptions::square(1, 1, 2);
  nb.bias = false;
  CHECK_FALSE(Conv2d(nb).bias().defined());
  CHECK_THROWS_AS(a(randn({2, 3, 7, 5}, test::opts())), Error);
  CHECK_THROWS_AS(Conv2d(Conv2dOptions::square(3, 4, 3, 1, 0, 1, 2)), Error);
}

TEST_CASE("Conv2d forward: hand-set weights give hand-computed values") {
  Conv2d conv(Conv2dOptions::square(1, 1, 2, 1, 0));
  conv.to(test::device());
  set_values(conv.weight(), {1, 0, 0, 1});
  set_values(conv.bias(), {0.5});
  Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, test::opts(DType::f32));
  CHECK(conv(x).to_vector<double>() == std::vector<double>{6.5, 8.5, 12.5, 14.5});
}

TEST_CASE("Pooling and Flatten modules") {
  Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {1, 1, 4, 4},
                                 test::opts(DType::f64));
  MaxPool2d mp(2);
  CHECK(mp(x).to_vector<double>() == std::vector<double>{6, 8, 14, 16});
  AvgPool2d ap(2);
  CHECK(ap(x).to_vector<double>() == std::vector<double>{3.5, 5.5, 11.5, 13.5});
  MaxPool2d overlap(3, 1, 1);
  CHECK(overlap(x).shape() == Shape{1, 1, 4, 4});
  Flatten flat;
  CHECK(flat(randn({2, 3, 4, 5}, test::opts())).shape() == Shape{2, 60});
  CHECK(Flatten(0)(randn({2, 3}, test::opts())).shape() == Shape{6});
}

TEST_CASE("gradcheck through a LeNet-style stack: Conv2d, pooling, Flatten, Linear") {
  Generator gen(5);
  Conv2dOptions c1 = Conv2dOptions::square(1, 2, 3, 1, 1);
  c1.dtype = DType::f64;
  c1.device = test::device();
  c1.generator = &gen;
  Conv2dOptions c2 = Conv2dOptions::square(2, 3, 2, 2, 0);
  c2.dtype = DType::f64;
  c2.device = test::device();
  c2.generator = &gen;
  auto conv1 = std::make_shared<Conv2d>(c1);
  auto conv2 = std::make_shared<Conv2d>(c2);
  auto fc = std::make_shared<Linear>(LinearOptions{3, 4, true, DType::f64, test::device(), &gen});
  MaxPool2d pool(2);
  AvgPool2d avg(2);
  Flatten flat;
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = relu(conv2d(in[0], in[1], in[2], conv1->geometry()));
    h = pool(h);                                                  // (N, 2, 4, 4)
    h = avg(conv2d(h, in[3], in[4], conv2->geometry()));          // (N, 3, 1, 1)
    return linear(flat(h), fc->weight(), fc->bias());             // (N, 4)
  };
  Generator xg(9);
  Tensor x = randn({2, 1, 8, 8}, test::opts(DType::f64), &xg);
  set_requires_grad(x);
  GradcheckResult r = test::device_gradcheck(fn, {x, conv1->weight(), conv1->bias(), conv2->weight(), conv2->bias()});
  INFO(r.message);
  CHECK(r.ok);
  // The modules' own parameters receive gradients through backward.
  Tensor loss = sum(fn({x, conv1->weight(), conv1->bias(), conv2->weight(), conv2->bias()}));
  backward(loss);
  CHECK(grad(conv1->weight()).defined());
  CHECK(grad(conv2->bias()).defined());
}

TEST_CASE("BatchNorm2d: training normalises per channel and updates running stats; eval uses them") {
  BatchNorm2dOptions o{2};
  o.dtype = DType::f64;
  o.device = test::device();
  o.momentum = 0.5;
  BatchNorm2d bn(o);
  // Channel 0 holds 1..4, channel 1 holds 10, 10, 20, 20 (one image, 2x2 each).
  Tensor x = from_vector<double>({1, 2, 3, 4, 10, 10, 20, 20}, {1, 2, 2, 2}, test::opts(DType::f64));
  Tensor y = bn(x);
  const double s0 = 1.0 / std::sqrt(1.25 + 1e-5), s1 = 1.0 / std::sqrt(25.0 + 1e-5);
  const std::vector<double> want{-1.5 * s0, -0.5 * s0, 0.5 * s0, 1.5 * s0, -5 * s1, -5 * s1, 5 * s1, 5 * s1};
  const std::vector<double> got = y.to_vector<double>();
  for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
  // running = 0.5 * initial + 0.5 * batch (unbiased variance: 5/3 and 100/3).
  const std::vector<double> rm = bn.running_mean().to_vector<double>(), rv = bn.running_var().to_vector<double>();
  CHECK(rm[0] == doctest::Approx(1.25));
  CHECK(rm[1] == doctest::Approx(7.5));
  CHECK(rv[0] == doctest::Approx(0.5 + 0.5 * 5.0 / 3.0));
  CHECK(rv[1] == doctest::Approx(0.5 + 0.5 * 100.0 / 3.0));
  CHECK(bn.num_batches_tracked() == 1);
  CHECK(bn.named_buffers().size() == 3);
  bn.eval();
  const std::vector<double> ye = bn(x).to_vector<double>();
  CHECK(ye[0] == doctest::Approx((1 - 1.25) / std::sqrt(rv[0] + 1e-5)));
  CHECK(bn.num_batches_tracked() == 1);  // eval leaves the statistics alone
}

TEST_CASE("gradcheck: BatchNorm2d in training mode (through the batch statistics)") {
  BatchNorm2dOptions o{3};
  o.dtype = DType::f64;
  o.device = test::device();
  BatchNorm2d bn(o);
  set_values(bn.parameter("weight"), {0.5, 1.5, -1.0});
  set_values(bn.parameter("bias"), {0.1, -0.2, 0.3});
  Generator gen(13);
  Tensor x = randn({2, 3, 3, 2}, test::opts(DType::f64), &gen);
  set_requires_grad(x);
  GradcheckResult r = test::device_gradcheck([&](const std::vector<Tensor>& in) { return bn(in[0]); }, {x});
  INFO(r.message);
  CHECK(r.ok);
}
