// The CUDA-core attention kernels for f32 and f64 (Note [Attention kernels] in
// cuda/kernels_attention.cu): the tensor-core scheme's three passes with 16 rows per block
// (4 per warp) and 32-key (or 32-query) tiles, one score per lane, accumulating in their own type.
#pragma once
#include "core/attention_checks.h"
#include "cuda/attention_args.cuh"
#include "cuda/kernel_utils.cuh"
#include "cuda/row_softmax.cuh"

namespace zt::cuda::attention {

// ---- CUDA-core kernels (f32, f64) ----

constexpr int kRowsPerWarp = 4;
constexpr int kSimtRows = kWarps * kRowsPerWarp;  // query rows (dK/dV: key rows) per block
constexpr int kSimtCols = 32;                     // keys (dK/dV: queries) per tile, one per lane
constexpr int kLaneCols = int(kMaxAttentionHeadDim) / 32;  // head-dim columns per lane

// Row stride of the shared tiles read one row per lane: odd, so 32 rows hit 32 banks (f32).
__device__ __forceinline__ int lane_row_stride(int dim) { return dim | 1; }

// Rows [row0, row0 + rows) of one head's (T, D) slice g into a shared (rows, stride) tile of A;
// zeros past T. The whole block calls it.
template <typename A, typename T>
__device__ __forceinline__ void load_rows(A* tile, int stride, const T* g, int64_t st, int row0, int rows, int seq,
                                          int dim) {
  for (int e = threadIdx.x; e < rows * dim; e += kThreads) {
    const int r = e / dim, d = e % dim;
    tile[r * stride + d] = row0 + r < seq ? A(to_compute(g[(row0 + r) * st + d])) : A(0);
  }
}

template <typename A>
__device__ __forceinline__ A dot(const A* x, const A* y, int n) {
  A s = 0;
  for (int d = 0; d < n; ++d) s += x[d] * y[d];
  return s;
}

// acc[c] += w_j * tile[j][lane + 32 c] over the 32 rows j of a shared tile, w_j from lane j.
template <typename A>
__device__ __forceinline__ void add_weighted_rows(A (&acc)[kLaneCols], A w, const A* tile, int stride, int dim,
                                                  int lane) {
  for (int j = 0; j < kSimtCols; ++j) {
    const A wj = __shfl_sync(0xffffffffu, w, j);
#pragma unroll
    for (int c = 0; c < kLaneCols; ++c)
      if (lane + 32 * c < dim) acc[c] += wj * tile[j * stride + lane + 32 * c];
  }
}

template <typename T, typename A>
__device__ __forceinline__ void store_lane_cols(T* g, const A (&acc)[kLaneCols], A scale, int dim, int lane) {
#pragma unroll
  for (int c = 0; c < kLaneCols; ++c)
    if (lane + 32 * c < dim) g[lane + 32 * c] = to_element<T>(A(acc[c] * scale));
}

// Shared memory of the CUDA-core kernels: `rows` (16, D) tiles, 2 (32, stride) tiles, `extra`
// values; at most 97 KB (f64, D = 128, dK/dV).
template <typename A>
size_t simt_smem(int dim, int rows, int extra) {
  return (size_t(rows) * kSimtRows * dim + size_t(2) * kSimtCols * (dim | 1) + size_t(extra)) * sizeof(A);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) attention_forward_simt(const AttnArgs a) {
  using A = compute_t<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  const int dim = a.dim, seq = a.seq, stride = lane_row_stride(dim);
  A* q_s = reinterpret_cast<A*>(smem);  // (16, dim)
  A* k_s = q_s + kSimtRows * dim;       // (32, stride)
  A* v_s = k_s + kSimtCols * stride;    // (32, stride)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.x;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * kSimtRows;
  const int n_tiles = (seq + kSimtCols - 1) / kSimtCols;
  const int n_kv = a.causal ? min(n_tiles, (q0 + kSimtRows - 1) / kSimtCols + 1) : n_tiles;
  const A scale = A(a.scale);
  load_rows(q_s, dim, head_rows<const T>(a.q, bh, a.heads), a.q.st, q0, kSimtRows, seq, dim);
  A m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][kLaneCols];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0;
#pragma unroll
    for (int c = 0; c < kLaneCols; ++c) o[r][c] = 0;
  }
  for (int j = 0; j < n_kv; ++j) {
    __syncthreads();  // Q loaded; every warp is done with the previous K, V tile
    load_rows(k_s, stride, head_rows<const T>(a.k, bh, a.heads), a.k.st, j * kSimtCols, kSimtCols, seq, dim);
    load_rows(v_s, stride, head_rows<const T>(a.v, bh, a.heads), a.v.st, j * kSimtCols, kSimtCols, seq, dim);
    __syncthreads();
    const int key = j * kSimtCols + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = q0 + warp * kRowsPerWarp + r;
      if (row >= seq) continue;  // warp-uniform
      const bool keep = key < seq && !(a.causal && key > row);
      const A s = keep ? scale * dot(q_s + (row - q0) * dim, k_s + lane * stride, dim) : A(-INFINITY);
      const A mx = max(m[r], warp_max(s));
      const A base = mx == A(-INFINITY) ? A(0) : mx;
      const A alpha = f_exp(A(m[r] - base)), p = keep ? f_exp(A(s - base)) : A(0);
      l[r] = l[r] * alpha + warp_sum(p);
      m[r] = mx;
#pragma unroll
      for (int c = 0; c < kLaneCols; ++c) o[r][c] *= alpha;
      add_weighted_rows(o[r], p, v_s, stride, dim, lane);
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int row = q0 + warp * kRowsPerWarp + r;
    if (row >= seq) continue;
    store_lane_cols(head_rows<T>(a.out, bh, a.heads) + row * a.out.st, o[r], A(1) / l[r], dim, lane);
    if (lane == 0) static_cast<A*>(a.lse)[int64_t(bh) * seq + row] = m[r] + f_log(l[r]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) attention_dq_simt(const AttnArgs a) {
  using A = compute_t<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  const int dim = a.dim, seq = a.seq, stride = lane_row_stride(dim);
  A* q_s = reinterpret_cast<A*>(smem);  // (16, dim)
  A* do_s = q_s + kSimtRows * dim;      // (16, dim)
  A* k_s = do_s + kSimtRows * dim;      // (32, stride)
  A* v_s = k_s + kSimtCols * stride;    // (32, stride)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.x;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * kSimtRows;
  const int n_tiles = (seq + kSimtCols - 1) / kSimtCols;
  const int n_kv = a.causal ? min(n_tiles, (q0 + kSimtRows - 1) / kSimtCols + 1) : n_tiles;
  const A scale = A(a.scale);
  load_rows(q_s, dim, head_rows<const T>(a.q, bh, a.heads), a.q.st, q0, kSimtRows, seq, dim);
  load_rows(do_s, dim, head_rows<const T>(a.grad_out, bh, a.heads), a.grad_out.st, q0, kSimtRows, seq, dim);
  const A* lse = static_cast<const A*>(a.lse) + int64_t(bh) * seq;
  const A* delta = static_cast<const A*>(a.delta) + int64_t(bh) * seq;
  A dq[kRowsPerWarp][kLaneCols] = {};
  for (int j = 0; j < n_kv; ++j) {
    __syncthreads();
    load_rows(k_s, stride, head_rows<const T>(a.k, bh, a.heads), a.k.st, j * kSimtCols, kSimtCols, seq, dim);
    load_rows(v_s, stride, head_rows<const T>(a.v, bh, a.heads), a.v.st, j * kSimtCols, kSimtCols, seq, dim);
    __syncthreads();
    const int key = j * kSimtCols + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = q0 + warp * kRowsPerWarp + r;
      if (row >= seq) continue;  // warp-uniform
      A ds = 0;
      if (key < seq && !(a.causal && key > row)) {
        const A p = f_exp(A(scale * dot(q_s + (row - q0) * dim, k_s + lane * stride, dim) - lse[row]));
        ds = p * (dot(do_s + (row - q0) * dim, v_s + lane * stride, dim) - delta[row]);
      }
      add_weighted_rows(dq[r], ds, k_s, stride, dim, lane);
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int row = q0 + warp * kRowsPerWarp + r;
    if (row < seq) store_lane_cols(head_rows<T>(a.grad_q, bh, a.heads) + row * a.grad_q.st, dq[r], scale, dim, lane);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) attention_dkdv_simt(const AttnArgs a) {
  using A = compute_t<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  const int dim = a.dim, seq = a.seq, stride = lane_row_stride(dim);
  A* k_s = reinterpret_cast<A*>(smem);  // (16, dim)
  A* v_s = k_s + kSimtRows * dim;       // (16, dim)
  A* q_s = v_s + kSimtRows * dim;       // (32, stride)
  A* do_s = q_s + kSimtCols * stride;   // (32, stride)
  A* lse_s = do_s + kSimtCols * stride;  // (32)
  A* delta_s = lse_s + kSimtCols;        // (32)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.x;
  const int k0 = blockIdx.y * kSimtRows;  // key rows; tile 0 meets the most queries: first
  const int first = a.causal ? k0 / kSimtCols : 0, n_q = (seq + kSimtCols - 1) / kSimtCols;
  const A scale = A(a.scale);
  const A* lse = static_cast<const A*>(a.lse) + int64_t(bh) * seq;
  const A* delta = static_cast<const A*>(a.delta) + int64_t(bh) * seq;
  load_rows(k_s, dim, head_rows<const T>(a.k, bh, a.heads), a.k.st, k0, kSimtRows, seq, dim);
  load_rows(v_s, dim, head_rows<const T>(a.v, bh, a.heads), a.v.st, k0, kSimtRows, seq, dim);
  A dk[kRowsPerWarp][kLaneCols] = {}, dv[kRowsPerWarp][kLaneCols] = {};
  for (int it = first; it < n_q; ++it) {
    const int i0 = it * kSimtCols;
    __syncthreads();
    load_rows(q_s, stride, head_rows<const T>(a.q, bh, a.heads), a.q.st, i0, kSimtCols, seq, dim);
    load_rows(do_s, stride, head_rows<const T>(a.grad_out, bh, a.heads), a.grad_out.st, i0, kSimtCols, seq, dim);
    if (threadIdx.x < kSimtCols) {
      const bool in = i0 + int(threadIdx.x) < seq;
      lse_s[threadIdx.x] = in ? lse[i0 + threadIdx.x] : A(0);
      delta_s[threadIdx.x] = in ? delta[i0 + threadIdx.x] : A(0);
    }
    __syncthreads();
    const int query = i0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int key = k0 + warp * kRowsPerWarp + r;
      if (key >= seq) continue;  // warp-uniform
      A p = 0, ds = 0;
      if (query < seq && !(a.causal && key > query)) {
        const int kr = key - k0;
        p = f_exp(A(scale * dot(k_s + kr * dim, q_s + lane * stride, dim) - lse_s[lane]));
        ds = p * (dot(v_s + kr * dim, do_s + lane * stride, dim) - delta_s[lane]);
      }
      add_weighted_rows(dv[r], p, do_s, stride, dim, lane);
      add_weighted_rows(dk[r], ds, q_s, stride, dim, lane);
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int key = k0 + warp * kRowsPerWarp + r;
    if (key >= seq) continue;
    store_lane_cols(head_rows<T>(a.grad_k, bh, a.heads) + key * a.grad_k.st, dk[r], scale, dim, lane);
    store_lane_cols(head_rows<T>(a.grad_v, bh, a.heads) + key * a.grad_v.st, dv[r], A(1), dim, lane);
  }
}

}  // namespace zt::cuda::attention
