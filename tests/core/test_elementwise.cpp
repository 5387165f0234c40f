// Tests of the raw elementwise ops: broadcasting, every dtype, strided and broadcast inputs,
// scalar forms, unary ops and their derivatives, where, in-place updates, and errors.
#include <doctest/doctest.h>

#include <cmath>

#include "tests/core/core_test_util.h"

using namespace zt;
using namespace zt::test;

TEST_CASE("binary ops broadcast with numpy rules") {
  Tensor a = make({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor row = make({10, 20, 30}, {3});
  Tensor col = make({100, 200}, {2, 1});
  check_values(raw::add(a, row), {11, 22, 33, 14, 25, 36}, {2, 3});
  check_values(raw::sub(a, col), {-99, -98, -97, -196, -195, -194}, {2, 3});
  check_values(raw::mul(col, row), {1000, 2000, 3000, 2000, 4000, 6000}, {2, 3});
  check_values(raw::div(a, make({2}, {1})), {0.5, 1, 1.5, 2, 2.5, 3}, {2, 3});
  check_values(raw::add(make({1}, {1, 1, 1}), a), {2, 3, 4, 5, 6, 7}, {1, 2, 3});
  const std::string err = error_of([&] { raw::add(a, make({1, 2}, {2})); });
  CHECK(contains(err, "(2, 3)"));
  CHECK(contains(err, "(2,)"));
}

TEST_CASE("binary ops on every numeric dtype") {
  const std::vector<double> x{1, 4, 9, 16}, y{1, 2, 3, 4};
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8}) {
    INFO(dtype_name(t));
    Tensor a = make(x, {2, 2}, t), b = make(y, {2, 2}, t);
    Tensor s = raw::add(a, b);
    CHECK(s.dtype() == t);
    check_values(s, {2, 6, 12, 20}, {2, 2});
    check_values(raw::sub(a, b), {0, 2, 6, 12}, {2, 2});
    check_values(raw::mul(a, b), {1, 8, 27, 64}, {2, 2});
    check_values(raw::div(a, b), {1, 2, 3, 4}, {2, 2});
    check_values(raw::binary(BinaryOp::maximum, a, make({2, 2, 20, 2}, {2, 2}, t)), {2, 4, 20, 16}, {2, 2});
    check_values(raw::binary(BinaryOp::minimum, a, make({2, 2, 20, 2}, {2, 2}, t)), {1, 2, 9, 2}, {2, 2});
    check_values(raw::binary(BinaryOp::pow, b, make({2, 2, 2, 2}, {2, 2}, t)), {1, 4, 9, 16}, {2, 2});
    Tensor lt = raw::binary(BinaryOp::lt, a, make({2, 4, 2, 20}, {2, 2}, t));
    CHECK(lt.dtype() == DType::boolean);
    check_values(lt, {1, 0, 0, 1}, {2, 2});
    check_values(raw::binary(BinaryOp::eq, a, make({1, 0, 9, 0}, {2, 2}, t)), {1, 0, 1, 0}, {2, 2});
    check_values(raw::binary(BinaryOp::ge, a, make({1, 5, 9, 0}, {2, 2}, t)), {1, 0, 1, 1}, {2, 2});
  }
  check_values(raw::div(make({7, -7}, {}, DType::i32), make({2, 2}, {}, DType::i32)), {3, -3}, {2});
  check_values(raw::sub(make({1}, {}, DType::u8), make({2}, {}, DType::u8)), {255}, {1});  // wraps
  // CPU only: a CUDA kernel cannot throw, its integer division by zero gives 0 (cuda/cuda_backend.h).
  const Tensor one = from_vector<double>({1}, {}, DType::i64), zero = from_vector<double>({0}, {}, DType::i64);
  CHECK(contains(error_of([&] { raw::div(one, zero); }), "division by zero"));
}

