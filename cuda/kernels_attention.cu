// CUDA scaled dot-product attention (core/ops.def: attention_forward, attention_backward) in the
// FlashAttention-2 scheme: scores live in registers one tile at a time, never as a (T, T) matrix.
// The CPU kernels (core/cpu/kernels_attention.cpp) define the meaning; layouts are those of
// Note [Attention layout] (core/attention_checks.h).
//
// Note [Attention kernels]
// f16/bf16 run on tensor cores: mma.sync m16n8k16 with f32 accumulators, operands read from
// shared memory by ldmatrix. Every block has 4 warps; each warp owns 16 rows of a 64-row tile.
// - Forward: one block per (b, h, 64 queries). K/V tiles of 64 keys are double-buffered with
//   cp.async; online softmax in registers on log2(e)-scaled scores (exp2); O is staged through
//   the warp's own Q rows in shared memory for 16-byte stores; lse per row.
// - Backward, deterministic (no atomics): delta_i = dO_i . O_i (16-byte vectors, a few lanes per
//   row), then dQ: one block per (b, h, 64 queries) over key tiles, P rebuilt from lse; and
//   dK, dV: one block per (b, h, 64 keys) over query tiles (32 queries at D >= 64, keeping dK, dV
//   and the scores in registers), warps owning key rows so that P^T and dS^T are register fragments.
//   S and dP are computed in both passes: 7 tile matmuls instead of the 5 of FA2's atomic dQ,
//   for results that do not depend on scheduling.
// Head dims up to 128 pad to Dp = 32, 64 or 128 in shared memory (zero columns add nothing).
// Shared tiles have rows of Dp + 8 elements: ldmatrix reads 8 rows of 16 bytes at a time and the
// 16-byte skew puts them in 8 distinct 4-bank groups (conflict-free).
// Causal: a query tile visits key tiles up to its diagonal only (the dK/dV blocks, query tiles
// from theirs). Masking (key > query, or index >= T) is evaluated only in tiles that cross the
// diagonal or the end of the sequence. Rows past T load as zeros (so 0 * garbage never makes a
// NaN) and are never stored. Grid: x = B * H, y = tiles, the longest causal rows first.
// f32/f64 run a CUDA-core version of the same three passes: 16 rows per block (4 per warp),
// 32-key (or 32-query) tiles with one score per lane, accumulating in their own type.
// f16/bf16 go to cuDNN's fused attention first where it takes them (Note [cuDNN attention] in
// attention_cudnn.cpp); these kernels are the fallback and the deterministic choice
// (ZT_CUDNN_ATTENTION=0).
#include <climits>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/attention_checks.h"
#include "cuda/attention_cudnn.h"
#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/elementwise.cuh"  // Vec: 16-byte loads
#include "cuda/kernel_utils.cuh"
#include "cuda/row_softmax.cuh"
#include "cuda/attention_args.cuh"
#include "cuda/attention_simt.cuh"

namespace zt::cuda {
namespace {

using namespace attention;

// ---- tensor-core building blocks (sm_80+ PTX) ----

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async_16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Four 8x8 b16 matrices: lane l gives the address of row l % 8 of matrix l / 8 and receives, of
// matrix i in r[i], row l / 4 at columns 2 (l % 4) and 2 (l % 4) + 1 (of the transpose: _trans).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(p))
               : "memory");
}

// d (16x8, f32) += a (16x16) b (16x8). With g = lane / 4 and t = lane % 4: a0 = A[g][2t..2t+1],
// a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]; b0 = B[2t..2t+1][g],
// b1 = B[2t+8..][g]; d0, d1 = D[g][2t..2t+1], d2, d3 = D[g+8][2t..2t+1].
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, BFloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    static_assert(std::is_same_v<T, Half>, "mma_16816 takes f16 or bf16");
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats rounded to T and packed, lo in the low half (the lower column index).
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t bits;
  if constexpr (std::is_same_v<T, BFloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    memcpy(&bits, &v, 4);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    memcpy(&bits, &v, 4);
  }
  return bits;
}

// Column of accumulator element e of n-tile n, relative to the tile's first column.
__device__ __forceinline__ int acc_col(int n, int e, int lane) { return n * 8 + 2 * (lane % 4) + (e & 1); }

