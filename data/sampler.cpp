// DistributedSampler: seeded epoch order, padding/truncation to world_size, per-rank slice
// (Note [Distributed sampling] in data/sampler.h).
#include "data/sampler.h"

#include <numeric>

#include "core/error.h"

namespace zt {

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  ZT_CHECK(n >= 0, "seeded_permutation: expected a non-negative size, got ", n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  SplitMix64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = int64_t(rng.below(uint64_t(i) + 1));
    std::swap(order[size_t(i)], order[size_t(j)]);
  }
  return order;
}

DistributedSampler::DistributedSampler(DistributedSamplerOptions options) : options_(options) {
  const auto& o = options_;
  ZT_CHECK(o.dataset_size > 0, "DistributedSampler: expected a non-empty dataset, got size ",
           o.dataset_size);
  ZT_CHECK(o.world_size >= 1, "DistributedSampler: expected world_size >= 1, got ", o.world_size);
  ZT_CHECK(o.rank >= 0 && o.rank < o.world_size, "DistributedSampler: rank ", o.rank,
           " is out of range for world_size ", o.world_size);
  if (o.drop_last) {
    ZT_CHECK(o.dataset_size >= o.world_size, "DistributedSampler: drop_last with ",
             o.dataset_size, " samples and world_size ", o.world_size,
             " leaves no sample for some ranks (expected at least one sample per rank)");
    num_samples_ = o.dataset_size / o.world_size;
  } else {
    num_samples_ = (o.dataset_size + o.world_size - 1) / o.world_size;
  }
}

void DistributedSampler::set_epoch(int64_t epoch) {
  ZT_CHECK(epoch >= 0, "DistributedSampler::set_epoch: expected epoch >= 0, got ", epoch);
  epoch_ = epoch;
}

std::vector<int64_t> DistributedSampler::global_order() const {
  const int64_t n = options_.dataset_size;
  std::vector<int64_t> order;
  if (options_.shuffle) {
    // Mix the epoch through one SplitMix64 step so (seed, epoch) and (seed + 1, epoch - 1)
    // give unrelated orders.
    SplitMix64 mix(options_.seed ^ (uint64_t(epoch_) * 0xD1B54A32D192ED03ull));
    order = seeded_permutation(n, mix.next());
  } else {
    order.resize(size_t(n));
    std::iota(order.begin(), order.end(), int64_t(0));
  }
  const int64_t total = total_size();
  if (total <= n) {
    order.resize(size_t(total));
  } else {
    order.reserve(size_t(total));
    for (int64_t i = 0; int64_t(order.size()) < total; ++i) order.push_back(order[size_t(i % n)]);
  }
  return order;
}

std::vector<int64_t> DistributedSampler::indices() const {
  std::vector<int64_t> order = global_order();
  std::vector<int64_t> mine;
  mine.reserve(size_t(num_samples_));
  for (int64_t i = options_.rank; i < int64_t(order.size()); i += options_.world_size) {
    mine.push_back(order[size_t(i)]);
  }
  return mine;
}

}  // namespace zt