TEST_CASE("bool operands: logic via add/mul, comparisons, no subtraction") {
  Tensor p = make({0, 0, 1, 1}, {}, DType::boolean), q = make({0, 1, 0, 1}, {}, DType::boolean);
  check_values(raw::add(p, q), {0, 1, 1, 1}, {4});
  check_values(raw::mul(p, q), {0, 0, 0, 1}, {4});
  check_values(raw::binary(BinaryOp::ne, p, q), {0, 1, 1, 0}, {4});
  check_values(raw::unary(UnaryOp::logical_not, p), {1, 1, 0, 0}, {4});
  CHECK(contains(error_of([&] { raw::sub(p, q); }), "bool"));
}

TEST_CASE("operands of different dtypes are an error naming both") {
  const std::string err = error_of([] { raw::add(ones({2}, opts()), ones({2}, opts(DType::f64))); });
  CHECK(contains(err, "f32"));
  CHECK(contains(err, "f64"));
  CHECK(contains(error_of([] { raw::where(ones({2}, opts()), ones({2}, opts()), ones({2}, opts())); }), "cond"));
}

TEST_CASE("non-contiguous operands: transposed, sliced, expanded") {
  Tensor a = raw::reshape(arange(0, 6, 1, opts()), {2, 3});
  Tensor t = raw::transpose(a, 0, 1);  // (3, 2): [[0,3],[1,4],[2,5]]
  Tensor s = raw::slice(raw::reshape(arange(0, 12, 1, opts()), {6, 2}), 0, 0, 6, 2);  // rows 0, 2, 4
  check_values(raw::add(t, s), {0, 4, 5, 9, 10, 14}, {3, 2});
  Tensor e = raw::expand(make({1, 2, 3}, {3, 1}), {3, 2});
  check_values(raw::mul(t, e), {0, 3, 2, 8, 6, 15}, {3, 2});
  for (DType dt : kFloatDTypes) {
    INFO(dtype_name(dt));
    check_values(raw::sub(raw::to(t, dt), raw::to(e, dt)), {-1, 2, -1, 2, -1, 2}, {3, 2});
  }
  // Past the parallel threshold with a transposed operand and a broadcast row.
  Tensor big = raw::reshape(arange(0, 512 * 300, 1, opts(DType::f64)), {512, 300});
  Tensor bias = arange(0, 512, 1, opts(DType::f64));
  Tensor r = raw::add(raw::transpose(big, 0, 1), bias);  // (300, 512)
  const std::vector<double> rv = values(r);
  int wrong = 0;
  for (int i = 0; i < 300; ++i)
    for (int j = 0; j < 512; ++j) wrong += rv[size_t(i * 512 + j)] != double(j * 300 + i + j);
  CHECK(wrong == 0);
}

TEST_CASE("scalar binary ops, scalar first or second") {
  Tensor a = make({1, 2, 4});
  check_values(raw::add(a, 0.5), {1.5, 2.5, 4.5}, {3});
  check_values(raw::mul(a, -2), {-2, -4, -8}, {3});
  check_values(raw::binary(BinaryOp::sub, a, 10, true), {9, 8, 6}, {3});
  check_values(raw::binary(BinaryOp::div, a, 8, true), {8, 4, 2}, {3});
  check_values(raw::binary(BinaryOp::pow, a, 2), {1, 4, 16}, {3});
  check_values(raw::binary(BinaryOp::gt, a, 1.5), {0, 1, 1}, {3});
  Tensor i = make({3, 5}, {}, DType::i64);
  check_values(raw::mul(i, 0.5), {1, 2}, {2});          // fractional scalar: computed, then truncated
  check_values(raw::add(i, 4e9), {4000000003, 4000000005}, {2});  // integral scalar stays exact
  check_values(raw::mul(make({1, 2}, {}, DType::bf16), 3), {3, 6}, {2});
  // CPU only, as above: CUDA's integer division by zero gives 0.
  CHECK(contains(error_of([] { raw::binary(BinaryOp::div, from_vector<double>({3}, {}, DType::i64), 0.0); }),
                 "division by zero"));
}

