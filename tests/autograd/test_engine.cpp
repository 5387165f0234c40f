// Tests of the backward engine, grad mode, leaf state and hooks, with hand-computed gradients.
#include <string>

#include "core/allocator.h"
#include "helpers.h"

namespace zt {
namespace {

using test::expect_values;
using test::f64;

Tensor leaf_of(const std::vector<double>& values, const Shape& shape) {
  Tensor t = f64(values, shape);
  set_requires_grad(t);
  return t;
}

TEST_CASE("leaf state: requires_grad, is_leaf, grad, set_grad") {
  Tensor x = f64({1, 2}, {2});
  CHECK_FALSE(requires_grad(x));
  CHECK(is_leaf(x));
  set_requires_grad(x);
  CHECK(requires_grad(x));
  CHECK(is_leaf(x));
  CHECK_FALSE(grad(x).defined());
  Tensor y = x * 2.0;
  CHECK(requires_grad(y));
  CHECK_FALSE(is_leaf(y));
  CHECK_THROWS_AS(set_requires_grad(y, false), Error);
  set_grad(x, f64({5, 6}, {2}));
  expect_values(grad(x), {5, 6});
  CHECK_THROWS_AS(set_grad(x, f64({1, 2, 3}, {3})), Error);
  set_grad(x, Tensor());
  CHECK_FALSE(grad(x).defined());
  CHECK_THROWS_AS(set_requires_grad(from_vector<int64_t>({1}, {1}, test::opts(DType::i64))), Error);
}

TEST_CASE("gradients accumulate over two backward calls") {
  Tensor x = leaf_of({1, 2, 3}, {3});
  backward(sum(x * 3.0));
  expect_values(grad(x), {3, 3, 3});
  Tensor first = grad(x);
  backward(sum(x * x));
  expect_values(grad(x), {5, 7, 9});
  CHECK(grad(x).same_impl(first));  // later passes add in place
}

TEST_CASE("a leaf used twice receives the sum") {
  Tensor x = leaf_of({1, -2}, {2});
  backward(sum(x * x + x));  // d/dx = 2x + 1
  expect_values(grad(x), {3, -3});
}

TEST_CASE("diamond graph") {
  Tensor x = leaf_of({2}, {1});
  Tensor a = x * 2.0;
  Tensor b = a + 1.0;
  Tensor c = a * 3.0;
  backward(sum(b * c));  // (2x + 1) * 6x: d/dx = 24x + 6
  expect_values(grad(x), {54});
}

TEST_CASE("NoGradGuard records nothing and restores the mode") {
  Tensor x = leaf_of({1, 2}, {2});
  CHECK(grad_mode_enabled());
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_mode_enabled());
    Tensor y = exp(x * 2.0);
    CHECK_FALSE(requires_grad(y));
    CHECK(is_leaf(y));
    CHECK_THROWS_AS(backward(sum(y)), Error);
  }
  CHECK(grad_mode_enabled());
  CHECK(requires_grad(x * 2.0));
}

TEST_CASE("detach stops gradients") {
  Tensor x = leaf_of({3, 4}, {2});
  Tensor d = detach(x * x);
  CHECK_FALSE(requires_grad(d));
  backward(sum(d * x));  // d is a constant: gradient = x^2
  expect_values(grad(x), {9, 16});
}

TEST_CASE("non-scalar root needs grad_root; a root without grad errors") {
  Tensor x = leaf_of({1, 2}, {2});
  Tensor y = x * 2.0;
  try {
    backward(y);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("grad_root") != std::string::npos);
  }
  CHECK_THROWS_AS(backward(f64({1}, {1})), Error);
  CHECK_THROWS_AS(backward(y, f64({1, 1, 1}, {3})), Error);
  backward(y, f64({1, 10}, {2}));
  expect_values(grad(x), {2, 20});
}

TEST_CASE("backward on a leaf root") {
  Tensor x = leaf_of({1, 2}, {2});
  backward(x, f64({3, 4}, {2}));
  expect_values(grad(x), {3, 4});
}

TEST_CASE("retain_graph allows a second backward") {
  Tensor x = leaf_of({1, 2}, {2});
  Tensor loss = sum(x * x);
  backward(loss, Tensor(), /*retain_graph=*/true);
  backward(loss);
  expect_values(grad(x), {4, 8});
  CHECK_THROWS_AS(backward(loss), Error);  // saved tensors were freed by the last pass
}

TEST_CASE("backward frees saved tensors unless retain_graph") {
  Tensor x = zeros({1000}, test::opts(DType::f64));
  set_requires_grad(x);
  auto in_use = [] { return allocator_for(test::device()).stats().total.in_use; };
  for (bool retain : {false, true}) {
    CAPTURE(retain);
    Tensor loss = sum(tanh(x * 2.0));  // tanh saves x * 2, which nothing else holds
    const int64_t before = in_use();
    backward(loss, Tensor(), retain);
    set_grad(x, Tensor());
    const int64_t freed = before - in_use();
    CHECK(freed == (retain ? 0 : 1000 * 8));
  }
}

