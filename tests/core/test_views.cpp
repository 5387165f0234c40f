// Tests of the raw view and copy ops: views share storage and see the right elements, reshape
// copies only when it must, copies/casts/cat/fill handle strided and broadcast operands, and
// bad shapes and dims give errors naming what was found.
#include <doctest/doctest.h>

#include "core/backend.h"
#include "tests/core/core_test_util.h"

using namespace zt;
using namespace zt::test;

namespace {

// 0, 1, ..., n-1 as f32 of `shape`, on the device under test unless told.
Tensor iota(const Shape& shape, DType dt = DType::f32, Device on = device()) {
  return raw::reshape(arange(0, double(shape_numel(shape)), 1, {dt, on}), shape);
}

}  // namespace

TEST_CASE("reshape and view share storage when the layout allows") {
  Tensor a = iota({2, 3, 4});
  Tensor r = raw::reshape(a, {6, -1});
  CHECK(r.shares_storage(a));
  check_values(r, values(a), {6, 4});
  check_values(raw::view(a, {4, 6}), values(a), {4, 6});
  check_values(raw::flatten(a, 1), values(a), {2, 12});
  check_values(raw::flatten(a), values(a), {24});
  // Narrowed columns: splitting the row dim is still a view; merging rows is not.
  Tensor n = raw::narrow(raw::reshape(iota({4, 6}), {4, 6}), 1, 0, 3);  // (4, 3), strides (6, 1)
  Tensor split_rows = raw::reshape(n, {2, 2, 3});
  CHECK(split_rows.shares_storage(n));
  check_values(split_rows, {0, 1, 2, 6, 7, 8, 12, 13, 14, 18, 19, 20}, {2, 2, 3});
  Tensor merged = raw::reshape(n, {12});
  CHECK_FALSE(merged.shares_storage(n));
  check_values(merged, {0, 1, 2, 6, 7, 8, 12, 13, 14, 18, 19, 20}, {12});
  const std::string err = error_of([&] { raw::view(n, {12}); });
  CHECK(contains(err, "(4, 3)"));
  CHECK(contains(err, "(12,)"));
}

TEST_CASE("reshape errors name both shapes") {
  Tensor a = iota({2, 3});
  std::string err = error_of([&] { raw::reshape(a, {4, 2}); });
  CHECK(contains(err, "(2, 3)"));
  CHECK(contains(err, "(4, 2)"));
  err = error_of([&] { raw::reshape(a, {-1, 4}); });
  CHECK(contains(err, "(-1, 4)"));
  CHECK(contains(error_of([&] { raw::reshape(a, {-1, -1}); }), "only one"));
}

TEST_CASE("transpose and permute swap strides without copying") {
  Tensor a = iota({2, 3});
  Tensor t = raw::transpose(a, 0, 1);
  CHECK(t.shares_storage(a));
  CHECK(t.strides() == Shape{1, 3});
  CHECK_FALSE(t.is_contiguous());
  check_values(t, {0, 3, 1, 4, 2, 5}, {3, 2});
  Tensor c = raw::contiguous(t);
  CHECK(c.is_contiguous());
  CHECK_FALSE(c.shares_storage(a));
  check_values(c, {0, 3, 1, 4, 2, 5}, {3, 2});
  CHECK(raw::contiguous(a).same_impl(a));

  Tensor b = iota({2, 3, 4});
  Tensor p = raw::permute(b, {2, 0, -2});  // (4, 2, 3): p[k][i][j] = b[i][j][k]
  CHECK(p.shape() == Shape{4, 2, 3});
  const std::vector<double> pv = values(p), bv = values(b);
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) CHECK(pv[size_t(k * 6 + i * 3 + j)] == bv[size_t(i * 12 + j * 4 + k)]);
  CHECK(contains(error_of([&] { raw::permute(b, {0, 0, 1}); }), "repeated"));
  CHECK(contains(error_of([&] { raw::permute(b, {0, 1}); }), "(2, 3, 4)"));
  CHECK(contains(error_of([&] { raw::transpose(b, 0, 3); }), "out of range"));
}