// acc (16, 8 NT) += A (16, K) B^T for shared row-major tiles A (16 rows) and B (8 NT rows), both
// with row stride `stride`, K a multiple of 16. ldmatrix of A: lane l points at row l % 16,
// column half l / 16 (matrices a0..a3); of B: rows (n..n+7 | n+8..n+15) x columns (k | k+8), i.e.
// b0, b1 of n-tile n then of n-tile n + 1.
template <typename T, int NT, int K>
__device__ __forceinline__ void mma_a_bt(float (&acc)[NT][4], const uint16_t* a, const uint16_t* b, int stride,
                                         int lane) {
  static_assert(NT % 2 == 0 && K % 16 == 0, "mma_a_bt: n-tiles in pairs, K in chunks of 16");
#pragma unroll
  for (int k = 0; k < K; k += 16) {
    uint32_t af[4];
    ldmatrix_x4(af, a + (lane % 16) * stride + k + (lane / 16) * 8);
#pragma unroll
    for (int n = 0; n < NT; n += 2) {
      uint32_t bf[4];
      ldmatrix_x4(bf, b + (n * 8 + lane % 8 + (lane / 16) * 8) * stride + k + (lane / 8 % 2) * 8);
      mma_16816<T>(acc[n], af, bf[0], bf[1]);
      mma_16816<T>(acc[n + 1], af, bf[2], bf[3]);
    }
  }
}

// acc (16, 8 DT) += P (16, 8 NP) B, with P in accumulator layout (n-tiles 2c and 2c + 1 hold
// exactly a0..a3 of k chunk c) and B (8 NP, 8 DT) a shared row-major tile read transposed by
// ldmatrix: rows (16c..16c+7 | 16c+8..16c+15) x columns (d | d+8) give b0, b1 of n-tiles d, d + 1.
template <typename T, int NP, int DT>
__device__ __forceinline__ void mma_p_b(float (&acc)[DT][4], const float (&p)[NP][4], const uint16_t* b, int stride,
                                        int lane) {
  static_assert(NP % 2 == 0 && DT % 2 == 0, "mma_p_b: tiles in pairs");
#pragma unroll
  for (int c = 0; c < NP / 2; ++c) {
    const uint32_t af[4] = {pack2<T>(p[2 * c][0], p[2 * c][1]), pack2<T>(p[2 * c][2], p[2 * c][3]),
                            pack2<T>(p[2 * c + 1][0], p[2 * c + 1][1]), pack2<T>(p[2 * c + 1][2], p[2 * c + 1][3])};
#pragma unroll
    for (int d = 0; d < DT; d += 2) {
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, b + (c * 16 + lane % 8 + (lane / 8 % 2) * 8) * stride + d * 8 + (lane / 16) * 8);
      mma_16816<T>(acc[d], af, bf[0], bf[1]);
      mma_16816<T>(acc[d + 1], af, bf[2], bf[3]);
    }
  }
}

// Rows [row0, row0 + kRows) of one head's (T, D) slice g (row stride st) into a shared tile with
// rows of Dp + 8 elements; rows >= T and columns >= D become zeros. The whole block calls it.
// vec: 16-byte cp.async (complete after cp_async_wait_all); otherwise element copies.
template <int kRows, int Dp>
__device__ __forceinline__ void load_tile(uint16_t* tile, const uint16_t* g, int64_t st, int row0, int seq, int dim,
                                          bool vec) {
  constexpr int kStride = Dp + 8, kChunks = Dp / 8;
  if (vec) {
    for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
      const int r = c / kChunks, col = c % kChunks * 8;
      uint16_t* dst = tile + r * kStride + col;
      if (row0 + r < seq && col < dim) {
        cp_async_16(dst, g + (row0 + r) * st + col);
      } else {
        *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
      }
    }
  } else {
    for (int e = threadIdx.x; e < kRows * Dp; e += kThreads) {
      const int r = e / Dp, col = e % Dp;
      tile[r * kStride + col] = row0 + r < seq && col < dim ? g[(row0 + r) * st + col] : uint16_t(0);
    }
  }
}

// A warp's (16, Dp) accumulator rounded to T into rows [0, 16) of a shared tile (rows of Dp + 8),
// row lane / 4 scaled by scale_lo and row lane / 4 + 8 by scale_hi.
template <typename T, int DT>
__device__ __forceinline__ void stage_rows(uint16_t* tile, const float (&acc)[DT][4], float scale_lo, float scale_hi,
                                           int lane) {
  constexpr int kStride = DT * 8 + 8;
  uint16_t* lo = tile + (lane / 4) * kStride + 2 * (lane % 4);
#pragma unroll
  for (int d = 0; d < DT; ++d) {
    *reinterpret_cast<uint32_t*>(lo + d * 8) = pack2<T>(acc[d][0] * scale_lo, acc[d][1] * scale_lo);
    *reinterpret_cast<uint32_t*>(lo + 8 * kStride + d * 8) = pack2<T>(acc[d][2] * scale_hi, acc[d][3] * scale_hi);
  }
}

