// Collectives of the MPI communicator against values computed by hand: every dtype, odd sizes,
// views, empty tensors, subgroups from split, asynchronous handles and the error cases.
// Runs as a world of one and under `mpirun -np 2` / `-np 4` (tests/CMakeLists.txt).
#include <doctest/doctest.h>

#include <cstdlib>
#include <functional>

#include "core/factory.h"
#include "core/ops.h"
#include "mpi_world.h"
#include "parallel/watchdog.h"

using namespace zt;
using zt::test::world;

namespace {

// Element i of rank r's input; values stay small integers, exact in every dtype (bf16 too).
double base_value(int r, int64_t i) { return double((r + 1) * (i % 3 + 1)); }

Tensor filled(int64_t n, DType t, const std::function<double(int64_t)>& f) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = f(i);
  return raw::to(from_vector(v, {n}), t);
}

std::vector<double> values(const Tensor& t) {
  return raw::to(raw::contiguous(t), DType::f64).to_vector<double>();
}

}  // namespace

TEST_CASE("the world matches the launcher's environment") {
  const LaunchInfo info = launch_info_from_env();
  CHECK(world()->size() == info.world_size);
  CHECK(world()->rank() == info.rank);
  CHECK(zt::test::mpi_runtime().local_rank() < zt::test::mpi_runtime().local_size());
  CHECK(world()->backend_name() == "mpi");
}

TEST_CASE("all_reduce sum, avg and max give the hand-computed values in every dtype") {
  const int W = world()->size(), r = world()->rank();
  const int64_t n = 7;  // odd on purpose
  for (DType t : kAllDTypes) {
    CAPTURE(dtype_name(t));
    if (t == DType::boolean) {
      // bool sum is a logical or: element i is true on rank r when (i + r) % 3 == 0.
      Tensor x = filled(n, t, [&](int64_t i) { return (i + r) % 3 == 0; });
      world()->all_reduce(x, CommReduceOp::sum);
      auto got = values(x);
      for (int64_t i = 0; i < n; ++i) {
        bool any = false;
        for (int q = 0; q < W; ++q) any = any || (i + q) % 3 == 0;
        CHECK(got[size_t(i)] == double(any));
      }
      continue;
    }
    Tensor s = filled(n, t, [&](int64_t i) { return base_value(r, i); });
    world()->all_reduce(s, CommReduceOp::sum);
    Tensor m = filled(n, t, [&](int64_t i) { return r * 10 + double(i); });
    world()->all_reduce(m, CommReduceOp::max);
    auto sum = values(s), max = values(m);
    for (int64_t i = 0; i < n; ++i) {
      // sum over r of (r + 1) * k = k * W (W + 1) / 2
      CHECK(sum[size_t(i)] == double((i % 3 + 1) * W * (W + 1) / 2));
      CHECK(max[size_t(i)] == double((W - 1) * 10 + i));
    }
    if (is_floating(t)) {
      Tensor a = filled(n, t, [&](int64_t i) { return base_value(r, i); });
      world()->all_reduce(a, CommReduceOp::avg);
      auto avg = values(a);
      for (int64_t i = 0; i < n; ++i) CHECK(avg[size_t(i)] == doctest::Approx((i % 3 + 1) * (W + 1) / 2.0));
    } else {
      Tensor a = filled(n, t, [&](int64_t) { return 1; });
      CHECK_THROWS_WITH_AS(world()->all_reduce(a, CommReduceOp::avg), doctest::Contains("avg needs a floating dtype"),
                           Error);
    }
  }
}

TEST_CASE("bf16 and f16 sums are accumulated in f32 and rounded once") {
  // Rank 0 adds 256, every other rank 1: bf16 has spacing 2 at 256, so adding ranks one by one
  // in bf16 would stay at 256, while the exact sum 256 + (W - 1) rounds once.
  const int W = world()->size(), r = world()->rank();
  const float exact = 256.0f + float(W - 1);
  Tensor b = filled(5, DType::bf16, [&](int64_t) { return r == 0 ? 256.0 : 1.0; });
  world()->all_reduce(b);
  for (double v : values(b)) CHECK(v == double(float(BFloat16(exact))));
  // f16: 2048 has spacing 2 as well.
  Tensor h = filled(5, DType::f16, [&](int64_t) { return r == 0 ? 2048.0 : 1.0; });
  world()->all_reduce(h);
  for (double v : values(h)) CHECK(v == double(float(Half(2048.0f + float(W - 1)))));
}

