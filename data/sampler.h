// DistributedSampler: which sample indices each data-parallel rank reads in an epoch.
//
// Note [Distributed sampling]
// Every rank computes the same epoch order: a Fisher-Yates shuffle driven by SplitMix64 seeded
// from (seed, epoch), so it is identical on every machine and compiler (no std:: distributions).
// As in PyTorch's DistributedSampler, the order is then made a multiple of world_size:
//   drop_last = false: padded by repeating its first indices (cyclically if needed), so every
//                      sample is seen and a few are seen twice;
//   drop_last = true:  truncated, so no sample repeats and a few are skipped this epoch.
// Rank r takes the INTERLEAVED slice order[r], order[r + W], order[r + 2W], ... (PyTorch's
// choice), so the slices are disjoint and each rank gets num_samples() indices.
#pragma once
#include <cstdint>
#include <vector>

namespace zt {

// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fully specified 64-bit generator.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound) by the multiply-shift map (bias below 2^-64 * bound).
  uint64_t below(uint64_t bound) {
    return uint64_t((static_cast<unsigned __int128>(next()) * bound) >> 64);
  }

 private:
  uint64_t state_;
};

// A permutation of 0..n-1 that depends only on (n, seed).
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

struct DistributedSamplerOptions {
  int64_t dataset_size = 0;
  int64_t world_size = 1;
  int64_t rank = 0;
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;
};

class DistributedSampler {
 public:
  explicit DistributedSampler(DistributedSamplerOptions options);

  // Chooses the epoch whose order indices() returns (mixes the epoch into the shuffle seed).
  void set_epoch(int64_t epoch);
  int64_t epoch() const { return epoch_; }
  // Samples this rank reads per epoch, and that count times world_size.
  int64_t num_samples() const { return num_samples_; }
  int64_t total_size() const { return num_samples_ * options_.world_size; }
  // This rank's indices for the current epoch, in reading order.
  std::vector<int64_t> indices() const;
  // The full order of all ranks (after padding/truncation), before slicing by rank.
  std::vector<int64_t> global_order() const;
  const DistributedSamplerOptions& options() const { return options_; }

 private:
  DistributedSamplerOptions options_;
  int64_t epoch_ = 0;
  int64_t num_samples_ = 0;
};

}  // namespace zt
