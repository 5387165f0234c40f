// Tests of raw::pack_flat_ (core/ops.def pack_flat): sources of any shape (narrowed views too)
// land at their offsets, every element between and around them becomes zero, for every dtype;
// long ranges and many sources; and each kind of bad argument gets an error saying what was
// wrong and what was expected.
#include <doctest/doctest.h>

#include "tests/core/core_test_util.h"

using namespace zt;
using namespace zt::test;

namespace {

// A dst of n elements holding `garbage` everywhere, so a gap the op forgets to zero shows.
Tensor dirty(int64_t n, DType dt = DType::f32, double garbage = 9.0) { return full({n}, garbage, opts(dt)); }

}  // namespace

TEST_CASE("pack_flat_ copies sources of any shape to their offsets and zeroes the gaps") {
  Tensor dst = dirty(16);
  const Tensor matrix = make({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor window = raw::narrow(arange(0, 10, 1, opts()), 0, 3, 4);  // 3, 4, 5, 6: a view at an offset
  const Tensor scalar = make({-7}, {});
  // Out of order, touching (matrix ends where scalar starts), and a zero-sized source.
  raw::pack_flat_(dst, {window, matrix, scalar, make({}, {0})}, {11, 2, 8, 5});
  check_values(dst, {0, 0, 1, 2, 3, 4, 5, 6, -7, 0, 0, 3, 4, 5, 6, 0}, {16});
  // The sources are untouched.
  check_values(matrix, {1, 2, 3, 4, 5, 6}, {2, 3});
  // A narrowed dst (a bucket of a flat buffer): only that range is written.
  Tensor flat = dirty(10);
  raw::pack_flat_(raw::narrow(flat, 0, 3, 5), {make({1, 2})}, {2});
  check_values(flat, {9, 9, 9, 0, 0, 1, 2, 0, 9, 9}, {10});
}

TEST_CASE("pack_flat_ with no sources zero-fills dst; an empty dst takes empty sources") {
  Tensor dst = dirty(37, DType::bf16);
  raw::pack_flat_(dst, {}, {});
  check_values(dst, std::vector<double>(37, 0.0), {37});
  Tensor none = zeros({0}, opts());
  raw::pack_flat_(none, {zeros({0}, opts())}, {0});
  CHECK(none.numel() == 0);
}

TEST_CASE("pack_flat_ moves bytes for every dtype") {
  for (DType dt : kAllDTypes) {
    INFO(dtype_name(dt));
    const bool boolean = dt == DType::boolean;
    Tensor dst = dirty(11, dt, 1.0);
    const Tensor a = make(boolean ? std::vector<double>{1, 0, 1} : std::vector<double>{3, 7, 5}, {3}, dt);
    const Tensor b = raw::narrow(make({1, 1, 0, 1, 1}, {5}, dt), 0, 1, 3);
    raw::pack_flat_(dst, {a, b}, {1, 7});
    const std::vector<double> want = boolean ? std::vector<double>{0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0}
                                             : std::vector<double>{0, 3, 7, 5, 0, 0, 0, 1, 0, 1, 0};
    check_values(dst, want, {11}, 0.0);
  }
}

TEST_CASE("pack_flat_ over long ranges and thousands of sources") {
  // A source of 3M f32 (12 MB) spans many pieces; the gap before it too.
  const int64_t n = 3'000'000, at = 400'001;
  Tensor dst = dirty(at + n + 5);
  const Tensor big = arange(0, double(n), 1, opts(DType::f32));
  raw::pack_flat_(dst, {big}, {at});
  const std::vector<double> got = values(dst);
  int64_t wrong = 0;
  for (int64_t i = 0; i < int64_t(got.size()); ++i) {
    const double want = i >= at && i < at + n ? double(i - at) : 0.0;
    wrong += got[size_t(i)] != want;
  }
  CHECK(wrong == 0);
  // 3000 sources of 1..7 i64 elements with gaps of 0..2 between them.
  std::vector<Tensor> srcs;
  std::vector<int64_t> offsets;
  std::vector<double> want;
  for (int i = 0; i < 3000; ++i) {
    want.resize(want.size() + size_t(i % 3), 0.0);
    std::vector<double> v(size_t(1 + i % 7));
    for (size_t j = 0; j < v.size(); ++j) v[j] = double(i * 10 + int(j) + 1);
    offsets.push_back(int64_t(want.size()));
    srcs.push_back(make(v, {int64_t(v.size())}, DType::i64));
    want.insert(want.end(), v.begin(), v.end());
  }
  want.resize(want.size() + 3, 0.0);
  Tensor many = dirty(int64_t(want.size()), DType::i64);
  raw::pack_flat_(many, srcs, offsets);
  check_values(many, want, {int64_t(want.size())}, 0.0);
}

TEST_CASE("pack_flat_ errors say what was wrong and what was expected") {
  Tensor dst = dirty(10);
  const Tensor four = make({1, 2, 3, 4});
  CHECK_THROWS_WITH_AS(raw::pack_flat_(dst, {four, four}, {0}),
                       doctest::Contains("expected one offset per source, found 2 sources and 1 offsets"), Error);
  CHECK_THROWS_WITH_AS(raw::pack_flat_(dst, {make({1, 2}, {2}, DType::bf16)}, {0}),
                       doctest::Contains("source 0 has dtype bf16 but dst has dtype f32"), Error);
  const std::string strided =
      error_of([&] { raw::pack_flat_(dst, {four, raw::transpose(make({1, 2, 3, 4}, {2, 2}), 0, 1)}, {0, 5}); });
  CHECK(contains(strided, "source 1"));
  CHECK(contains(strided, "has strides (1, 2); expected a contiguous tensor"));
  CHECK_THROWS_WITH_AS(raw::pack_flat_(dst, {four}, {7}),
                       doctest::Contains("source 0 of 4 elements at offset 7 does not fit in dst of 10 elements"),
                       Error);
  CHECK_THROWS_WITH_AS(raw::pack_flat_(dst, {four}, {-1}), doctest::Contains("expected 0 <= offset"), Error);
  CHECK_THROWS_WITH_AS(raw::pack_flat_(dst, {make({1, 2}), four}, {6, 3}),
                       doctest::Contains("sources 1 (dst range [3, 7)) and 0 ([6, 8)) overlap"), Error);
  CHECK_THROWS_WITH_AS(raw::pack_flat_(dst, {four, make({1, 2})}, {2, 4}),
                       doctest::Contains("sources 0 (dst range [2, 6)) and 1 ([4, 6)) overlap (expected disjoint ranges)"),
                       Error);
  CHECK_THROWS_WITH_AS(raw::pack_flat_(zeros({2, 5}, opts()), {four}, {0}),
                       doctest::Contains("expected a 1-D contiguous dst"), Error);
  CHECK_THROWS_WITH_AS(raw::pack_flat_(raw::slice(dst, 0, 0, 10, 2), {four}, {0}),
                       doctest::Contains("expected a 1-D contiguous dst"), Error);
  CHECK_THROWS_WITH_AS(raw::pack_flat_(dst, {Tensor()}, {0}), doctest::Contains("source 0 is an undefined tensor"),
                       Error);
  CHECK_THROWS_WITH_AS(raw::pack_flat_(dst, {raw::narrow(dst, 0, 0, 2)}, {4}),
                       doctest::Contains("source 0 shares memory with dst"), Error);
  if (on_cuda()) {
    CHECK_THROWS_WITH_AS(raw::pack_flat_(dst, {raw::to(four, Device::cpu())}, {0}),
                         doctest::Contains("source 0 is on cpu but dst is on cuda:0"), Error);
  }
  check_values(dst, std::vector<double>(10, 9.0), {10});  // every rejected call left dst alone
}
