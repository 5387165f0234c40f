// gradcheck (f64 finite differences) of every elementwise op and reduction in autograd/ops.h,
// with broadcasting; plus checks that gradcheck itself catches a wrong gradient.
#include <cmath>

#include "helpers.h"

namespace zt {
namespace {

using test::expect_gradcheck;
using test::expect_values;
using test::leaf;
using test::positive_leaf;
using V = std::vector<Tensor>;

TEST_CASE("gradcheck reports a wrong gradient") {
  Tensor x = leaf({3, 2}, 1);
  GradcheckResult r = test::device_gradcheck(
      [](const V& in) {
        Tensor y = in[0] * 1.0;
        if (requires_grad(y)) register_grad_hook(y, [](const Tensor& g) { return raw::mul(g, 1.5); });
        return y;
      },
      {x});
  CHECK_FALSE(r.ok);
  CHECK(r.max_abs_error > 0.01);
  CHECK(r.message.find("input 0") != std::string::npos);
  CHECK_THROWS_AS(gradcheck([](const V& in) { return in[0]; }, {test::f64({1}, {1})}), Error);
}

TEST_CASE("gradcheck: binary ops with broadcasting") {
  Tensor a = leaf({3, 4}, 1), b = leaf({4}, 2), c = leaf({2, 1, 4}, 3), d = leaf({3, 1}, 4);
  Tensor pb = positive_leaf({4}, 5), pd = positive_leaf({3, 1}, 6);
  expect_gradcheck([](const V& in) { return add(in[0], in[1]); }, {a, b});
  expect_gradcheck([](const V& in) { return in[0] + in[1]; }, {c, d});
  expect_gradcheck([](const V& in) { return sub(in[0], in[1]); }, {a, b});
  expect_gradcheck([](const V& in) { return in[0] - in[1]; }, {c, d});
  expect_gradcheck([](const V& in) { return mul(in[0], in[1]); }, {a, b});
  expect_gradcheck([](const V& in) { return in[0] * in[1]; }, {c, d});
  expect_gradcheck([](const V& in) { return div(in[0], in[1]); }, {a, pb});
  expect_gradcheck([](const V& in) { return in[0] / in[1]; }, {c, pd});
  expect_gradcheck([](const V& in) { return maximum(in[0], in[1]); }, {a, b});
  expect_gradcheck([](const V& in) { return minimum(in[0], in[1]); }, {c, d});
  // Only one side requiring grad.
  Tensor constant = test::f64({1, 2, 3, 4}, {4});
  expect_gradcheck([&](const V& in) { return in[0] * constant; }, {a});
  expect_gradcheck([&](const V& in) { return constant / in[0]; }, {pb});
}

TEST_CASE("gradcheck: scalar ops and operators") {
  Tensor a = leaf({2, 3}, 7), p = positive_leaf({2, 3}, 8);
  expect_gradcheck([](const V& in) { return add(in[0], 1.5); }, {a});
  expect_gradcheck([](const V& in) { return sub(in[0], 1.5); }, {a});
  expect_gradcheck([](const V& in) { return mul(in[0], -2.5); }, {a});
  expect_gradcheck([](const V& in) { return div(in[0], 4.0); }, {a});
  expect_gradcheck([](const V& in) { return 2.0 + in[0] * 3.0 - 1.0; }, {a});
  expect_gradcheck([](const V& in) { return 2.0 * (in[0] / 3.0); }, {a});
  expect_gradcheck([](const V& in) { return 2.0 - in[0]; }, {a});
  expect_gradcheck([](const V& in) { return 2.0 / in[0]; }, {p});
  expect_gradcheck([](const V& in) { return -in[0]; }, {a});
  expect_gradcheck([](const V& in) { return pow(in[0], 3.0); }, {a});
  expect_gradcheck([](const V& in) { return pow(in[0], -1.5); }, {p});
}

TEST_CASE("gradcheck: unary ops and activations") {
  Tensor a = leaf({3, 5}, 9), p = positive_leaf({3, 5}, 10);
  expect_gradcheck([](const V& in) { return neg(in[0]); }, {a});
  expect_gradcheck([](const V& in) { return abs(in[0]); }, {a});
  expect_gradcheck([](const V& in) { return exp(in[0]); }, {a});
  expect_gradcheck([](const V& in) { return log(in[0]); }, {p});
  expect_gradcheck([](const V& in) { return sqrt(in[0]); }, {p});
  expect_gradcheck([](const V& in) { return rsqrt(in[0]); }, {p});
  expect_gradcheck([](const V& in) { return square(in[0]); }, {a});
  expect_gradcheck([](const V& in) { return tanh(in[0]); }, {a});
  expect_gradcheck([](const V& in) { return sigmoid(in[0]); }, {a});
  expect_gradcheck([](const V& in) { return relu(in[0]); }, {a});
  expect_gradcheck([](const V& in) { return gelu(in[0]); }, {a});
  expect_gradcheck([](const V& in) { return gelu(in[0], /*tanh_approximation=*/true); }, {a});
}

TEST_CASE("gradcheck: where with broadcasting") {
  Tensor a = leaf({3, 4}, 11), b = leaf({4}, 12);
  Tensor cond = gt(leaf({3, 4}, 13), scalar_tensor(0.0, test::opts(DType::f64)));
  expect_gradcheck([&](const V& in) { return where(cond, in[0], in[1]); }, {a, b});
}

TEST_CASE("comparisons and argmax carry no gradient") {
  Tensor a = leaf({2, 3}, 14), b = leaf({2, 3}, 15);
  for (const Tensor& t : {eq(a, b), ne(a, b), lt(a, b), le(a, b), gt(a, b), ge(a, b)}) {
    CHECK(t.dtype() == DType::boolean);
    CHECK_FALSE(requires_grad(t));
  }
  Tensor m = argmax(test::f64({1, 5, 2, 7, 0, 3}, {2, 3}), 1);
  CHECK(m.to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  CHECK_FALSE(requires_grad(argmax(a, 0)));
}

TEST_CASE("gradcheck: reductions over dims, with and without keepdim") {
  Tensor a = leaf({2, 3, 4}, 16);
  for (bool keepdim : {false, true}) {
    CAPTURE(keepdim);
    expect_gradcheck([=](const V& in) { return sum(in[0], {}, keepdim); }, {a});
    expect_gradcheck([=](const V& in) { return sum(in[0], {1}, keepdim); }, {a});
    expect_gradcheck([=](const V& in) { return sum(in[0], {0, -1}, keepdim); }, {a});
    expect_gradcheck([=](const V& in) { return mean(in[0], {}, keepdim); }, {a});
    expect_gradcheck([=](const V& in) { return mean(in[0], {2}, keepdim); }, {a});
    expect_gradcheck([=](const V& in) { return amax(in[0], {}, keepdim); }, {a});
    expect_gradcheck([=](const V& in) { return amax(in[0], {1}, keepdim); }, {a});
    expect_gradcheck([=](const V& in) { return var(in[0], {2}, true, keepdim); }, {a});
    expect_gradcheck([=](const V& in) { return var(in[0], {0, 1}, false, keepdim); }, {a});
  }
  expect_gradcheck([](const V& in) { return var(in[0]); }, {a});
  expect_gradcheck([](const V& in) { return norm(in[0]); }, {a});
}

TEST_CASE("amax splits the gradient equally among ties") {
  Tensor x = test::f64({1, 3, 3, 2, 5, 4}, {2, 3});
  set_requires_grad(x);
  backward(sum(amax(x, {1})));
  expect_values(grad(x), {0, 0.5, 0.5, 0, 1, 0});
}

TEST_CASE("reduction values: var and norm") {
  Tensor x = test::f64({1, 2, 3, 4}, {4});
  expect_values(var(x), {5.0 / 3.0});
  expect_values(var(x, {}, false), {1.25});
  expect_values(norm(x), {std::sqrt(30.0)});
}

}  // namespace
}  // namespace zt