// Rows [0, 16) of a warp's shared tile to rows [row0, row0 + 16) of g (those < T, columns < D).
template <int Dp>
__device__ __forceinline__ void store_rows(uint16_t* g, int64_t st, const uint16_t* tile, int row0, int seq, int dim,
                                           bool vec, int lane) {
  constexpr int kStride = Dp + 8, kChunks = Dp / 8;
  if (vec) {
    for (int c = lane; c < 16 * kChunks; c += 32) {
      const int r = c / kChunks, col = c % kChunks * 8;
      if (row0 + r < seq && col < dim)
        *reinterpret_cast<uint4*>(g + (row0 + r) * st + col) = *reinterpret_cast<const uint4*>(tile + r * kStride + col);
    }
  } else {
    for (int e = lane; e < 16 * Dp; e += 32) {
      const int r = e / Dp, col = e % Dp;
      if (row0 + r < seq && col < dim) g[(row0 + r) * st + col] = tile[r * kStride + col];
    }
  }
}

template <int Dp>
constexpr int tile_elems(int rows) {
  return rows * (Dp + 8);
}

// ---- tensor-core kernels ----

// Blocks per SM the backward kernels ask the compiler to fit (ptxas, sm_90). Unbounded, dQ took
// 134 registers at Dp = 64 (3 blocks per SM) and dK/dV 193 (2); capped at 128 and 168 they spill a
// few bytes and fit 4 and 3 (H200, GPT-2 124M: 136 -> 116 and 236 -> 184 us per layer). At
// Dp = 128 dQ fits 3 in its 166 registers, and dK/dV needs its 254 (capping spilled hundreds of
// bytes). At Dp = 64 dK/dV now steps 32 queries at a time and fits 4 (dkdv_query_tile).
template <int Dp>
constexpr int dq_min_blocks() {
  return Dp <= 64 ? 4 : 3;
}
template <int Dp>
constexpr int dkdv_min_blocks() {
  return Dp == 64 ? 4 : (Dp < 64 ? 3 : 1);
}

// Shared memory: Q (64, Dp + 8), then 2 stages of K and V (64, Dp + 8) each.
template <int Dp>
constexpr size_t forward_mma_smem() {
  return size_t(5) * tile_elems<Dp>(kTile) * sizeof(uint16_t);
}