TEST_CASE("all_reduce on a non-contiguous view writes the result through the view") {
  const int W = world()->size(), r = world()->rank();
  Tensor base = raw::to(arange(0, 15), DType::f32);                      // (15,)
  Tensor view = raw::transpose(raw::reshape(base, {3, 5}), 0, 1);        // (5, 3), strided
  REQUIRE_FALSE(view.is_contiguous());
  Tensor scaled = raw::mul(base, double(r + 1));
  raw::copy_(base, scaled);
  world()->all_reduce(view);
  auto got = values(base);
  for (int64_t i = 0; i < 15; ++i) CHECK(got[size_t(i)] == double(i * W * (W + 1) / 2));
}

TEST_CASE("reduce_scatter gives each rank its rows of the sum, in every floating and integer dtype") {
  const int W = world()->size(), r = world()->rank();
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64}) {
    CAPTURE(dtype_name(t));
    // Input (3W, 2): row j, column c holds r + 10 j + c, so the sum is W (10 j + c) + W (W - 1) / 2.
    Tensor in = raw::reshape(filled(6 * W, t, [&](int64_t i) { return r + 10 * (i / 2) + i % 2; }), {3 * W, 2});
    Tensor out = world()->reduce_scatter(in);
    REQUIRE(out.shape() == Shape{3, 2});
    auto got = values(out);
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t c = 0; c < 2; ++c)
        CHECK(got[size_t(j * 2 + c)] == double(W * (10 * (3 * r + j) + c) + W * (W - 1) / 2));
    if (is_floating(t)) {
      Tensor avg = world()->reduce_scatter(in, CommReduceOp::avg);
      CHECK(values(avg)[0] == doctest::Approx(10.0 * 3 * r + (W - 1) / 2.0));
    }
  }
}

TEST_CASE("all_gather concatenates every rank's rows in rank order, in every dtype") {
  const int W = world()->size(), r = world()->rank();
  for (DType t : kAllDTypes) {
    CAPTURE(dtype_name(t));
    const bool is_bool = t == DType::boolean;
    Tensor in = raw::reshape(filled(6, t, [&](int64_t i) { return is_bool ? double((r + i) % 2) : r * 10 + i; }), {2, 3});
    Tensor out = world()->all_gather(in);
    REQUIRE(out.shape() == Shape{2 * W, 3});
    auto got = values(out);
    for (int q = 0; q < W; ++q)
      for (int64_t i = 0; i < 6; ++i)
        CHECK(got[size_t(q * 6 + i)] == (is_bool ? double((q + i) % 2) : double(q * 10 + i)));
  }
}

TEST_CASE("broadcast copies the root's tensor to every rank, in every dtype") {
  const int W = world()->size(), r = world()->rank();
  const int root = W - 1;
  for (DType t : kAllDTypes) {
    CAPTURE(dtype_name(t));
    Tensor x = filled(9, t, [&](int64_t i) { return r == root ? double((i + 1) % 2) * (t == DType::boolean ? 1 : 3 + i) : 0.0; });
    world()->broadcast(x, root);
    auto got = values(x);
    for (int64_t i = 0; i < 9; ++i)
      CHECK(got[size_t(i)] == double((i + 1) % 2) * (t == DType::boolean ? 1 : 3 + i));
  }
}

TEST_CASE("send and recv pass tensors around a ring, asynchronously") {
  const int W = world()->size(), r = world()->rank();
  const int next = (r + 1) % W, prev = (r + W - 1) % W;
  for (DType t : {DType::f32, DType::bf16, DType::i64, DType::u8}) {
    CAPTURE(dtype_name(t));
    Tensor out = filled(5, t, [&](int64_t i) { return r * 7 + i; });
    Tensor in = zeros({5}, t);
    WorkHandle recv = world()->recv_async(in, prev, 3);
    WorkHandle send = world()->send_async(out, next, 3);
    send->wait();
    recv->wait();
    CHECK(recv->is_completed());
    auto got = values(in);
    for (int64_t i = 0; i < 5; ++i) CHECK(got[size_t(i)] == double(prev * 7 + i));
  }
}

