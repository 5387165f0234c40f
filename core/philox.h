// Philox4x32-10 counter-based RNG (Salmon et al., SC'11). Element i of a draw with
// (seed, offset) uses counter (offset + i / 4) and lane i % 4, so any backend can compute any
// element independently and CPU and CUDA produce identical numbers.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/dtype.h"  // ZT_HOST_DEVICE

namespace zt::philox {

struct Uint4 {
  uint32_t x, y, z, w;
};

ZT_HOST_DEVICE inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

// Four 32-bit random words for counter `ctr` (64 bits used) under key `seed`.
ZT_HOST_DEVICE inline Uint4 philox4x32(uint64_t seed, uint64_t ctr) {
  Uint4 c{uint32_t(ctr), uint32_t(ctr >> 32), 0u, 0u};
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, c.x, &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, c.z, &hi1);
    c = Uint4{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

ZT_HOST_DEVICE inline uint32_t lane(const Uint4& r, unsigned i) {
  return i == 0 ? r.x : i == 1 ? r.y : i == 2 ? r.z : r.w;
}

// Uniform float in (0, 1] from 32 random bits (never 0, so log() is safe).
ZT_HOST_DEVICE inline float to_uniform(uint32_t bits) {
  return (float(bits >> 8) + 1.0f) * (1.0f / 16777216.0f);
}

// Element i of the uniform stream (seed, offset).
ZT_HOST_DEVICE inline float uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return to_uniform(lane(philox4x32(seed, offset + i / 4), unsigned(i % 4)));
}

// Element i of the standard normal stream: Box-Muller over the pair of lanes (2k, 2k+1).
ZT_HOST_DEVICE inline float normal(uint64_t seed, uint64_t offset, uint64_t i) {
  Uint4 r = philox4x32(seed, offset + i / 4);
  unsigned pair = unsigned(i % 4) & ~1u;
  float u1 = to_uniform(lane(r, pair)), u2 = to_uniform(lane(r, pair + 1));
  float radius = sqrtf(-2.0f * logf(u1));
  float angle = 6.2831853071795864f * u2;
  return (i % 2 == 0) ? radius * cosf(angle) : radius * sinf(angle);
}

// Counter values a draw of n elements consumes (callers advance their offset by this).
inline uint64_t counters_for(uint64_t n) { return (n + 3) / 4; }

}  // namespace zt::philox