template <typename T, int Dp>
__global__ void __launch_bounds__(kThreads) attention_forward_mma(const AttnArgs a) {
  constexpr int kStride = Dp + 8, kNT = kTile / 8, kDT = Dp / 8, kElems = tile_elems<Dp>(kTile);
  extern __shared__ __align__(16) unsigned char smem[];
  uint16_t* q_s = reinterpret_cast<uint16_t*>(smem);  // warp w reads rows [16w, 16w + 16) only
  uint16_t* kv_s = q_s + kElems;                      // stage s: K at kv_s + 2s kElems, V after it
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.x;
  const int q_tile = gridDim.y - 1 - blockIdx.y, q0 = q_tile * kTile;
  const int n_kv = a.causal ? q_tile + 1 : gridDim.y;  // query and key tiles have one size
  const uint16_t* kg = head_rows<const uint16_t>(a.k, bh, a.heads);
  const uint16_t* vg = head_rows<const uint16_t>(a.v, bh, a.heads);
  auto load_kv = [&](int j) {
    uint16_t* stage = kv_s + (j % 2) * 2 * kElems;
    load_tile<kTile, Dp>(stage, kg, a.k.st, j * kTile, a.seq, a.dim, a.vec);
    load_tile<kTile, Dp>(stage + kElems, vg, a.v.st, j * kTile, a.seq, a.dim, a.vec);
    cp_async_commit();
  };
  load_tile<kTile, Dp>(q_s, head_rows<const uint16_t>(a.q, bh, a.heads), a.q.st, q0, a.seq, a.dim, a.vec);
  load_kv(0);

  uint16_t* q_w = q_s + warp * 16 * kStride;
  const int row_lo = q0 + warp * 16 + lane / 4, row_hi = row_lo + 8;  // rows of d0, d1 and of d2, d3
  float o[kDT][4] = {};
  float m[2] = {-INFINITY, -INFINITY};  // running row max of the log2-scaled scores
  float l[2] = {0.f, 0.f};              // this lane's part of the row sums of exp2(s - m)
  for (int j = 0; j < n_kv; ++j) {
    cp_async_wait_all();
    __syncthreads();  // tile j visible to every warp; all are done with the stage loaded next
    if (j + 1 < n_kv) load_kv(j + 1);
    const uint16_t* k_s = kv_s + (j % 2) * 2 * kElems;
    float s[kNT][4] = {};
    mma_a_bt<T, kNT, Dp>(s, q_w, k_s, kStride, lane);
    const int k0 = j * kTile;
    const bool masked = (a.causal && k0 + kTile - 1 > q0 + warp * 16) || k0 + kTile > a.seq;
#pragma unroll
    for (int n = 0; n < kNT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + acc_col(n, e, lane), row = e < 2 ? row_lo : row_hi;
        const bool keep = !masked || (key < a.seq && !(a.causal && key > row));
        s[n][e] = keep ? s[n][e] * a.scale_log2 : -INFINITY;
      }
    float mx[2] = {m[0], m[1]}, base[2], alpha[2], sum[2] = {0.f, 0.f};
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
      mx[0] = fmaxf(mx[0], fmaxf(s[n][0], s[n][1]));
      mx[1] = fmaxf(mx[1], fmaxf(s[n][2], s[n][3]));
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {  // a row's 8 n-tiles x 2 columns sit on the 4 lanes of a quad
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      base[r] = mx[r] == -INFINITY ? 0.f : mx[r];  // nothing unmasked yet: exp2(-inf - 0) = 0
      alpha[r] = exp2f(m[r] - base[r]);
      m[r] = mx[r];
    }
#pragma unroll
    for (int n = 0; n < kNT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2f(s[n][e] - base[e / 2]);
        sum[e / 2] += s[n][e];
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) l[r] = l[r] * alpha[r] + sum[r];
#pragma unroll
    for (int d = 0; d < kDT; ++d)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[d][e] *= alpha[e / 2];
    mma_p_b<T, kNT, kDT>(o, s, k_s + kElems, kStride, lane);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  __syncwarp();  // the warp's last ldmatrix of its Q rows precedes their reuse for O
  stage_rows<T, kDT>(q_w, o, l[0] > 0.f ? 1.f / l[0] : 0.f, l[1] > 0.f ? 1.f / l[1] : 0.f, lane);
  __syncwarp();
  store_rows<Dp>(head_rows<uint16_t>(a.out, bh, a.heads), a.out.st, q_w, q0 + warp * 16, a.seq, a.dim, a.vec, lane);
  if (lane % 4 == 0) {
    float* lse = static_cast<float*>(a.lse) + int64_t(bh) * a.seq;
    if (row_lo < a.seq) lse[row_lo] = (m[0] + log2f(l[0])) * kLn2;
    if (row_hi < a.seq) lse[row_hi] = (m[1] + log2f(l[1])) * kLn2;
  }
}

// Shared memory: Q and dO (64, Dp + 8), then 2 stages of K and V.
template <int Dp>
constexpr size_t dq_mma_smem() {
  return size_t(6) * tile_elems<Dp>(kTile) * sizeof(uint16_t);
}

// dQ_i = scale sum_j dS_ij K_j with dS = P (dP - delta), P = exp(scale S - lse), dP = dO V^T.
template <typename T, int Dp>
__global__ void __launch_bounds__(kThreads, dq_min_blocks<Dp>()) attention_dq_mma(const AttnArgs a) {
  constexpr int kStride = Dp + 8, kNT = kTile / 8, kDT = Dp / 8, kElems = tile_elems<Dp>(kTile);
  extern __shared__ __align__(16) unsigned char smem[];
  uint16_t* q_s = reinterpret_cast<uint16_t*>(smem);  // warp w reads rows [16w, 16w + 16) of Q, dO
  uint16_t* do_s = q_s + kElems;
  uint16_t* kv_s = do_s + kElems;  // stage s: K at kv_s + 2s kElems, V after it
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.x;
  const int q_tile = gridDim.y - 1 - blockIdx.y, q0 = q_tile * kTile;
  const int n_kv = a.causal ? q_tile + 1 : gridDim.y;
  const uint16_t* kg = head_rows<const uint16_t>(a.k, bh, a.heads);
  const uint16_t* vg = head_rows<const uint16_t>(a.v, bh, a.heads);
  auto load_kv = [&](int j) {
    uint16_t* stage = kv_s + (j % 2) * 2 * kElems;
    load_tile<kTile, Dp>(stage, kg, a.k.st, j * kTile, a.seq, a.dim, a.vec);
    load_tile<kTile, Dp>(stage + kElems, vg, a.v.st, j * kTile, a.seq, a.dim, a.vec);
    cp_async_commit();
  };
  load_tile<kTile, Dp>(q_s, head_rows<const uint16_t>(a.q, bh, a.heads), a.q.st, q0, a.seq, a.dim, a.vec);
  load_tile<kTile, Dp>(do_s, head_rows<const uint16_t>(a.grad_out, bh, a.heads), a.grad_out.st, q0, a.seq, a.dim,
                       a.vec);
  load_kv(0);

  uint16_t* q_w = q_s + warp * 16 * kStride;
  const uint16_t* do_w = do_s + warp * 16 * kStride;
  const int row_lo = q0 + warp * 16 + lane / 4, row_hi = row_lo + 8;
  const float* lse = static_cast<const float*>(a.lse) + int64_t(bh) * a.seq;
  const float* delta = static_cast<const float*>(a.delta) + int64_t(bh) * a.seq;
  const float lse2[2] = {row_lo < a.seq ? lse[row_lo] * kLog2e : 0.f, row_hi < a.seq ? lse[row_hi] * kLog2e : 0.f};
  const float dlt[2] = {row_lo < a.seq ? delta[row_lo] : 0.f, row_hi < a.seq ? delta[row_hi] : 0.f};
  float dq[kDT][4] = {};
  for (int j = 0; j < n_kv; ++j) {
    cp_async_wait_all();
    __syncthreads();
    if (j + 1 < n_kv) load_kv(j + 1);
    const uint16_t* k_s = kv_s + (j % 2) * 2 * kElems;
    float s[kNT][4] = {}, dp[kNT][4] = {};
    mma_a_bt<T, kNT, Dp>(s, q_w, k_s, kStride, lane);
    mma_a_bt<T, kNT, Dp>(dp, do_w, k_s + kElems, kStride, lane);
    const int k0 = j * kTile;
    const bool masked = (a.causal && k0 + kTile - 1 > q0 + warp * 16) || k0 + kTile > a.seq;
#pragma unroll
    for (int n = 0; n < kNT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + acc_col(n, e, lane), row = e < 2 ? row_lo : row_hi;
        const bool keep = !masked || (key < a.seq && !(a.causal && key > row));
        const float p = keep ? exp2f(s[n][e] * a.scale_log2 - lse2[e / 2]) : 0.f;
        s[n][e] = p * (dp[n][e] - dlt[e / 2]);  // dS
      }
    mma_p_b<T, kNT, kDT>(dq, s, k_s, kStride, lane);
  }
  const float scale = float(a.scale);
  __syncwarp();
  stage_rows<T, kDT>(q_w, dq, scale, scale, lane);
  __syncwarp();
  store_rows<Dp>(head_rows<uint16_t>(a.grad_q, bh, a.heads), a.grad_q.st, q_w, q0 + warp * 16, a.seq, a.dim, a.vec,
                 lane);
}

// Queries per step of the dK/dV blocks: 32 at D = 128 keeps dK, dV (64 floats each per lane)
// and the (16, queries) score fragments in registers; 32 at D = 64 too, where it fits 4 blocks
// per SM at 128 registers (56 bytes spilled) against 3 at 168 with 64 queries: H200, causal
// B=16 H=12 T=1024, forward + backward 108.7 -> 113.2 TFLOP/s (B=8: 104.4 -> 105.5).
template <int Dp>
constexpr int dkdv_query_tile() {
  return Dp >= 64 ? 32 : 64;
}

// Bytes of one query stage of the dK/dV blocks: Q and dO (queries, Dp + 8), lse and delta (f32).
template <int Dp>
constexpr int dkdv_stage_bytes() {
  constexpr int kBr = dkdv_query_tile<Dp>();
  return 2 * tile_elems<Dp>(kBr) * int(sizeof(uint16_t)) + 2 * kBr * int(sizeof(float));
}

// Shared memory: K and V (64, Dp + 8), then 2 query stages.
template <int Dp>
constexpr size_t dkdv_mma_smem() {
  return size_t(2) * tile_elems<Dp>(kTile) * sizeof(uint16_t) + size_t(2) * dkdv_stage_bytes<Dp>();
}

// dV_j = sum_i P_ij dO_i, dK_j = scale sum_i dS_ij Q_i, computed transposed (warps own key rows):
// S^T = K Q^T, dP^T = V dO^T, then P^T and dS^T are the A fragments of the two products.
template <typename T, int Dp>
__global__ void __launch_bounds__(kThreads, dkdv_min_blocks<Dp>()) attention_dkdv_mma(const AttnArgs a) {
  constexpr int kStride = Dp + 8, kBr = dkdv_query_tile<Dp>(), kNQ = kBr / 8, kDT = Dp / 8;
  constexpr int kKeyElems = tile_elems<Dp>(kTile), kQueryElems = tile_elems<Dp>(kBr);
  constexpr int kStageBytes = dkdv_stage_bytes<Dp>();
  extern __shared__ __align__(16) unsigned char smem[];
  uint16_t* k_s = reinterpret_cast<uint16_t*>(smem);  // warp w reads rows [16w, 16w + 16) of K, V
  uint16_t* v_s = k_s + kKeyElems;
  unsigned char* stages = smem + 2 * kKeyElems * sizeof(uint16_t);  // Q, dO, lse (log2 units), delta
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.x;
  const int k0 = blockIdx.y * kTile;  // key tile 0 meets the most queries: scheduled first
  const int first = a.causal ? k0 / kBr : 0, n_q = (a.seq + kBr - 1) / kBr;
  const uint16_t* qg = head_rows<const uint16_t>(a.q, bh, a.heads);
  const uint16_t* dog = head_rows<const uint16_t>(a.grad_out, bh, a.heads);
  const float* lse = static_cast<const float*>(a.lse) + int64_t(bh) * a.seq;
  const float* delta = static_cast<const float*>(a.delta) + int64_t(bh) * a.seq;
  auto stage_of = [&](int it) { return stages + ((it - first) % 2) * kStageBytes; };
  auto load_queries = [&](int it) {
    unsigned char* stage = stage_of(it);
    uint16_t* q_st = reinterpret_cast<uint16_t*>(stage);
    float* lse_st = reinterpret_cast<float*>(stage + 2 * kQueryElems * sizeof(uint16_t));
    const int i0 = it * kBr;
    load_tile<kBr, Dp>(q_st, qg, a.q.st, i0, a.seq, a.dim, a.vec);
    load_tile<kBr, Dp>(q_st + kQueryElems, dog, a.grad_out.st, i0, a.seq, a.dim, a.vec);
    for (int i = threadIdx.x; i < kBr; i += kThreads) {
      const bool in = i0 + i < a.seq;
      lse_st[i] = in ? lse[i0 + i] * kLog2e : 0.f;
      lse_st[kBr + i] = in ? delta[i0 + i] : 0.f;
    }
    cp_async_commit();
  };
  load_tile<kTile, Dp>(k_s, head_rows<const uint16_t>(a.k, bh, a.heads), a.k.st, k0, a.seq, a.dim, a.vec);
  load_tile<kTile, Dp>(v_s, head_rows<const uint16_t>(a.v, bh, a.heads), a.v.st, k0, a.seq, a.dim, a.vec);
  load_queries(first);

  uint16_t* k_w = k_s + warp * 16 * kStride;
  uint16_t* v_w = v_s + warp * 16 * kStride;
  const int key_lo = k0 + warp * 16 + lane / 4, key_hi = key_lo + 8;
  float dk[kDT][4] = {}, dv[kDT][4] = {};
  for (int it = first; it < n_q; ++it) {
    cp_async_wait_all();
    __syncthreads();
    if (it + 1 < n_q) load_queries(it + 1);
    const unsigned char* stage = stage_of(it);
    const uint16_t* q_st = reinterpret_cast<const uint16_t*>(stage);
    const uint16_t* do_st = q_st + kQueryElems;
    const float* lse_st = reinterpret_cast<const float*>(stage + 2 * kQueryElems * sizeof(uint16_t));
    const float* delta_st = lse_st + kBr;
    float st[kNQ][4] = {}, dpt[kNQ][4] = {};
    mma_a_bt<T, kNQ, Dp>(st, k_w, q_st, kStride, lane);    // S^T (16 keys, kBr queries)
    mma_a_bt<T, kNQ, Dp>(dpt, v_w, do_st, kStride, lane);  // dP^T
    const int i0 = it * kBr;
    const bool masked = (a.causal && i0 < k0 + warp * 16 + 15) || i0 + kBr > a.seq;
#pragma unroll
    for (int n = 0; n < kNQ; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = acc_col(n, e, lane), query = i0 + col, key = e < 2 ? key_lo : key_hi;
        const bool keep = !masked || (query < a.seq && !(a.causal && key > query));
        const float p = keep ? exp2f(st[n][e] * a.scale_log2 - lse_st[col]) : 0.f;
        st[n][e] = p;
        dpt[n][e] = p * (dpt[n][e] - delta_st[col]);  // dS^T
      }
    mma_p_b<T, kNQ, kDT>(dv, st, do_st, kStride, lane);
    mma_p_b<T, kNQ, kDT>(dk, dpt, q_st, kStride, lane);
  }
  const float scale = float(a.scale);
  __syncwarp();  // the warp's last reads of its K, V rows precede their reuse
  stage_rows<T, kDT>(k_w, dk, scale, scale, lane);
  stage_rows<T, kDT>(v_w, dv, 1.f, 1.f, lane);
  __syncwarp();
  const int row0 = k0 + warp * 16;
  store_rows<Dp>(head_rows<uint16_t>(a.grad_k, bh, a.heads), a.grad_k.st, k_w, row0, a.seq, a.dim, a.vec, lane);
  store_rows<Dp>(head_rows<uint16_t>(a.grad_v, bh, a.heads), a.grad_v.st, v_w, row0, a.seq, a.dim, a.vec, lane);
}

static_assert(kTile == 16 * kWarps, "each warp owns 16 rows of a 64-row tile");
static_assert(forward_mma_smem<128>() <= 227 * 1024 && dq_mma_smem<128>() <= 227 * 1024 &&
                  dkdv_mma_smem<128>() <= 227 * 1024,
              "shared memory past sm_90's 227 KB per block");

// delta[bh, t] = dO[bh, t] . out[bh, t] in the accumulation type, one warp per row.
template <typename T>
__global__ void __launch_bounds__(kThreads) attention_delta_kernel(const AttnArgs a) {
  using A = compute_t<T>;
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= int64_t(a.batch_heads) * a.seq) return;
  const int lane = threadIdx.x % 32, bh = int(row / a.seq), t = int(row % a.seq);
  const T* o = head_rows<const T>(a.out, bh, a.heads) + t * a.out.st;
  const T* g = head_rows<const T>(a.grad_out, bh, a.heads) + t * a.grad_out.st;
  A s = 0;
  for (int d = lane; d < a.dim; d += 32) s += A(to_compute(o[d])) * A(to_compute(g[d]));
  s = warp_sum(s);
  if (lane == 0) static_cast<A*>(a.delta)[row] = s;
}