TEST_CASE("maximum/minimum propagate NaN") {
  Tensor a = make({NAN, 1, 2}), b = make({0, NAN, 1});
  check_values(raw::binary(BinaryOp::maximum, a, b), {NAN, NAN, 2}, {3});
  check_values(raw::binary(BinaryOp::minimum, a, b), {NAN, NAN, 1}, {3});
}

TEST_CASE("unary ops against the C library, every float dtype") {
  const std::vector<double> x{-2, -0.5, 0.25, 1, 3};
  struct Case {
    UnaryOp op;
    double (*f)(double);
  };
  const Case cases[] = {
      {UnaryOp::neg, [](double v) { return -v; }},
      {UnaryOp::abs, [](double v) { return std::abs(v); }},
      {UnaryOp::exp, [](double v) { return std::exp(v); }},
      {UnaryOp::square, [](double v) { return v * v; }},
      {UnaryOp::tanh, [](double v) { return std::tanh(v); }},
      {UnaryOp::sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }},
      {UnaryOp::relu, [](double v) { return v > 0 ? v : 0.0; }},
      {UnaryOp::gelu, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
      {UnaryOp::gelu_tanh, [](double v) {
         return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
       }},
      {UnaryOp::reciprocal, [](double v) { return 1 / v; }},
  };
  for (DType dt : kFloatDTypes) {
    for (const Case& c : cases) {
      INFO(dtype_name(dt), " ", op_name(c.op));
      std::vector<double> expected;
      for (double v : x) expected.push_back(c.f(v));
      check_values(raw::unary(c.op, make(x, {5}, dt)), expected, {5}, 2 * tolerance(dt));
    }
    const std::vector<double> pos{0.25, 1, 4};
    check_values(raw::unary(UnaryOp::sqrt, make(pos, {}, dt)), {0.5, 1, 2}, {3});
    check_values(raw::unary(UnaryOp::rsqrt, make(pos, {}, dt)), {2, 1, 0.5}, {3});
    check_values(raw::unary(UnaryOp::log, make(pos, {}, dt)), {std::log(0.25), 0, std::log(4)}, {3},
                 2 * tolerance(dt));
  }
  // Known values: GELU(1) = Phi(1) = 0.8413447460685429.
  check_values(raw::unary(UnaryOp::gelu, make({1}, {}, DType::f64)), {0.8413447460685429}, {1});
  check_values(raw::unary(UnaryOp::relu, make({NAN})), {NAN}, {1});
  // Far tails stay finite: gelu -> 0 on the left and -> x on the right, slopes 0 and 1.
  for (UnaryOp op : {UnaryOp::gelu, UnaryOp::gelu_tanh}) {
    INFO(op_name(op));
    check_values(raw::unary(op, make({-100, -30, 30, 100})), {0, 0, 30, 100}, {4});
    check_values(raw::unary_backward(op, ones({4}, opts()), make({-100, -30, 30, 100})), {0, 0, 1, 1}, {4});
  }
}

TEST_CASE("unary ops on integers keep integer semantics or fail clearly") {
  Tensor i = make({-3, 0, 5}, {}, DType::i32);
  check_values(raw::unary(UnaryOp::neg, i), {3, 0, -5}, {3});
  check_values(raw::unary(UnaryOp::abs, i), {3, 0, 5}, {3});
  check_values(raw::unary(UnaryOp::relu, i), {0, 0, 5}, {3});
  check_values(raw::unary(UnaryOp::square, make({-3, 4}, {}, DType::i64)), {9, 16}, {2});
  const std::string err = error_of([&] { raw::unary(UnaryOp::exp, i); });
  CHECK(contains(err, "i32"));
  CHECK(contains(err, "exp"));
}

