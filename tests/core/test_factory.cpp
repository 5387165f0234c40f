// Tests of tensor creation: constant fills, arange, from_vector for each element type, and
// counter-based random draws (reproducible from (seed, offset), matching Philox element by
// element, with the right moments on 100k samples).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/philox.h"
#include "tests/core/core_test_util.h"

using namespace zt;
using namespace zt::test;

namespace {

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

double std_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size()));
}

}  // namespace

TEST_CASE("zeros, ones, full, *_like and scalar_tensor") {
  for (DType dt : kAllDTypes) {
    INFO(dtype_name(dt));
    Tensor z = zeros({2, 3}, opts(dt));
    CHECK(z.dtype() == dt);
    CHECK(z.device() == device());
    check_values(z, std::vector<double>(6, 0.0), {2, 3});
    check_values(ones({4}, opts(dt)), std::vector<double>(4, 1.0), {4});
    check_values(full({2}, 2.0, opts(dt)), std::vector<double>(2, dt == DType::boolean ? 1.0 : 2.0), {2});
    check_values(zeros_like(ones({3, 1}, opts(dt))), {0, 0, 0}, {3, 1});
    CHECK(empty_like(z).shape() == z.shape());
    CHECK(ones_like(z).dtype() == dt);
  }
  check_values(full({1, 2}, -3.25, opts(DType::f16)), {-3.25, -3.25}, {1, 2});
  Tensor s = scalar_tensor(7.5, opts(DType::f64));
  CHECK(s.dim() == 0);
  CHECK(s.item() == 7.5);
  CHECK(zeros({0, 4}, opts()).numel() == 0);
}

TEST_CASE("arange: steps, negative steps, dtypes, errors") {
  check_values(arange(0, 5, 1, opts()), {0, 1, 2, 3, 4}, {5});
  check_values(arange(1, 2, 0.25, opts()), {1, 1.25, 1.5, 1.75}, {4});
  check_values(arange(3, 0, -1, opts(DType::i64)), {3, 2, 1}, {3});
  check_values(arange(0, 1, 0.3, opts(DType::f64)), {0, 0.3, 0.6, 0.9}, {4});
  CHECK(arange(5, 0, 1, opts()).numel() == 0);
  CHECK(arange(0, 10, 1, opts(DType::i32)).dtype() == DType::i32);
  CHECK(contains(error_of([] { arange(0, 1, 0, opts()); }), "step"));
}

TEST_CASE("from_vector for each element type, with shape and dtype conversion") {
  check_values(from_vector<float>({1.5f, 2.5f}, {}, opts(DType::f32)), {1.5, 2.5}, {2});
  check_values(from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}, opts(DType::f64)), {1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor i32 = from_vector<int32_t>({-1, 7}, {}, opts(DType::i32));
  CHECK(i32.dtype() == DType::i32);
  check_values(i32, {-1, 7}, {2});
  Tensor i64 = from_vector<int64_t>({int64_t(1) << 40}, {1, 1}, opts(DType::i64));
  CHECK(i64.dtype() == DType::i64);
  CHECK(i64.to_vector<int64_t>()[0] == int64_t(1) << 40);
  Tensor u8 = from_vector<uint8_t>({0, 255}, {}, opts(DType::f32));
  CHECK(u8.dtype() == DType::f32);
  check_values(u8, {0, 255}, {2});
  check_values(from_vector<double>({0.5, 1.5}, {2}, opts(DType::bf16)), {0.5, 1.5}, {2});
  const std::string err = error_of([] { from_vector<float>({1, 2, 3}, {2, 2}, opts(DType::f32)); });
  CHECK(contains(err, "(2, 2)"));
  CHECK(contains(err, "3"));
}