// The same for 16-bit rows of 16-byte vectors (a.vec): kLanes lanes per row, 32 / kLanes rows per
// warp, so each lane loads whole vectors (one warp per row of D = 64 had each lane load 4 bytes:
// 25 us for 25 MB on the H200). The group's partial sums meet by shuffles within the group.
template <typename T, int kLanes>
__global__ void __launch_bounds__(kThreads) attention_delta_vec_kernel(const AttnArgs a) {
  constexpr int V = 8, kRowsPerWarp = 32 / kLanes;
  const int64_t rows = int64_t(a.batch_heads) * a.seq;
  const int64_t row = (int64_t(blockIdx.x) * kWarps + threadIdx.x / 32) * kRowsPerWarp + threadIdx.x % 32 / kLanes;
  const int lane = threadIdx.x % kLanes;
  float s = 0.f;
  if (row < rows) {
    const int bh = int(row / a.seq), t = int(row % a.seq);
    const T* o = head_rows<const T>(a.out, bh, a.heads) + t * a.out.st;
    const T* g = head_rows<const T>(a.grad_out, bh, a.heads) + t * a.grad_out.st;
    for (int d = lane * V; d < a.dim; d += kLanes * V) {
      const Vec<T, V> ov = *reinterpret_cast<const Vec<T, V>*>(o + d);
      const Vec<T, V> gv = *reinterpret_cast<const Vec<T, V>*>(g + d);
#pragma unroll
      for (int j = 0; j < V; ++j) s += float(to_compute(ov.v[j])) * float(to_compute(gv.v[j]));
    }
  }
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
  if (lane == 0 && row < rows) static_cast<float*>(a.delta)[row] = s;
}