TEST_CASE("narrow, slice and select pick the right elements") {
  Tensor a = iota({3, 4});
  check_values(raw::narrow(a, 1, 1, 2), {1, 2, 5, 6, 9, 10}, {3, 2});
  check_values(raw::narrow(a, 0, -1, 1), {8, 9, 10, 11}, {1, 4});
  check_values(raw::slice(a, 1, 0, 4, 2), {0, 2, 4, 6, 8, 10}, {3, 2});
  check_values(raw::slice(a, 1, 1, 100, 2), {1, 3, 5, 7, 9, 11}, {3, 2});
  check_values(raw::slice(a, 0, -2, -1), {4, 5, 6, 7}, {1, 4});
  check_values(raw::slice(a, 0, 2, 1), {}, {0, 4});
  check_values(raw::select(a, 1, 2), {2, 6, 10}, {3});
  check_values(raw::select(a, 0, -1), {8, 9, 10, 11}, {4});
  check_values(raw::select(raw::select(a, 0, 1), 0, 3), {7}, {});
  CHECK(contains(error_of([&] { raw::narrow(a, 1, 3, 2); }), "(3, 4)"));
  CHECK(contains(error_of([&] { raw::select(a, 0, 3); }), "out of range"));
  CHECK(contains(error_of([&] { raw::slice(a, 0, 0, 2, 0); }), "step"));
  CHECK(contains(error_of([&] { raw::narrow(a, 2, 0, 1); }), "out of range"));
}

