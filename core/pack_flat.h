// The pack_flat op's contract (core/ops.def), checked once for every backend: the raw op checks
// it before dispatch and the kernels plan their work with the same function (they may be called
// directly, as the parity tests do), so every backend rejects the same input with one message.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace zt {

// numel elements of dst from dst_offset on: srcs[src] from src_offset on, or zeros when src < 0.
struct PackPiece {
  int64_t dst_offset = 0, numel = 0;
  int64_t src = -1, src_offset = 0;
};

// Checks pack_flat's arguments: dst 1-D contiguous; one offset per source; each source defined,
// contiguous, of dst's dtype and device, apart from dst's memory, and inside dst at its offset;
// the ranges disjoint. Errors name the source, what was found and what was expected. Returns the
// pieces that cover dst in order, sources and the zero gaps between them, none longer than
// max_piece_numel (long ranges are cut so a backend can spread them over threads or blocks).
std::vector<PackPiece> plan_pack_flat(const Tensor& dst, const std::vector<Tensor>& srcs,
                                      const std::vector<int64_t>& offsets,
                                      int64_t max_piece_numel = std::numeric_limits<int64_t>::max());

}  // namespace zt