// Queues delta = rowsum(dO * O) over the B * H * T rows (f16/bf16 with a.vec: the vector kernel).
template <typename T>
void launch_delta(const AttnArgs& a, cudaStream_t stream) {
  const int64_t rows = int64_t(a.batch_heads) * a.seq;
  auto blocks = [&](int64_t rows_per_block) {
    const int64_t n = (rows + rows_per_block - 1) / rows_per_block;
    ZT_CHECK(n <= INT_MAX, "attention_backward: B * H * T = ", rows, " rows exceed the CUDA grid");
    return dim3(unsigned(n));
  };
  if constexpr (sizeof(T) == 2) {
    if (a.vec) {
      auto launch_lanes = [&](auto kernel, int lanes) {
        kernel<<<blocks(int64_t(kWarps) * (32 / lanes)), kThreads, 0, stream>>>(a);
      };
      const int vectors = (a.dim + 7) / 8;  // at most 16 (D <= 128)
      if (vectors <= 4) {
        launch_lanes(attention_delta_vec_kernel<T, 4>, 4);
      } else if (vectors <= 8) {
        launch_lanes(attention_delta_vec_kernel<T, 8>, 8);
      } else {
        launch_lanes(attention_delta_vec_kernel<T, 16>, 16);
      }
      ZT_CUDA_LAUNCH_CHECK("attention_delta_vec_kernel");
      return;
    }
  }
  attention_delta_kernel<T><<<blocks(kWarps), kThreads, 0, stream>>>(a);
  ZT_CUDA_LAUNCH_CHECK("attention_delta_kernel");
}

