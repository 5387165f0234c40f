// Generator: (seed, offset) state for counter-based random draws. Each draw reserves a range
// of counters, so re-running with the same state reproduces it (activation recompute does).
#pragma once
#include <cstdint>

namespace zt {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves counters for n elements; returns the offset the draw starts at.
  uint64_t reserve(uint64_t n);

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

// The process-wide default generator, like torch.manual_seed's: used when none is passed.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace zt
