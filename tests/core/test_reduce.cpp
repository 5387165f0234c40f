// Tests of the raw reductions: sum/mean/max/min over dim sets with and without keepdim, on
// strided inputs and every dtype, accumulation precision of 16-bit floats, argmax/argmin ties
// and NaN, sum_to, large reductions on the parallel paths, and errors.
#include <doctest/doctest.h>

#include <cmath>

#include "tests/core/core_test_util.h"

using namespace zt;
using namespace zt::test;

namespace {

Tensor cube() { return raw::reshape(arange(0, 24, 1, opts()), {2, 3, 4}); }  // a[i][j][k] = 12i + 4j + k

}  // namespace

TEST_CASE("sum over dim sets, keepdim or not") {
  Tensor a = cube();
  check_values(raw::sum(a), {276}, {});
  check_values(raw::sum(a, {0}), {12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34}, {3, 4});
  check_values(raw::sum(a, {-1}), {6, 22, 38, 54, 70, 86}, {2, 3});
  check_values(raw::sum(a, {0, 2}, true), {60, 92, 124}, {1, 3, 1});
  check_values(raw::sum(a, {2, 0}), {60, 92, 124}, {3});
  check_values(raw::sum(a, {}, true), {276}, {1, 1, 1});
  check_values(raw::mean(a, {1}), {4, 5, 6, 7, 16, 17, 18, 19}, {2, 4});
  check_values(raw::amax(a, {1, 2}), {11, 23}, {2});
  check_values(raw::amin(a, {0}, true), {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {1, 3, 4});
}

TEST_CASE("reductions of strided and broadcast inputs") {
  Tensor t = raw::permute(cube(), {2, 0, 1});  // (4, 2, 3)
  check_values(raw::sum(t, {0}), {6, 22, 38, 54, 70, 86}, {2, 3});
  check_values(raw::amax(t, {2}), {8, 20, 9, 21, 10, 22, 11, 23}, {4, 2});
  Tensor s = raw::slice(cube(), 2, 1, 4, 2);  // k = 1, 3
  check_values(raw::sum(s, {2}), {4, 12, 20, 28, 36, 44}, {2, 3});
  Tensor e = raw::expand(make({1, 2, 3}, {3, 1}), {3, 5});
  check_values(raw::sum(e, {1}), {5, 10, 15}, {3});
  check_values(raw::sum(e), {30}, {});
}

TEST_CASE("every dtype: sums widen integers, max/min keep the dtype") {
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8}) {
    INFO(dtype_name(dt));
    Tensor a = make({1, 5, 2, 7, 3, 4}, {2, 3}, dt);
    Tensor s = raw::sum(a, {1});
    CHECK(s.dtype() == (is_floating(dt) || dt == DType::i64 ? dt : DType::i64));
    check_values(s, {8, 14}, {2});
    check_values(raw::amax(a, {0}), {7, 5, 4}, {3});
    CHECK(raw::amin(a, {0}).dtype() == dt);
    check_values(raw::amin(a), {1}, {});
    check_values(raw::argmax(a, 1), {1, 0}, {2});
  }
  Tensor b = make({1, 0, 1, 1}, {2, 2}, DType::boolean);
  check_values(raw::sum(b), {3}, {});
  check_values(raw::amax(b, {1}), {1, 1}, {2});
  CHECK(contains(error_of([] { raw::mean(make({1, 2}, {}, DType::i32)); }), "i32"));
}

TEST_CASE("16-bit floats accumulate in wide precision") {
  // 4096 ones: a bf16 accumulator would stop at 256.
  check_values(raw::sum(ones({4096}, opts(DType::bf16))), {4096}, {}, 0.0);
  // 3000 * 0.1 (f16 0.0999755859375) = 299.9267578125, rounded once to f16: 300.
  check_values(raw::sum(full({3000}, 0.1, opts(DType::f16))), {300}, {}, 0.0);
  const double tenth = 0.0999755859375;
  check_values(raw::mean(full({1000, 3}, 0.1, opts(DType::f16)), {0}), {tenth, tenth, tenth}, {3}, 0.0);
}

TEST_CASE("argmax/argmin: first of ties, NaN wins, keepdim") {
  Tensor a = make({1, 3, 3, 0, -1, -1}, {2, 3});
  check_values(raw::argmax(a, 1), {1, 0}, {2});
  check_values(raw::argmin(a, 1), {0, 1}, {2});
  check_values(raw::argmax(a, 0, true), {0, 0, 0}, {1, 3});
  check_values(raw::argmax(a, -2), {0, 0, 0}, {3});
  CHECK(raw::argmax(a, 1).dtype() == DType::i64);
  check_values(raw::argmax(make({1, NAN, 5, NAN}), 0), {1}, {});
  check_values(raw::argmin(make({1, NAN, -5}), 0), {1}, {});
  check_values(raw::argmax(raw::transpose(a, 0, 1), 1), {0, 0, 0}, {3});
  CHECK(contains(error_of([&] { raw::argmax(a, 2); }), "out of range"));
}