// ---- launchers ----

HeadsView heads_view(const Tensor& t) { return {t.raw_data(), t.stride(0), t.stride(1), t.stride(2)}; }

// Rows of 16 bytes for the tensor-core loads and stores: aligned data, strides of 8 elements.
bool rows_16_bytes(const Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0 &&
         t.stride(2) % 8 == 0;
}

AttnArgs make_args(const AttentionDims& d, double scale, bool causal, std::initializer_list<const Tensor*> heads) {
  ZT_CHECK(d.batch * d.heads <= INT_MAX && d.seq <= INT_MAX, "attention: B * H = ", d.batch * d.heads,
           " and T = ", d.seq, " must each fit the CUDA grid (at most ", INT_MAX, ")");
  AttnArgs a{};
  a.batch_heads = int(d.batch * d.heads);
  a.heads = int(d.heads);
  a.seq = int(d.seq);
  a.dim = int(d.head_dim);
  a.scale = scale;
  a.scale_log2 = float(scale * double(kLog2e));
  a.causal = causal;
  a.vec = d.head_dim % 8 == 0;
  for (const Tensor* t : heads) a.vec = a.vec && rows_16_bytes(*t);
  return a;
}

// (B * H, tiles of `rows` rows over T).
dim3 tile_grid(const AttnArgs& a, int rows) {
  const int64_t tiles = (int64_t(a.seq) + rows - 1) / rows;
  ZT_CHECK(tiles <= 65535, "attention: T = ", a.seq, " needs ", tiles, " tiles of ", rows,
           " rows, more than the 65535 a CUDA grid dimension allows");
  return dim3(unsigned(a.batch_heads), unsigned(tiles));
}