TEST_CASE("first gradient is a fresh tensor, tagged as gradient memory") {
  Tensor a = leaf_of({1, 2}, {2});
  Tensor b = leaf_of({3, 4}, {2});
  Tensor seed = f64({1, 1}, {2});
  Allocator& allocator = allocator_for(test::device());
  const int64_t before = allocator.stats().of(MemoryCategory::gradients).in_use;
  backward(a + b, seed);  // both leaves receive the very same gradient tensor
  CHECK_FALSE(grad(a).shares_storage(grad(b)));
  CHECK_FALSE(grad(a).shares_storage(seed));
  CHECK_FALSE(grad(b).shares_storage(seed));
  const int64_t after = allocator.stats().of(MemoryCategory::gradients).in_use;
  CHECK(after - before == 2 * 2 * 8);
  CHECK(grad(a).storage()->category() == MemoryCategory::gradients);
}

TEST_CASE("grad-ready hook fires once per backward, after the full sum") {
  Tensor x = leaf_of({1, 2}, {2});
  int calls = 0;
  std::vector<double> seen;
  register_grad_ready_hook(x, [&](const Tensor& leaf) {
    ++calls;
    seen = grad(leaf).to_vector<double>();
  });
  backward(sum(x * 2.0 + x * 3.0 + x));  // three uses: 6 per element
  CHECK(calls == 1);
  CHECK(seen == std::vector<double>{6, 6});
  backward(sum(x * x));
  CHECK(calls == 2);
  CHECK(seen == std::vector<double>{8, 10});
  CHECK_THROWS_AS(register_grad_ready_hook(x * 1.0, [](const Tensor&) {}), Error);
}

TEST_CASE("grad hooks replace gradients, on non-leaf and leaf tensors, and can be removed") {
  Tensor x = leaf_of({1, 2}, {2});
  Tensor h = x * 2.0;
  std::vector<double> seen;
  HookHandle handle = register_grad_hook(h, [&](const Tensor& g) {
    seen = g.to_vector<double>();
    return raw::mul(g, 10.0);
  });
  backward(sum(h * h));  // dL/dh = 2h = (4, 8); replaced by (40, 80); dL/dx = 2 * that
  CHECK(seen == std::vector<double>{4, 8});
  expect_values(grad(x), {80, 160});
  remove_hook(h, handle);
  CHECK_THROWS_AS(remove_hook(h, handle), Error);

  Tensor y = leaf_of({1, 1}, {2});
  HookHandle leaf_handle = register_grad_hook(y, [](const Tensor& g) { return raw::add(g, 1.0); });
  register_grad_hook(y, [](const Tensor&) { return Tensor(); });  // undefined: keep
  backward(sum(y * 3.0));
  expect_values(grad(y), {4, 4});
  remove_hook(y, leaf_handle);
  backward(sum(y * 3.0));
  expect_values(grad(y), {7, 7});
  CHECK_THROWS_AS(remove_hook(y, leaf_handle), Error);

  Tensor z = x * 1.0;
  HookHandle zh = register_grad_hook(z, [](const Tensor& g) { return raw::mul(g, 0.0); });
  remove_hook(z, zh);
  set_grad(x, Tensor());
  backward(sum(z));
  expect_values(grad(x), {1, 1});
}

TEST_CASE("backward_callback fires once, after all gradients arrived, and is an identity") {
  Tensor a = leaf_of({1, 2}, {2});
  Tensor b = leaf_of({3, 4}, {2});
  Tensor c = f64({5, 6}, {2});  // no grad: passed through untouched
  int calls = 0;
  bool a_ready_before_callback = false;
  register_grad_ready_hook(a, [&](const Tensor&) { a_ready_before_callback = calls == 0; });
  std::vector<Tensor> outs = backward_callback({a * 1.0, b * 1.0, c}, [&] { ++calls; });
  REQUIRE(outs.size() == 3);
  CHECK(outs[2].same_impl(c));
  backward(sum(outs[0] * outs[1]) + sum(outs[0]) + sum(outs[1] * outs[2]));
  CHECK(calls == 1);
  CHECK_FALSE(a_ready_before_callback);
  expect_values(grad(a), {4, 5});   // b + 1
  expect_values(grad(b), {6, 8});   // a + c
}

TEST_CASE("a multi-output node handles outputs without gradient") {
  Tensor x = leaf_of({1, 2, 3, 4, 5}, {5});
  std::vector<Tensor> parts = split(x, 2, 0);
  REQUIRE(parts.size() == 3);
  backward(sum(parts[1] * 3.0));
  expect_values(grad(x), {0, 0, 3, 3, 0});
}

TEST_CASE("a deep chain of 10000 ops does not overflow the stack") {
  Tensor x = leaf_of({0.5}, {1});
  Tensor one = f64({1}, {1});
  {
    Tensor y = x;
    for (int i = 0; i < 5000; ++i) y = (y * one) + 0.5;  // saves `one` in every mul
    backward(sum(y));
  }  // the graph is destroyed here, 10000 nodes deep
  expect_values(grad(x), {1});
}

TEST_CASE("outputs that alias an input get their own history") {
  Tensor x = leaf_of({1, 2}, {2});
  Tensor same = to(x, DType::f64);  // raw::to returns its input here
  CHECK_FALSE(same.same_impl(x));
  CHECK(is_leaf(x));
  Tensor moved = to(x, x.device());  // already there: raw::to returns its input
  CHECK_FALSE(moved.same_impl(x));
  Tensor packed = contiguous(x);  // already contiguous: likewise
  CHECK_FALSE(packed.same_impl(x));
  backward(sum(same * 2.0 + moved * 3.0 + packed));
  expect_values(grad(x), {6, 6});
  CHECK(is_leaf(x));
}

}  // namespace
}  // namespace zt