TEST_CASE("several asynchronous all_reduces complete when waited for in any order") {
  const int W = world()->size();
  std::vector<Tensor> ts;
  std::vector<WorkHandle> works;
  for (int k = 0; k < 4; ++k) {
    ts.push_back(full({11}, double(k + 1)));
    works.push_back(world()->all_reduce_async(ts.back()));
  }
  for (int k = 3; k >= 0; --k) works[size_t(k)]->wait();
  for (int k = 0; k < 4; ++k) CHECK(values(ts[size_t(k)])[10] == double((k + 1) * W));
  world()->barrier();
}

TEST_CASE("empty tensors are a no-op for every operation") {
  const int W = world()->size();
  Tensor e = zeros({0}, DType::bf16);
  WorkHandle w = world()->all_reduce_async(e);
  CHECK(w->is_completed());
  world()->broadcast(e, 0);
  CHECK(world()->reduce_scatter(zeros({0, 4})).shape() == Shape{0, 4});
  CHECK(world()->all_gather(zeros({0, 4})).shape() == Shape{0, 4});
  CHECK(W >= 1);
}

TEST_CASE("split makes subgroups ordered by key; a negative color takes no part") {
  const int W = world()->size(), r = world()->rank();
  // Parity groups, members in reverse world order (key = -rank).
  auto group = world()->split(r % 2, -r);
  REQUIRE(group);
  int members = 0, position = 0;
  for (int q = 0; q < W; ++q)
    if (q % 2 == r % 2) {
      ++members;
      if (q > r) ++position;
    }
  CHECK(group->size() == members);
  CHECK(group->rank() == position);
  Tensor x = full({3}, double(r), DType::i64);
  group->all_reduce(x);
  int64_t expected = 0;
  for (int q = r % 2; q < W; q += 2) expected += q;
  CHECK(values(x)[2] == double(expected));
  auto without_zero = world()->split(r == 0 ? -1 : 0, r);
  CHECK((r == 0) == (without_zero == nullptr));
  if (without_zero) CHECK(without_zero->size() == W - 1);
}

TEST_CASE("bad inputs are rejected with errors naming the sizes") {
  const int W = world()->size();
  if (W > 1) {
    const std::string sizes = "input dim 0 of size " + std::to_string(W * 3 + 1);
    CHECK_THROWS_WITH_AS(world()->reduce_scatter(zeros({W * 3 + 1, 2})), doctest::Contains(sizes.c_str()), Error);
  }
  const std::string shape = "expected an output of shape (" + std::to_string(2 * W) + ", 3)";
  CHECK_THROWS_WITH_AS(world()->all_gather(zeros({2, 3}), zeros({2 * W + 1, 3})), doctest::Contains(shape.c_str()),
                       Error);
  CHECK_THROWS_WITH_AS(world()->reduce_scatter(scalar_tensor(1.0)), doctest::Contains("0-d"), Error);
  CHECK_THROWS_WITH_AS(world()->broadcast(zeros({2}), W), doctest::Contains("out of range"), Error);
  CHECK_THROWS_WITH_AS(world()->send(zeros({2}), 0, -1), doctest::Contains("non-negative"), Error);
  CHECK_THROWS_WITH_AS(world()->all_reduce(Tensor()), doctest::Contains("undefined"), Error);
  world()->barrier();
}

TEST_CASE("recv of a shorter message than expected names both sizes") {
  const int W = world()->size(), r = world()->rank();
  if (W < 2) return;
  if (r == 0) world()->send(zeros({3}), 1, 9);
  if (r == 1) {
    Tensor in = zeros({5});
    CHECK_THROWS_WITH_AS(world()->recv(in, 0, 9), doctest::Contains("expected 5 elements from rank 0, received 3"),
                         Error);
  }
  world()->barrier();
}

TEST_CASE("ZT_COMM_TIMEOUT is read in seconds and malformed values are errors") {
  setenv("ZT_COMM_TIMEOUT", "2.5", 1);
  CHECK(comm_timeout_from_env() == 2.5);
  setenv("ZT_COMM_TIMEOUT", "soon", 1);
  CHECK_THROWS_WITH_AS(comm_timeout_from_env(), doctest::Contains("'soon'"), Error);
  unsetenv("ZT_COMM_TIMEOUT");
  CHECK(comm_timeout_from_env() == kDefaultCommTimeoutSeconds);
}
