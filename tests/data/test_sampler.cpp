// DistributedSampler: hand-computed slices, coverage and disjointness for world sizes 1-3,
// seeded shuffles that repeat per seed and change per epoch.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>

#include "data/data_test_util.h"
#include "data/sampler.h"

using namespace zt;

namespace {
DistributedSampler make(int64_t n, int64_t world, int64_t rank, bool shuffle, bool drop_last,
                        uint64_t seed = 7) {
  DistributedSamplerOptions o;
  o.dataset_size = n;
  o.world_size = world;
  o.rank = rank;
  o.shuffle = shuffle;
  o.seed = seed;
  o.drop_last = drop_last;
  return DistributedSampler(o);
}

using Ids = std::vector<int64_t>;
}  // namespace

TEST_CASE("SplitMix64 matches the reference sequence") {
  // Reference values of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
  SplitMix64 rng(0);
  CHECK(rng.next() == 0xE220A8397B1DCDAFull);
  CHECK(rng.next() == 0x6E789E6AA1B965F4ull);
  CHECK(rng.next() == 0x06C45D188009454Full);
}

TEST_CASE("seeded_permutation is a permutation fixed by its seed") {
  Ids p = seeded_permutation(100, 3);
  Ids sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) CHECK(sorted[size_t(i)] == i);
  CHECK(seeded_permutation(100, 3) == p);
  CHECK(seeded_permutation(100, 4) != p);
  Ids identity(100);
  for (int64_t i = 0; i < 100; ++i) identity[size_t(i)] = i;
  CHECK(p != identity);
}

TEST_CASE("sampler without shuffle: interleaved slices, padded or truncated") {
  // 10 samples over 3 ranks: padded order 0..9, 0, 1; truncated order 0..8.
  CHECK(make(10, 3, 0, false, false).indices() == Ids{0, 3, 6, 9});
  CHECK(make(10, 3, 1, false, false).indices() == Ids{1, 4, 7, 0});
  CHECK(make(10, 3, 2, false, false).indices() == Ids{2, 5, 8, 1});
  CHECK(make(10, 3, 0, false, true).indices() == Ids{0, 3, 6});
  CHECK(make(10, 3, 1, false, true).indices() == Ids{1, 4, 7});
  CHECK(make(10, 3, 2, false, true).indices() == Ids{2, 5, 8});
  CHECK(make(10, 1, 0, false, false).indices() == Ids{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(make(5, 2, 1, false, false).indices() == Ids{1, 3, 0});
  // Padding wraps around more than once when the dataset is smaller than the world.
  CHECK(make(2, 5, 4, false, false).indices() == Ids{0});
  CHECK(make(2, 5, 3, false, false).indices() == Ids{1});
  CHECK(make(2, 5, 0, false, false).total_size() == 5);
}

TEST_CASE("sampler slices are disjoint and cover the dataset for world 1, 2, 3") {
  for (int64_t n : {9, 10, 11, 12}) {
    for (int64_t world : {1, 2, 3}) {
      for (bool drop_last : {false, true}) {
        for (bool shuffle : {false, true}) {
          CAPTURE(n);
          CAPTURE(world);
          CAPTURE(drop_last);
          CAPTURE(shuffle);
          std::map<int64_t, int> seen;
          int64_t total = 0;
          const int64_t per_rank = drop_last ? n / world : (n + world - 1) / world;
          for (int64_t r = 0; r < world; ++r) {
            DistributedSampler s = make(n, world, r, shuffle, drop_last);
            s.set_epoch(2);
            Ids ids = s.indices();
            CHECK(int64_t(ids.size()) == per_rank);
            CHECK(s.num_samples() == per_rank);
            for (int64_t i : ids) {
              CHECK(i >= 0);
              CHECK(i < n);
              ++seen[i];
            }
            total += int64_t(ids.size());
          }
          CHECK(total == per_rank * world);
          if (drop_last) {
            // No sample twice; exactly n - n % world distinct samples.
            CHECK(int64_t(seen.size()) == total);
            for (auto& [i, count] : seen) CHECK(count == 1);
          } else {
            // Every sample at least once; the padding repeats total - n of them once more.
            CHECK(int64_t(seen.size()) == n);
            int64_t repeats = 0;
            for (auto& [i, count] : seen) repeats += count - 1;
            CHECK(repeats == total - n);
          }
        }
      }
    }
  }
}

TEST_CASE("sampler shuffle: same seed same order, epochs and seeds differ") {
  DistributedSampler a = make(50, 2, 1, true, false, 11);
  DistributedSampler b = make(50, 2, 1, true, false, 11);
  a.set_epoch(3);
  b.set_epoch(3);
  CHECK(a.indices() == b.indices());
  CHECK(a.global_order() == b.global_order());
  Ids epoch3 = a.indices();
  a.set_epoch(4);
  CHECK(a.indices() != epoch3);
  a.set_epoch(3);
  CHECK(a.indices() == epoch3);
  DistributedSampler c = make(50, 2, 1, true, false, 12);
  c.set_epoch(3);
  CHECK(c.indices() != epoch3);
  // All ranks share one order: rank r's slice is its interleaved part of global_order().
  Ids order = a.global_order();
  for (size_t i = 0; i < epoch3.size(); ++i) CHECK(epoch3[i] == order[2 * i + 1]);
}

TEST_CASE("sampler rejects bad options with clear errors") {
  using test::error_message;
  CHECK(error_message([] { make(0, 1, 0, false, false); }).find("non-empty dataset") !=
        std::string::npos);
  CHECK(error_message([] { make(10, 2, 2, false, false); }).find("rank 2 is out of range") !=
        std::string::npos);
  CHECK(error_message([] { make(10, 0, 0, false, false); }).find("world_size >= 1") !=
        std::string::npos);
  CHECK(error_message([] { make(2, 3, 0, false, true); }).find("drop_last") != std::string::npos);
}