TEST_CASE("unsqueeze, squeeze and expand") {
  Tensor a = iota({3});
  Tensor u = raw::unsqueeze(a, 0);
  check_values(u, {0, 1, 2}, {1, 3});
  check_values(raw::unsqueeze(a, -1), {0, 1, 2}, {3, 1});
  check_values(raw::squeeze(u, 0), {0, 1, 2}, {3});
  check_values(raw::squeeze(a, 0), {0, 1, 2}, {3});  // size 3: unchanged, as PyTorch
  Tensor e = raw::expand(raw::unsqueeze(a, -1), {2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(e.shares_storage(a));
  std::vector<double> expected;
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) expected.push_back(i);
  check_values(e, expected, {2, 3, 4});
  check_values(raw::expand(u, {2, -1}), {0, 1, 2, 0, 1, 2}, {2, 3});
  const std::string err = error_of([&] { raw::expand(a, {2, 4}); });
  CHECK(contains(err, "(3,)"));
  CHECK(contains(err, "(2, 4)"));
}

TEST_CASE("split into equal chunks and explicit sizes") {
  Tensor a = iota({5, 2});
  auto parts = raw::split(a, 2, 0);
  REQUIRE(parts.size() == 3);
  check_values(parts[2], {8, 9}, {1, 2});
  CHECK(parts[1].shares_storage(a));
  auto cols = raw::split(a, std::vector<int64_t>{1, 1}, 1);
  REQUIRE(cols.size() == 2);
  check_values(cols[1], {1, 3, 5, 7, 9}, {5, 1});
  const std::string err = error_of([&] { raw::split(a, std::vector<int64_t>{2, 2}, 0); });
  CHECK(contains(err, "(2, 2)"));
  CHECK(contains(err, "(5, 2)"));
}

TEST_CASE("cat joins along any dim, including strided inputs") {
  Tensor a = iota({2, 2});
  Tensor b = raw::transpose(iota({3, 2}), 0, 1);  // (2, 3)
  check_values(raw::cat({a, b}, 1), {0, 1, 0, 2, 4, 2, 3, 1, 3, 5}, {2, 5});
  check_values(raw::cat({a, a}, 0), {0, 1, 2, 3, 0, 1, 2, 3}, {4, 2});
  for (DType t : {DType::f16, DType::i64, DType::u8}) {
    check_values(raw::cat({iota({2}, t), iota({1}, t)}, -1), {0, 1, 0}, {3});
  }
  const std::string err = error_of([&] { raw::cat({a, iota({3, 3})}, 1); });
  CHECK(contains(err, "(3, 3)"));
  CHECK(contains(err, "(2, 2)"));
  const std::string dt = error_of([&] { raw::cat({a, iota({2, 2}, DType::f64)}, 0); });
  CHECK(contains(dt, "f32"));
  CHECK(contains(dt, "f64"));
}

TEST_CASE("copy_ broadcasts and casts into strided destinations; fill_ into views") {
  Tensor dst = zeros({3, 4}, opts());
  raw::copy_(raw::narrow(dst, 1, 1, 2), make({7, 8}, {2}, DType::f64));
  check_values(dst, {0, 7, 8, 0, 0, 7, 8, 0, 0, 7, 8, 0}, {3, 4});
  raw::fill_(raw::select(dst, 1, 3), -1.5);
  check_values(dst, {0, 7, 8, -1.5, 0, 7, 8, -1.5, 0, 7, 8, -1.5}, {3, 4});
  Tensor sq = iota({3, 3});
  raw::copy_(sq, raw::transpose(sq, 0, 1));  // overlapping source: read before written
  check_values(sq, {0, 3, 6, 1, 4, 7, 2, 5, 8}, {3, 3});
  // Disjoint halves of one buffer copy directly; overlapping shifted views still read first.
  Tensor buf = iota({8});
  raw::copy_(raw::narrow(buf, 0, 4, 4), raw::narrow(buf, 0, 0, 4));
  check_values(buf, {0, 1, 2, 3, 0, 1, 2, 3}, {8});
  Tensor shift = iota({6});
  raw::copy_(raw::narrow(shift, 0, 1, 5), raw::narrow(shift, 0, 0, 5));
  check_values(shift, {0, 0, 1, 2, 3, 4}, {6});
  CHECK(contains(error_of([&] { raw::copy_(dst, iota({3})); }), "(3, 4)"));
}

// Note [Asynchronous transfers]: host to host the copy is done when copy_async returns; tensors of
// different shapes, dtypes or layouts are refused. Host to host, so on the CPU on every device.
TEST_CASE("copy_async copies contiguous tensors of one dtype and refuses others") {
  const Device cpu = Device::cpu();
  Tensor dst = zeros({2, 3});
  TransferHandle t = raw::copy_async(dst, iota({2, 3}, DType::f32, cpu));
  check_values(dst, {0, 1, 2, 3, 4, 5}, {2, 3});
  t->wait();
  t->wait();  // waiting twice is harmless
  CHECK(contains(error_of([&] { raw::copy_async(dst, iota({3, 2}, DType::f32, cpu)); }), "one shape and dtype"));
  CHECK(contains(error_of([&] { raw::copy_async(dst, iota({2, 3}, DType::f64, cpu)); }), "one shape and dtype"));
  CHECK(contains(error_of([&] { raw::copy_async(raw::transpose(zeros({3, 2}), 0, 1), iota({2, 3}, DType::f32, cpu)); }),
                 "contiguous"));
}

TEST_CASE("to(dtype) casts between every pair of dtypes") {
  const std::vector<double> v{0, 1, 3, 100};
  for (DType from : kAllDTypes) {
    for (DType to : kAllDTypes) {
      INFO(dtype_name(from), " -> ", dtype_name(to));
      const bool boolean = from == DType::boolean || to == DType::boolean;
      std::vector<double> expected = v;
      if (boolean) expected = {0, 1, 1, 1};
      check_values(raw::to(make(v, {2, 2}, from), to), expected, {2, 2});
    }
  }
  check_values(raw::to(make({2.7, -2.7, 0.4}), DType::i32), {2, -2, 0}, {3});  // truncation
  check_values(raw::to(make({0.1}, {}, DType::f64), DType::bf16), {0.10009765625}, {1}, 0.0);
  check_values(raw::to(raw::transpose(iota({2, 3}), 0, 1), DType::f16), {0, 3, 1, 4, 2, 5}, {3, 2});
  Tensor a = iota({2});
  CHECK(raw::to(a, DType::f32).same_impl(a));
  Tensor c = raw::clone(a);
  raw::fill_(c, 5.0);
  check_values(a, {0, 1}, {2});
}

TEST_CASE("to(device) to CUDA without a CUDA backend is a clear error") {
  if (has_backend(DeviceType::CUDA)) return;  // only meaningful without a GPU backend
  const std::string err = error_of([] { raw::to(ones({2}), Device::cuda(0)); });
  CHECK(contains(err, "cuda:0"));
  CHECK(contains(err, "no backend"));
  Tensor a = ones({2});
  CHECK(raw::to(a, Device::cpu()).same_impl(a));
}

TEST_CASE("large strided copies use the parallel path correctly") {
  Tensor a = iota({300, 400}, DType::f64);
  Tensor t = raw::contiguous(raw::transpose(a, 0, 1));  // (400, 300)
  const std::vector<double> tv = values(t);
  int wrong = 0;
  for (int i = 0; i < 400; ++i)
    for (int j = 0; j < 300; ++j) wrong += tv[size_t(i * 300 + j)] != double(j * 400 + i);
  CHECK(wrong == 0);
  Tensor big = zeros({1 << 18}, opts());
  raw::fill_(big, 2.5);
  CHECK(raw::sum(big).item() == doctest::Approx(2.5 * (1 << 18)));
}
