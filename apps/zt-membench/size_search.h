// The search of zt-membench --max-model (Note [zt-membench max model] in max_model.h): the
// largest size in a range that passes a monotone test, in few tests when a prediction is close.
// Header-only so tests can drive it with a stand-in for the training trial.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>

namespace zt::membench {

struct SizeSearchResult {
  int64_t largest = 0;        // largest size that passed (0: none in the range)
  int64_t first_failure = 0;  // smallest size seen to fail (0: none failed)
  int64_t trials = 0;         // calls of the test
};

// The largest n in [lo, hi] (1 <= lo <= hi) with fits(n), for a fits that holds up to some size
// and fails above it. With anchor > 0 (a prediction): test the anchor (clamped to the range), then
// gallop away from it, anchor + 1, + 2, + 4, ... while the tests pass, or anchor - 1, - 2, - 4,
// ... while they fail, and bisect the last gap; a prediction off by d costs about 2 log2(d) + 2
// tests. With anchor 0: lo, 2 lo, 4 lo, ... (then hi), and bisect the last gap.
inline SizeSearchResult find_largest(int64_t lo, int64_t hi, int64_t anchor, const std::function<bool(int64_t)>& fits) {
  SizeSearchResult r;
  int64_t good = lo - 1, bad = hi + 1;  // largest pass and smallest failure so far (sentinels: none)
  auto test = [&](int64_t n) {
    ++r.trials;
    const bool ok = fits(n);
    if (ok) good = std::max(good, n);
    else bad = std::min(bad, n);
    return ok;
  };
  if (anchor > 0) {
    const int64_t a = std::clamp(anchor, lo, hi);
    const bool up = test(a);
    for (int64_t step = 1; up ? good < hi : bad > lo; step *= 2) {
      const int64_t n = up ? std::min(a + step, hi) : std::max(a - step, lo);
      if (test(n) != up) break;
    }
  } else {
    for (int64_t n = lo; test(n) && n < hi; n = std::min(2 * n, hi)) {
    }
  }
  while (bad - good > 1) test(good + (bad - good) / 2);
  r.largest = good >= lo ? good : 0;
  r.first_failure = bad <= hi ? bad : 0;
  return r;
}

}  // namespace zt::membench