TEST_CASE("max/min propagate NaN") {
  check_values(raw::amax(make({1, NAN, 5})), {NAN}, {});
  check_values(raw::amin(make({NAN, 1, 5})), {NAN}, {});
  check_values(raw::sum(make({1, NAN})), {NAN}, {});
}

TEST_CASE("sum_to reduces broadcast dims back") {
  Tensor g = raw::reshape(arange(0, 24, 1, opts()), {2, 3, 4});
  check_values(raw::sum_to(g, {3, 1}), {60, 92, 124}, {3, 1});
  check_values(raw::sum_to(g, {4}), {60, 66, 72, 78}, {4});
  check_values(raw::sum_to(g, {2, 1, 1}), {66, 210}, {2, 1, 1});
  check_values(raw::sum_to(g, {}), {276}, {});
  CHECK(raw::sum_to(g, {2, 3, 4}).same_impl(g));
  const std::string err = error_of([&] { raw::sum_to(g, {3, 2}); });
  CHECK(contains(err, "(3, 2)"));
  CHECK(contains(err, "(2, 3, 4)"));
}

TEST_CASE("large reductions: few outputs (split inside) and many outputs") {
  const int64_t n = 1 << 21;
  Tensor a = arange(0, double(n), 1, opts(DType::f64));
  check_values(raw::sum(a), {double(n) * double(n - 1) / 2}, {}, 0.0);
  check_values(raw::amax(a), {double(n - 1)}, {}, 0.0);
  check_values(raw::argmin(raw::mul(a, -1.0), 0), {double(n - 1)}, {}, 0.0);
  Tensor m = raw::reshape(a, {2, n / 2});
  check_values(raw::sum(m, {1}), {double(n / 2) * double(n / 2 - 1) / 2,
                                   double(n / 2) * double(n / 2 - 1) / 2 + double(n / 2) * double(n / 2)},
               {2}, 0.0);
  // Column sums of (1024, 512): the bias-gradient pattern (reduce the outer dim).
  Tensor r = raw::reshape(arange(0, 1024 * 512, 1, opts(DType::f64)), {1024, 512});
  const std::vector<double> cs = values(raw::sum(r, {0}));
  int wrong = 0;
  for (int c = 0; c < 512; ++c) wrong += cs[size_t(c)] != 512.0 * 1023 * 512 + 1024.0 * c;
  CHECK(wrong == 0);
  check_values(raw::sum(ones({1000, 1000}, opts(DType::f32))), {1e6}, {}, 0.0);
}

TEST_CASE("outer-dim reductions over several dims, with max/min and 16-bit inputs") {
  // (200, 3, 64) reduced over {0, 1}: each of the 64 outputs walks 600 rows of memory in order.
  Tensor a = raw::reshape(arange(0, 200 * 3 * 64, 1, opts(DType::f64)), {200, 3, 64});
  const std::vector<double> s = values(raw::sum(a, {0, 1})), mx = values(raw::amax(a, {0, 1}));
  const std::vector<double> mn = values(raw::amin(raw::to(a, DType::bf16), {1, 0}));
  int wrong = 0;
  for (int c = 0; c < 64; ++c) {
    wrong += s[size_t(c)] != 64.0 * 599 * 600 / 2 + 600.0 * c;
    wrong += mx[size_t(c)] != 199.0 * 192 + 128 + c;
    wrong += mn[size_t(c)] != double(c);
  }
  CHECK(wrong == 0);
  check_values(raw::mean(raw::to(raw::slice(a, 2, 0, 64, 1), DType::f32), {0}, true),
               values(raw::mean(raw::slice(a, 2, 0, 64, 1), {0}, true)), {1, 3, 64});
}

TEST_CASE("reduction errors: bad or repeated dims, empty max") {
  Tensor a = cube();
  CHECK(contains(error_of([&] { raw::sum(a, {3}); }), "out of range"));
  CHECK(contains(error_of([&] { raw::sum(a, {1, -2}); }), "twice"));
  CHECK(contains(error_of([] { raw::amax(zeros({0, 3}, opts()), {0}); }), "(0, 3)"));
  check_values(raw::sum(zeros({0, 3}, opts()), {0}), {0, 0, 0}, {3});
}