TEST_CASE("unary_backward matches central differences in f64") {
  const std::vector<double> x{-2.5, -0.7, -0.1, 0.3, 1.1, 2.9};
  const std::vector<double> g{1.0, -2.0, 0.5, 3.0, -1.5, 0.25};
  for (UnaryOp op : {UnaryOp::relu, UnaryOp::gelu, UnaryOp::gelu_tanh, UnaryOp::tanh, UnaryOp::sigmoid}) {
    INFO(op_name(op));
    const double h = 1e-6;
    Tensor xp = make(x, {2, 3}, DType::f64);
    std::vector<double> up = values(raw::unary(op, raw::add(xp, h)));
    std::vector<double> down = values(raw::unary(op, raw::add(xp, -h)));
    std::vector<double> expected;
    for (size_t i = 0; i < x.size(); ++i) expected.push_back(g[i] * (up[i] - down[i]) / (2 * h));
    Tensor grad = raw::unary_backward(op, make(g, {2, 3}, DType::f64), xp);
    check_values(grad, expected, {2, 3}, 1e-7);
    // f32 and bf16 agree with f64 to their precision.
    for (DType dt : {DType::f32, DType::bf16}) {
      Tensor gl = raw::unary_backward(op, make(g, {2, 3}, dt), make(x, {2, 3}, dt));
      check_values(gl, values(raw::unary_backward(op, raw::to(make(g, {2, 3}, dt), DType::f64),
                                                  raw::to(make(x, {2, 3}, dt), DType::f64))),
                   {2, 3}, 4 * tolerance(dt));
    }
  }
  const Tensor two = ones({2}, opts());
  CHECK(contains(error_of([&] { raw::unary_backward(UnaryOp::exp, two, two); }), "exp"));
  CHECK(contains(error_of([&] { raw::unary_backward(UnaryOp::relu, two, ones({3}, opts())); }), "(3,)"));
}

TEST_CASE("where broadcasts cond, a and b") {
  Tensor cond = make({1, 0, 1}, {}, DType::boolean);
  Tensor a = make({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = make({-1}, {1});
  check_values(raw::where(cond, a, b), {1, -1, 3, 4, -1, 6}, {2, 3});
  Tensor ucond = make({0, 1}, {2, 1}, DType::u8);
  check_values(raw::where(ucond, a, b), {-1, -1, -1, 4, 5, 6}, {2, 3});
  Tensor ia = make({7, 8}, {}, DType::i64), ib = make({0, 0}, {}, DType::i64);
  check_values(raw::where(make({0, 1}, {}, DType::boolean), ia, ib), {0, 8}, {2});
}

TEST_CASE("in-place binary_ on contiguous, strided and aliased destinations") {
  Tensor a = make({1, 2, 3, 4, 5, 6}, {2, 3});
  raw::binary_(BinaryOp::add, a, make({10, 20, 30}, {3}));
  check_values(a, {11, 22, 33, 14, 25, 36}, {2, 3});
  raw::binary_(BinaryOp::mul, a, 2.0);
  check_values(a, {22, 44, 66, 28, 50, 72}, {2, 3});
  Tensor col = raw::select(a, 1, 0);  // strided (stride 3)
  raw::binary_(BinaryOp::sub, col, make({2, 8}));
  raw::binary_(BinaryOp::div, col, 2.0);
  check_values(a, {10, 44, 66, 10, 50, 72}, {2, 3});
  Tensor sq = raw::reshape(arange(0, 4, 1, opts()), {2, 2});
  raw::binary_(BinaryOp::add, sq, raw::transpose(sq, 0, 1));  // aliased: sq + sq^T
  check_values(sq, {0, 3, 3, 6}, {2, 2});
  const std::string err = error_of([&] { raw::binary_(BinaryOp::add, make({1, 2}), a); });
  CHECK(contains(err, "(2,)"));
  CHECK(contains(err, "(2, 3)"));
  Tensor e = raw::expand(make({1}), {3});
  CHECK(contains(error_of([&] { raw::binary_(BinaryOp::add, e, 1.0); }), "broadcast"));
  CHECK(contains(error_of([&] { raw::binary_(BinaryOp::lt, a, a); }), "bool"));
}