TEST_CASE("rand matches Philox element by element and is reproducible") {
  Generator gen(1234);
  gen.set_state(1234, 10);
  Tensor a = rand({5, 7}, opts(DType::f32), &gen);
  CHECK(gen.offset() == 10 + philox::counters_for(35));
  const std::vector<double> av = values(a);
  for (int i = 0; i < 35; ++i) CHECK(av[size_t(i)] == double(philox::uniform(1234, 10, uint64_t(i))));
  gen.set_state(77, 3);
  const std::vector<double> nv = values(randn({13}, opts(DType::f32), &gen));
  // Box-Muller's logf/cosf differ by an ulp or two between glibc and CUDA (as in the parity tests).
  const double normal_tol = on_cuda() ? 1e-5 : 0.0;
  for (int i = 0; i < 13; ++i) {
    const double want = philox::normal(77, 3, uint64_t(i));
    CHECK(std::abs(nv[size_t(i)] - want) <= normal_tol * std::max(1.0, std::abs(want)));
  }
  gen.set_state(1234, 10 + philox::counters_for(35));
  Tensor b = rand({5, 7}, opts(DType::f32), &gen);
  CHECK(raw::max_abs_diff(a, b) > 0);  // the next draw continues the stream
  gen.set_state(1234, 10);
  CHECK(raw::max_abs_diff(a, rand({5, 7}, opts(DType::f32), &gen)) == 0);
  Generator other(99);
  CHECK(raw::max_abs_diff(a, rand({5, 7}, opts(DType::f32), &other)) > 0);
  manual_seed(7);
  Tensor d1 = randn({100}, opts());
  manual_seed(7);
  CHECK(raw::max_abs_diff(d1, randn({100}, opts())) == 0);
}

TEST_CASE("uniform and normal moments on 100k samples") {
  Generator gen(42);
  const std::vector<double> u = values(rand({100000}, opts(DType::f32), &gen));
  CHECK(mean_of(u) == doctest::Approx(0.5).epsilon(0.01));
  CHECK(std_of(u) == doctest::Approx(std::sqrt(1.0 / 12)).epsilon(0.01));
  double lo = 1, hi = 0;
  for (double x : u) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  CHECK(lo > 0.0);
  CHECK(hi <= 1.0);
  const std::vector<double> scaled = values(rand({100000}, opts(DType::f64), &gen, -2.0, 6.0));
  CHECK(mean_of(scaled) == doctest::Approx(2.0).epsilon(0.02));
  const std::vector<double> n = values(randn({100000}, opts(DType::f32), &gen));
  CHECK(std::abs(mean_of(n)) < 0.02);
  CHECK(std_of(n) == doctest::Approx(1.0).epsilon(0.02));
  const std::vector<double> shifted = values(randn({100000}, opts(DType::f64), &gen, 3.0, 0.5));
  CHECK(mean_of(shifted) == doctest::Approx(3.0).epsilon(0.01));
  CHECK(std_of(shifted) == doctest::Approx(0.5).epsilon(0.02));
  for (DType dt : {DType::f16, DType::bf16}) {
    const std::vector<double> h = values(randn({100000}, opts(dt), &gen));
    CHECK(std::abs(mean_of(h)) < 0.02);
    CHECK(std_of(h) == doctest::Approx(1.0).epsilon(0.03));
  }
  CHECK(contains(error_of([&] { rand({2}, opts(DType::i32), &gen); }), "i32"));
}

TEST_CASE("randint covers [low, high) uniformly") {
  Generator gen(5);
  Tensor r = randint(-3, 4, {70000}, opts(DType::i64), &gen);
  CHECK(r.dtype() == DType::i64);
  const std::vector<int64_t> v = r.to_vector<int64_t>();
  std::vector<int> counts(7, 0);
  bool in_range = true;
  for (int64_t x : v) {
    in_range = in_range && x >= -3 && x < 4;
    if (x >= -3 && x < 4) ++counts[size_t(x + 3)];
  }
  CHECK(in_range);
  for (int c : counts) CHECK(std::abs(c - 10000) < 600);
  Tensor small = randint(0, 2, {3, 3}, opts(DType::i32), &gen);
  CHECK(small.dtype() == DType::i32);
  CHECK(small.shape() == Shape{3, 3});
  CHECK(contains(error_of([&] { randint(3, 3, {2}, opts(DType::i64), &gen); }), "low < high"));
}