TEST_CASE("sum_squares: squares and their sum in double, one rounding; floating only; empty is 0") {
  Tensor a = make({1, -2, 3, 4, 0.5, -6}, {2, 3});
  check_values(raw::reduce(ReduceOp::sum_squares, a, {1}), {14, 52.25}, {2});
  check_values(raw::reduce(ReduceOp::sum_squares, a, {0}), {17, 4.25, 45}, {3});
  // A transposed view, and 16-bit inputs (4096 bf16 values of 3: 36864, exact in bf16).
  check_values(raw::reduce(ReduceOp::sum_squares, raw::transpose(a, 0, 1), {}), {66.25}, {});
  check_values(raw::reduce(ReduceOp::sum_squares, full({4096}, 3.0, opts(DType::bf16)), {}), {36864}, {}, 0.0);
  // Squares beyond f32's range are formed in double; only a sum past it overflows the f32 result.
  check_values(raw::reduce(ReduceOp::sum_squares, full({2}, 1e19, opts(DType::f32)), {}), {2e38}, {}, 1e-6);
  CHECK(std::isinf(raw::reduce(ReduceOp::sum_squares, full({4}, 1e19, opts(DType::f32)), {}).item()));
  CHECK(std::isnan(raw::reduce(ReduceOp::sum_squares, make({1, NAN}, {2}), {}).item()));
  check_values(raw::reduce(ReduceOp::sum_squares, Tensor::empty({0, 3}, opts(DType::f32)), {0}), {0, 0, 0}, {3});
  CHECK(contains(error_of([] { raw::reduce(ReduceOp::sum_squares, make({1, 2}, {2}, DType::i32), {}); }),
                 "sum_squares: expected a floating dtype"));
}

// ZeRO's gradient norm reads the bf16/f16 gradient shard itself (Note [ZeRO gradient scaling] in
// zero/sharded_optimizer.h): the same double accumulation in the same order as over an f32 copy,
// only rounded once to the wider dtype asked for.
TEST_CASE("reduce to a wider float dtype: the same accumulation, rounded once to it") {
  std::vector<double> xs;
  for (int i = 0; i < 7 * 10001; ++i) xs.push_back(std::sin(0.37 * i) * std::pow(2.0, i % 9 - 4));
  for (DType low : {DType::bf16, DType::f16}) {
    INFO(dtype_name(low));
    const Tensor a = make(xs, {7, 10001}, low), wide = raw::to(a, DType::f32);
    for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{{}, {1}, {0}}) {
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::mean, ReduceOp::sum_squares}) {
        INFO(op_name(op), " over ", dims.size(), " dims");
        const Tensor f32 = raw::reduce(op, a, dims, false, DType::f32);
        CHECK(f32.dtype() == DType::f32);
        CHECK(raw::max_abs_diff(f32, raw::reduce(op, wide, dims)) == 0);
        // f64 keeps what f32 rounds away; the f32 rounding of it is the f32 result.
        const Tensor f64 = raw::reduce(op, a, dims, false, DType::f64);
        CHECK(f64.dtype() == DType::f64);
        CHECK(raw::max_abs_diff(raw::to(f64, DType::f32), f32) == 0);
        CHECK(raw::max_abs_diff(f64, raw::reduce(op, raw::to(a, DType::f64), dims)) <= 1e-9);
      }
    }
  }
  // An f32 sum of squares beyond f32's range is finite in f64.
  CHECK(raw::reduce(ReduceOp::sum_squares, full({4}, 1e19, opts(DType::f32)), {}, false, DType::f64).item() ==
        doctest::Approx(4e38));
  check_values(raw::reduce(ReduceOp::sum, full({3}, 2.5, opts(DType::bf16)), {0}, true, DType::f64), {7.5}, {1}, 0.0);
  // Narrower, non-sum and non-floating requests are refused.
  CHECK(contains(error_of([] { raw::reduce(ReduceOp::sum, zeros({2}, opts(DType::f64)), {}, false, DType::f32); }),
                 "sum: cannot return f32 for a f64 input"));
  CHECK(contains(error_of([] { raw::reduce(ReduceOp::max, zeros({2}, opts(DType::bf16)), {}, false, DType::f32); }),
                 "or f32/f64 no narrower than the input"));
  CHECK(contains(error_of([] { raw::reduce(ReduceOp::sum, zeros({2}, opts(DType::i32)), {}, false, DType::f64); }),
                 "cannot return f64 for a i32 input (expected i64"));
  CHECK(contains(error_of([] { raw::reduce(ReduceOp::sum, zeros({2}, opts(DType::bf16)), {}, false, DType::f16); }),
                 "cannot return f16 for a bf16 input"));
}