// Launches kernel(a) with `smem` bytes of dynamic shared memory (opting in past the default 48 KB;
// sm_90 allows 227 KB per block) and checks the launch.
template <typename Kernel>
void launch(const char* name, Kernel kernel, dim3 grid, size_t smem, cudaStream_t stream, const AttnArgs& a) {
  if (smem > 48 * 1024)
    ZT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<grid, kThreads, smem, stream>>>(a);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw_cuda_error(__FILE__, __LINE__, name, status);
}

// Calls f.template operator()<Dp>() with the padded head dim of the tensor-core kernels.
template <typename F>
void with_padded_dim(int dim, F&& f) {
  if (dim <= 32) {
    f.template operator()<32>();
  } else if (dim <= 64) {
    f.template operator()<64>();
  } else {
    f.template operator()<128>();
  }
}

}  // namespace

void CudaBackend::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                                    const Tensor& v, double scale, bool causal) {
  const AttentionDims d = check_attention_forward(out, lse, q, k, v, scale);
  const int device = common_device("attention_forward", {&out, &lse, &q, &k, &v});
  DeviceGuard guard(device);
  if (d.batch * d.heads * d.seq == 0) return;
  if (cudnn_attention_forward(out, lse, q, k, v, scale, causal)) return;  // Note [cuDNN attention]
  AttnArgs a = make_args(d, scale, causal, {&q, &k, &v, &out});
  a.q = heads_view(q);
  a.k = heads_view(k);
  a.v = heads_view(v);
  a.out = heads_view(out);
  a.lse = lse.raw_data();
  const cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(q.dtype(), "attention_forward", ([&]<typename T>() {
    if constexpr (sizeof(T) == 2) {
      with_padded_dim(a.dim, [&]<int Dp>() {
        launch("attention_forward_mma", attention_forward_mma<T, Dp>, tile_grid(a, kTile), forward_mma_smem<Dp>(),
               stream, a);
      });
    } else {
      launch("attention_forward_simt", attention_forward_simt<T>, tile_grid(a, kSimtRows),
             simt_smem<compute_t<T>>(a.dim, 1, 0), stream, a);
    }
  }));
}

void CudaBackend::attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                                     const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& out, const Tensor& lse, double scale, bool causal) {
  const AttentionDims d = check_attention_backward(grad_q, grad_k, grad_v, grad_out, q, k, v, out, lse, scale);
  const int device =
      common_device("attention_backward", {&grad_q, &grad_k, &grad_v, &grad_out, &q, &k, &v, &out, &lse});
  DeviceGuard guard(device);
  if (d.batch * d.heads * d.seq == 0) return;
  if (cudnn_attention_backward(grad_q, grad_k, grad_v, grad_out, q, k, v, out, lse, scale, causal)) return;
  AttnArgs a = make_args(d, scale, causal, {&q, &k, &v, &out, &grad_out, &grad_q, &grad_k, &grad_v});
  a.q = heads_view(q);
  a.k = heads_view(k);
  a.v = heads_view(v);
  a.out = heads_view(out);
  a.grad_out = heads_view(grad_out);
  a.grad_q = heads_view(grad_q);
  a.grad_k = heads_view(grad_k);
  a.grad_v = heads_view(grad_v);
  a.lse = lse.raw_data();
  const Tensor delta = Tensor::empty({d.batch * d.heads * d.seq}, TensorOptions(lse.dtype(), lse.device()));
  a.delta = delta.raw_data();
  const cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(q.dtype(), "attention_backward", ([&]<typename T>() {
    launch_delta<T>(a, stream);
    if constexpr (sizeof(T) == 2) {
      with_padded_dim(a.dim, [&]<int Dp>() {
        launch("attention_dq_mma", attention_dq_mma<T, Dp>, tile_grid(a, kTile), dq_mma_smem<Dp>(), stream, a);
        launch("attention_dkdv_mma", attention_dkdv_mma<T, Dp>, tile_grid(a, kTile), dkdv_mma_smem<Dp>(), stream, a);
      });
    } else {
      launch("attention_dq_simt", attention_dq_simt<T>, tile_grid(a, kSimtRows), simt_smem<compute_t<T>>(a.dim, 2, 0), stream,
             a);
      launch("attention_dkdv_simt", attention_dkdv_simt<T>, tile_grid(a, kSimtRows),
             simt_smem<compute_t<T>>(a.dim, 2, 2 * kSimtCols), stream, a);
    }
  }));
}

}  // namespace zt::cuda
