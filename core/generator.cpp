// Generator counter reservation and the process-wide default generator.
#include "core/generator.h"

#include "core/philox.h"

namespace zt {

uint64_t Generator::reserve(uint64_t n) {
  const uint64_t start = offset_;
  offset_ += philox::counters_for(n);
  return start;
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().set_state(seed, 0); }

}  // namespace zt
