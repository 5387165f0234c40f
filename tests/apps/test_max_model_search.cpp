// The size search of zt-membench --max-model (apps/zt-membench/size_search.h) against stand-in
// trials: it finds the largest size that fits for every threshold and anchor, and an anchor near
// the answer costs fewer trials than doubling from 1.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "apps/zt-membench/size_search.h"

using zt::membench::find_largest;
using zt::membench::SizeSearchResult;

namespace {

// Sizes up to `threshold` fit; records every size tried.
SizeSearchResult search_sizes(int64_t lo, int64_t hi, int64_t anchor, int64_t threshold, std::vector<int64_t>* tried) {
  return find_largest(lo, hi, anchor, [&](int64_t n) {
    tried->push_back(n);
    return n <= threshold;
  });
}

}  // namespace

TEST_CASE("max-model search: the largest fitting size for every threshold, anchor and search") {
  const int64_t lo = 1, hi = 40;
  for (int64_t threshold = 0; threshold <= hi + 1; ++threshold) {
    for (int64_t anchor = 0; anchor <= hi + 3; ++anchor) {  // 0: doubling; past hi: clamped
      CAPTURE(threshold);
      CAPTURE(anchor);
      std::vector<int64_t> tried;
      const SizeSearchResult r = search_sizes(lo, hi, anchor, threshold, &tried);
      CHECK(r.largest == std::min(threshold, hi));
      CHECK(r.first_failure == (threshold < hi ? threshold + 1 : 0));
      CHECK(r.trials == int64_t(tried.size()));
      for (int64_t n : tried) CHECK((n >= lo && n <= hi));
      if (anchor > 0) {  // a prediction off by d costs at most 2 ceil(log2(d + 1)) + 2 trials
        const int64_t d = std::abs(std::clamp(anchor, lo, hi) - std::min(std::max(threshold, lo), hi));
        CHECK(r.trials <= 2 * int64_t(std::ceil(std::log2(double(d + 1)))) + 2);
      }
    }
  }
}

TEST_CASE("max-model search: anchored at a close prediction, fewer trials than doubling") {
  // What the CPU search of bench/RESULTS.md met: 12 heads fit, 13 did not, the prediction 13.
  std::vector<int64_t> anchored_tried, doubling_tried;
  const SizeSearchResult anchored = search_sizes(1, 64, 13, 12, &anchored_tried);
  const SizeSearchResult doubling = search_sizes(1, 64, 0, 12, &doubling_tried);
  CHECK(anchored.largest == 12);
  CHECK(doubling.largest == 12);
  CHECK(anchored_tried == std::vector<int64_t>{13, 12});
  CHECK(doubling_tried == std::vector<int64_t>{1, 2, 4, 8, 16, 12, 14, 13});
  // Galloping up from a low prediction: 40 fits, 41, 42, 44 fit, 48 does not, then 46, 47.
  std::vector<int64_t> up;
  CHECK(search_sizes(1, 64, 40, 46, &up).largest == 46);
  CHECK(up == std::vector<int64_t>{40, 41, 42, 44, 48, 46, 47});
}

TEST_CASE("max-model search: the range bounds it; nothing fitting is size 0") {
  std::vector<int64_t> tried;
  SizeSearchResult r = search_sizes(8, 16, 12, 3, &tried);  // nothing in [8, 16] fits
  CHECK(r.largest == 0);
  CHECK(r.first_failure == 8);
  CHECK(tried == std::vector<int64_t>{12, 11, 10, 8});
  tried.clear();
  r = search_sizes(8, 16, 0, 100, &tried);  // everything fits: doubling ends at the top
  CHECK(r.largest == 16);
  CHECK(r.first_failure == 0);
  CHECK(tried == std::vector<int64_t>{8, 16});
  tried.clear();
  r = search_sizes(5, 5, 9, 5, &tried);  // a range of one size
  CHECK(r.largest == 5);
  CHECK(tried == std::vector<int64_t>{5});
}
