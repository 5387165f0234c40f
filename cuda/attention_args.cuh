// What the CUDA attention kernels share (cuda/kernels_attention.cu, Note [Attention kernels]):
// block shape, the (B, H, T, D) operand views and the kernels' argument block.
#pragma once
#include <cstdint>

#include "cuda/kernel_utils.cuh"
#include "cuda/row_softmax.cuh"  // kLog2e

namespace zt::cuda::attention {

constexpr int kThreads = 128;  // every kernel: 4 warps
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 64;  // tensor-core tile rows (queries or keys), 16 per warp
constexpr float kLn2 = 0.6931471805599453f;

// A (B, H, T, D) operand: element (b, h, t, d) at data[b * sb + h * sh + t * st + d].
struct HeadsView {
  void* data;
  int64_t sb, sh, st;
};

struct AttnArgs {
  HeadsView q, k, v, out, grad_out, grad_q, grad_k, grad_v;
  void* lse;    // (B, H, T), f32 (f64 for f64)
  void* delta;  // (B, H, T), lse's type: rowsum(dO * O), backward only
  int batch_heads, heads, seq, dim;
  double scale;
  float scale_log2;  // scale * log2(e): the tensor-core kernels exponentiate with exp2
  bool causal;
  bool vec;  // 16-byte rows (tensor-core path): D % 8 == 0, aligned data and strides
};

// Row 0 of head bh = b * H + h of a view, as element type E.
template <typename E>
__device__ __forceinline__ E* head_rows(const HeadsView& v, int bh, int heads) {
  return static_cast<E*>(v.data) + int64_t(bh / heads) * v.sb + int64_t(bh % heads) * v.sh;
}

}  // namespace zt::cuda::attention
