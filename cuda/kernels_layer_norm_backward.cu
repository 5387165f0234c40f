// CUDA layer norm backward over the last dim of contiguous (N, C) data, with the CPU kernel's
// meaning (core/cpu/kernels_layer_norm.cpp). Row kernels use 16-byte loads and stores when the
// row length and alignment allow; rows that fit are held in registers, longer ones stream. The
// backward stages grad_y and x through shared memory where they fit (Note [Staged row kernels]
// in row_softmax.cuh): two rows in flight per block while it computes a third; narrow rows take
// a warp each. The forward is kernels_layer_norm.cu.
#include <algorithm>
#include <type_traits>

#include "cuda/column_partials.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/elementwise.cuh"  // Vec: 16-byte loads and stores
#include "cuda/kernel_utils.cuh"
#include "cuda/layer_norm_rows.cuh"
#include "cuda/row_softmax.cuh"     // vectorizable

namespace zt::cuda {
namespace {

using namespace layer_norm_rows;

// One block per row: grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = grad_y * w.
// With kWb, the same read of grad_y and x also sums this block's rows of grad_w[c] = sum
// grad_y * xhat and grad_b[c] = sum grad_y into partial_w/partial_b (gridDim.x, C), which
// column_partials_finish_kernel then adds in block order. The running sums live in dynamic shared
// memory, slot (k * V + j) * blockDim.x + threadIdx.x for element j of the thread's k-th vector:
// each thread owns the same columns in every row (no atomics) and a warp's slots are
// consecutive (no bank conflicts).
template <int V, bool kWb, typename T, typename S>
__global__ void layer_norm_backward_x_kernel(T* gx, compute_t<T>* partial_w, compute_t<T>* partial_b,
                                             const T* gy, const T* x, const S* mean, const S* rstd,
                                             const T* w, const T* ga, int64_t rows, int64_t cols) {
  using A = compute_t<T>;
  __shared__ A shared[32];
  extern __shared__ __align__(16) unsigned char wb_smem[];
  const int64_t first = int64_t(threadIdx.x) * V, step = int64_t(blockDim.x) * V;
  A* acc_w = reinterpret_cast<A*>(wb_smem);
  A* acc_b = acc_w + (cols + step - 1) / step * step;
  if constexpr (kWb) {
    for (int64_t c = first, slot = threadIdx.x; c < cols; c += step, slot += step) {
#pragma unroll
      for (int j = 0; j < V; ++j) acc_w[slot + j * blockDim.x] = acc_b[slot + j * blockDim.x] = A(0);
    }
  }
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = gy + r * cols;
    const T* xr = x + r * cols;
    T* dr = gx + r * cols;
    const A mu = A(mean[r]), inv = A(rstd[r]);
    A gv[V], xv[V], wv[V];
    A sum_g = 0, sum_gx = 0;
    for (int64_t c = first; c < cols; c += step) {
      load_row(gv, gr, c);
      load_row(xv, xr, c);
      if (w) load_row(wv, w, c);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xhat = (xv[j] - mu) * inv;
        const A g = w ? gv[j] * wv[j] : gv[j];
        sum_g += g;
        sum_gx += g * xhat;
      }
    }
    const A mean_g = block_reduce<A, false>(sum_g, shared) / A(cols);
    const A mean_gx = block_reduce<A, false>(sum_gx, shared) / A(cols);
    for (int64_t c = first, slot = threadIdx.x; c < cols; c += step, slot += step) {
      load_row(gv, gr, c);
      load_row(xv, xr, c);
      if (w) load_row(wv, w, c);
      A av[V];
      if (ga) load_row(av, ga + r * cols, c);
      Vec<T, V> out;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xhat = (xv[j] - mu) * inv;
        const A g = w ? gv[j] * wv[j] : gv[j];
        const A dx = inv * (g - mean_g - xhat * mean_gx);
        out.v[j] = to_element<T>(A(ga ? dx + av[j] : dx));
        if constexpr (kWb) {
          acc_w[slot + j * blockDim.x] += gv[j] * xhat;
          acc_b[slot + j * blockDim.x] += gv[j];
        }
      }
      *reinterpret_cast<Vec<T, V>*>(dr + c) = out;
    }
  }
  if constexpr (kWb) {
    A* pw = partial_w + int64_t(blockIdx.x) * cols;
    A* pb = partial_b + int64_t(blockIdx.x) * cols;
    for (int64_t c = first, slot = threadIdx.x; c < cols; c += step, slot += step) {
#pragma unroll
      for (int j = 0; j < V; ++j) {
        pw[c + j] = acc_w[slot + j * blockDim.x];
        pb[c + j] = acc_b[slot + j * blockDim.x];
      }
    }
  }
}

// The register-cached backward for rows up to blockDim.x * V * K elements: grad_y and x are
// loaded once into registers (all 2K loads of a thread issued together, kept as raw vectors:
// float copies of 16-bit rows doubled the registers and cut the blocks per SM), and the block
// sums, grad_x and the weight/bias partial sums all come from there. Each thread owns the same
// columns in every row (vector k at (k * blockDim.x + threadIdx.x) * V), so those partial sums
// stay in registers instead of a shared-memory read-modify-write per element. The streaming
// kernel above reads both rows twice (the second time from L2) with one load of each in flight
// per thread between reductions: for bf16 rows of 4096, one vector per thread per pass.
template <int V, int K, bool kWb, typename T, typename S>
__global__ void layer_norm_backward_cached_kernel(T* gx, compute_t<T>* partial_w, compute_t<T>* partial_b,
                                                  const T* gy, const T* x, const S* mean, const S* rstd,
                                                  const T* w, const T* ga, int64_t rows, int64_t cols) {
  using A = compute_t<T>;
  __shared__ A shared[32];
  const int64_t step = int64_t(blockDim.x) * V;
  auto col = [&](int k) { return int64_t(k) * step + int64_t(threadIdx.x) * V; };
  // Each thread owns the same columns in every row, so its weight/bias sums stay in registers
  // (no shared-memory read-modify-write per element).
  A acc_w[kWb ? K : 1][V], acc_b[kWb ? K : 1][V];
  if constexpr (kWb) {
#pragma unroll
    for (int k = 0; k < K; ++k)
#pragma unroll
      for (int j = 0; j < V; ++j) acc_w[k][j] = acc_b[k][j] = A(0);
  }
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = gy + r * cols;
    const T* xr = x + r * cols;
    T* dr = gx + r * cols;
    const A mu = A(mean[r]), inv = A(rstd[r]);
    // Raw vectors in registers (f16/bf16 two to a register), converted where used: float copies
    // of both rows doubled the registers of 16-bit rows and cut the blocks per SM.
    Vec<T, V> graw[K], xraw[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (col(k) < cols) {
        graw[k] = *reinterpret_cast<const Vec<T, V>*>(gr + col(k));
        xraw[k] = *reinterpret_cast<const Vec<T, V>*>(xr + col(k));
      }
    }
    A sum_g = 0, sum_gx = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (col(k) >= cols) continue;
      A wv[V];
      if (w) load_row(wv, w, col(k));
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xhat = (A(to_compute(xraw[k].v[j])) - mu) * inv, gy_j = to_compute(graw[k].v[j]);
        const A g = w ? gy_j * wv[j] : gy_j;
        sum_g += g;
        sum_gx += g * xhat;
      }
    }
    const A mean_g = block_reduce<A, false>(sum_g, shared) / A(cols);
    const A mean_gx = block_reduce<A, false>(sum_gx, shared) / A(cols);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (col(k) >= cols) continue;
      A wv[V], av[V];
      if (w) load_row(wv, w, col(k));
      if (ga) load_row(av, ga + r * cols, col(k));
      Vec<T, V> out;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xhat = (A(to_compute(xraw[k].v[j])) - mu) * inv, gy_j = to_compute(graw[k].v[j]);
        const A g = w ? gy_j * wv[j] : gy_j;
        const A dx = inv * (g - mean_g - xhat * mean_gx);
        out.v[j] = to_element<T>(A(ga ? dx + av[j] : dx));
        if constexpr (kWb) {
          acc_w[k][j] += gy_j * xhat;
          acc_b[k][j] += gy_j;
        }
      }
      *reinterpret_cast<Vec<T, V>*>(dr + col(k)) = out;
    }
  }
  if constexpr (kWb) {
    A* pw = partial_w + int64_t(blockIdx.x) * cols;
    A* pb = partial_b + int64_t(blockIdx.x) * cols;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (col(k) >= cols) continue;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        pw[col(k) + j] = acc_w[k][j];
        pb[col(k) + j] = acc_b[k][j];
      }
    }
  }
}

// Vectors per thread, rows in shared memory per block and the widest block of the staged
// backward.
constexpr int kStagedVecs = 4, kStages = 3, kMaxStagedBlock = 256;

// The staged backward for rows of up to blockDim.x * K 16-byte vectors: the register-cached
// kernel above (same columns per thread, same arithmetic, weight/bias sums in registers) with
// grad_y and x arriving through shared memory: while a block computes row r, its copies of rows
// r + gridDim.x and r + 2 * gridDim.x are in flight (kStages buffers of (2, K, blockDim.x)
// vectors: grad_y, then x). The cached kernel measured 70% of copy bandwidth for bf16 (131072,
// 4096) on the H200: its 16 KB per row were in flight only until they landed, then the block
// reduced and computed with nothing loading. The two row sums share one reduction. At most 256
// threads with 128 registers (no spills; the compiler keeps pass one's values for pass two as
// far as they fit): four 128-thread blocks per SM for a bf16 row of 4096, where unbounded it
// took 163 registers and three. Wider rows take the cached kernel.
template <int K, bool kWb, bool kAdd, typename T, typename S>
__global__ void __launch_bounds__(kMaxStagedBlock, 2)
    layer_norm_backward_staged_kernel(T* gx, compute_t<T>* partial_w, compute_t<T>* partial_b, const T* gy,
                                      const T* x, const S* mean, const S* rstd, const T* w, const T* ga,
                                      int64_t rows, int64_t cols) {
  using A = compute_t<T>;
  constexpr int V = 16 / int(sizeof(T));
  using VT = Vec<T, V>;
  __shared__ A shared[64];
  extern __shared__ __align__(16) unsigned char ln_stages[];
  VT* stages = reinterpret_cast<VT*>(ln_stages);  // (kStages, 2, K, blockDim.x) vectors
  const int nvec = int(cols / V), nt = int(blockDim.x), tid = int(threadIdx.x);
  const int64_t step = gridDim.x;
  auto vec = [&](int k) { return k * nt + tid; };  // the thread's k-th vector of a row
  auto col = [&](int k) { return int64_t(vec(k)) * V; };
  auto slot = [&](int s, int q, int k) { return stages + ((s * 2 + q) * K + k) * nt + tid; };
  // Queues the copies of row r's grad_y and x into buffer s as one group (empty past the last
  // row, so that every iteration commits exactly one group).
  auto issue = [&](int64_t r, int s) {
    if (r < rows) {
      const VT* g = reinterpret_cast<const VT*>(gy + r * cols);
      const VT* xr = reinterpret_cast<const VT*>(x + r * cols);
#pragma unroll
      for (int k = 0; k < K; ++k) {
        if (vec(k) >= nvec) continue;
        cp_async16(slot(s, 0, k), g + vec(k));
        cp_async16(slot(s, 1, k), xr + vec(k));
      }
    }
    cp_async_commit();
  };
  A acc_w[kWb ? K : 1][V], acc_b[kWb ? K : 1][V];
  if constexpr (kWb) {
#pragma unroll
    for (int k = 0; k < K; ++k)
#pragma unroll
      for (int j = 0; j < V; ++j) acc_w[k][j] = acc_b[k][j] = A(0);
  }
  // The weight's vector k, re-read from L1 for every row (held in registers for all rows it
  // spilled 108 bytes at the 128-register bound).
  auto weight = [&](int k) { return weight_vector(w, vec(k)); };
  int64_t r = blockIdx.x;
  for (int s = 0; s < kStages - 1; ++s) issue(r + s * step, s);
  for (int s = 0; r < rows; r += step, s = s + 1 == kStages ? 0 : s + 1) {
    // Buffer s - 1 was last read before the previous row's block reduction (its barriers).
    issue(r + (kStages - 1) * step, s == 0 ? kStages - 1 : s - 1);
    // xhat = x * inv + shift: one fused multiply-add an element.
    const A inv = A(rstd[r]), shift = -A(mean[r]) * inv;
    cp_async_wait<kStages - 1>();  // row r's group has landed
    uint4 graw[K], xraw[K];  // packed: two 16-bit elements a register
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
      graw[k] = *reinterpret_cast<const uint4*>(slot(s, 0, k));
      xraw[k] = *reinterpret_cast<const uint4*>(slot(s, 1, k));
    }
    A sum_g = 0, sum_gx = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
      const uint4 wraw = weight(k);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xhat = packed_element<T>(xraw[k], j) * inv + shift;
        const A g = packed_element<T>(graw[k], j) * packed_element<T>(wraw, j);
        sum_g += g;
        sum_gx += g * xhat;
      }
    }
    block_reduce_sum2(sum_g, sum_gx, shared);
    // grad_x = inv * (g - mean(g) - xhat * mean(g * xhat)) = inv * g + (xhat * c_x + c_0).
    const A c_x = -inv * (sum_gx / A(cols)), c_0 = -inv * (sum_g / A(cols));
    T* dr = gx + r * cols;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
      const uint4 wraw = weight(k);
      uint4 araw{};
      if constexpr (kAdd) araw = reinterpret_cast<const uint4*>(ga + r * cols)[vec(k)];
      VT out;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xhat = packed_element<T>(xraw[k], j) * inv + shift, gy_j = packed_element<T>(graw[k], j);
        A dx = inv * (gy_j * packed_element<T>(wraw, j)) + (xhat * c_x + c_0);
        if constexpr (kAdd) dx += packed_element<T>(araw, j);
        out.v[j] = to_element<T>(dx);
        if constexpr (kWb) {
          acc_w[k][j] += gy_j * xhat;
          acc_b[k][j] += gy_j;
        }
      }
      *reinterpret_cast<VT*>(dr + col(k)) = out;
    }
  }
  cp_async_wait<0>();
  if constexpr (kWb) {
    A* pw = partial_w + int64_t(blockIdx.x) * cols;
    A* pb = partial_b + int64_t(blockIdx.x) * cols;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        pw[col(k) + j] = acc_w[k][j];
        pb[col(k) + j] = acc_b[k][j];
      }
    }
  }
}

// Narrow rows, a warp per row: rows of at most 32 * kWarpRowVecs 16-byte vectors (a bf16 row of
// up to 1024). The staged kernel gives such rows blocks of 32 threads, so its grid grows to
// thousands of blocks whose (grid, C) weight/bias partial sums outweighed the rows themselves
// (H200, bf16 (8192, 768): 44 us, then 23 us to add the partials, for 38 MB of row traffic).
// The row sums are warp shuffles (no barrier per row). Each warp keeps its weight/bias sums in
// its own slice of shared memory, (K, V / 4, 32 lanes) float4s so that a warp's accesses are
// consecutive (no bank conflicts); at the end the block adds its warps' slices in warp order
// (deterministic) after one barrier and writes one partial row. Held in registers instead (48
// of them at K = 3), the sums capped the kernel at 128 registers and 16 warps an SM, and a block
// added its warps' sums one warp at a time, a barrier each: ncu at batch 16 (16384, 768) showed
// 4.3 cycles between issues per scheduler, half of the warps' time waiting at those barriers,
// and 45 us a call in a grid of 1.94 waves. Now (the weight re-read from L1 where used) K = 3
// takes 79 registers: three blocks, 24 warps an SM. The grid is the resident blocks, each warp
// looping over rows.
constexpr int kWarpRowWarps = 8;

// Floats of one warp's weight and bias sums for K vectors a lane of V elements.
template <int K, int V>
constexpr int warp_sum_floats() {
  return 2 * K * 32 * V;
}

template <int K, bool kAdd, typename T, typename S>
__global__ void __launch_bounds__(kWarpRowWarps * 32, K < 4 ? 3 : 2)
    layer_norm_backward_warp_kernel(T* gx, compute_t<T>* partial_w, compute_t<T>* partial_b, const T* gy,
                                    const T* x, const S* mean, const S* rstd, const T* w, const T* ga,
                                    int64_t rows, int64_t cols) {
  using A = compute_t<T>;
  static_assert(std::is_same_v<A, float>, "the shared-memory sums are float4s");
  constexpr int V = 16 / int(sizeof(T)), Q = V / 4;  // Q float4s a vector
  using VT = Vec<T, V>;
  extern __shared__ __align__(16) unsigned char ln_warp_sums[];
  float4* slices = reinterpret_cast<float4*>(ln_warp_sums);  // (warps, 2, K, Q, 32 lanes)
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32, nvec = int(cols / V);
  float4* sum_w = slices + warp * (warp_sum_floats<K, V>() / 4);
  float4* sum_b = sum_w + K * Q * 32;
  auto vec = [&](int k) { return k * 32 + lane; };
  auto slot = [&](int k, int q) { return (k * Q + q) * 32 + lane; };
#pragma unroll
  for (int k = 0; k < K; ++k)
#pragma unroll
    for (int q = 0; q < Q; ++q) sum_w[slot(k, q)] = sum_b[slot(k, q)] = make_float4(0, 0, 0, 0);
  // The rows' vectors are kept packed (two 16-bit elements a register); the weight is re-read
  // from L1 where it is used (held for all rows, it cost 12 registers).
  for (int64_t r = int64_t(blockIdx.x) * kWarpRowWarps + warp; r < rows; r += int64_t(gridDim.x) * kWarpRowWarps) {
    const uint4* gr = reinterpret_cast<const uint4*>(gy + r * cols);
    const uint4* xr = reinterpret_cast<const uint4*>(x + r * cols);
    uint4 graw[K], xraw[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
      graw[k] = gr[vec(k)];
      xraw[k] = xr[vec(k)];
    }
    // xhat = x * inv + shift: one fused multiply-add an element.
    const A inv = A(rstd[r]), shift = -A(mean[r]) * inv;
    // Two accumulators of each row sum halve their dependent chains.
    A sum_g[2] = {0, 0}, sum_gx[2] = {0, 0};
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
      const uint4 wraw = weight_vector(w, vec(k));
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xhat = packed_element<T>(xraw[k], j) * inv + shift;
        const A g = packed_element<T>(graw[k], j) * packed_element<T>(wraw, j);
        sum_g[j % 2] += g;
        sum_gx[j % 2] += g * xhat;
      }
    }
    // grad_x = inv * (g - mean(g) - xhat * mean(g * xhat)) = inv * g + (xhat * c_x + c_0).
    const A c_x = -inv * (warp_sum(sum_gx[0] + sum_gx[1]) / A(cols));
    const A c_0 = -inv * (warp_sum(sum_g[0] + sum_g[1]) / A(cols));
    VT* dr = reinterpret_cast<VT*>(gx + r * cols);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
      const uint4 wraw = weight_vector(w, vec(k));
      uint4 araw{};
      if constexpr (kAdd) araw = reinterpret_cast<const uint4*>(ga + r * cols)[vec(k)];
      VT out;
      A xhat[V], gy_j[V];
#pragma unroll
      for (int j = 0; j < V; ++j) {
        xhat[j] = packed_element<T>(xraw[k], j) * inv + shift;
        gy_j[j] = packed_element<T>(graw[k], j);
        A dx = inv * (gy_j[j] * packed_element<T>(wraw, j)) + (xhat[j] * c_x + c_0);
        if constexpr (kAdd) dx += packed_element<T>(araw, j);
        out.v[j] = to_element<T>(dx);
      }
      dr[vec(k)] = out;
#pragma unroll
      for (int q = 0; q < Q; ++q) {
        float4 sw = sum_w[slot(k, q)], sb = sum_b[slot(k, q)];
        sw.x += gy_j[4 * q] * xhat[4 * q];
        sw.y += gy_j[4 * q + 1] * xhat[4 * q + 1];
        sw.z += gy_j[4 * q + 2] * xhat[4 * q + 2];
        sw.w += gy_j[4 * q + 3] * xhat[4 * q + 3];
        sb.x += gy_j[4 * q];
        sb.y += gy_j[4 * q + 1];
        sb.z += gy_j[4 * q + 2];
        sb.w += gy_j[4 * q + 3];
        sum_w[slot(k, q)] = sw;
        sum_b[slot(k, q)] = sb;
      }
    }
  }
  __syncthreads();
  // The block's partial row: float4 slot i of every warp's slices, added in warp order; slot
  // (k, q, lane) holds columns (k * 32 + lane) * V + 4 q .. + 3.
  constexpr int kSlots = K * Q * 32;
  for (int i = int(threadIdx.x); i < 2 * kSlots; i += kWarpRowWarps * 32) {
    const int which = i / kSlots, s = i % kSlots;  // 0: weight, 1: bias
    const int k = s / (Q * 32), q = (s / 32) % Q, l = s % 32;
    if (k * 32 + l >= nvec) continue;
    float4 total = slices[which * kSlots + s];
    for (int wp = 1; wp < kWarpRowWarps; ++wp) {
      const float4 v = slices[wp * 2 * kSlots + which * kSlots + s];
      total.x += v.x;
      total.y += v.y;
      total.z += v.z;
      total.w += v.w;
    }
    float* out = (which == 0 ? partial_w : partial_b) + int64_t(blockIdx.x) * cols + (k * 32 + l) * V + 4 * q;
    *reinterpret_cast<float4*>(out) = total;
  }
}

constexpr int kColTile = 32, kRowGroups = 8;
// Rows per chunk of the grad_weight/grad_bias sums, and the blocks the grid aims for.
constexpr int64_t kWbRowChunk = 64, kWbTargetBlocks = 1024;

// Column sums over rows: grad_w[c] = sum_n grad_y * xhat, grad_b[c] = sum_n grad_y. Block
// (x, y) owns 32 columns and rows chunk y; its 8 row groups meet in shared memory. With one
// chunk the sums go straight to gw/gb (type T); with several, each chunk writes its partial
// sums (type A, (chunks, C)) and column_partials_finish_kernel adds them.
template <typename T, typename S, typename Out>
__global__ void layer_norm_backward_wb_kernel(Out* gw, Out* gb, const T* gy, const T* x, const S* mean,
                                              const S* rstd, int64_t rows, int64_t cols, int64_t chunk) {
  using A = compute_t<T>;
  __shared__ A part_w[kRowGroups][kColTile];
  __shared__ A part_b[kRowGroups][kColTile];
  const int64_t c = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
  A sw = 0, sb = 0;
  if (c < cols) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowGroups) {
      const A g = to_compute(gy[r * cols + c]);
      sw += g * ((A(to_compute(x[r * cols + c])) - A(mean[r])) * A(rstd[r]));
      sb += g;
    }
  }
  part_w[threadIdx.y][threadIdx.x] = sw;
  part_b[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < kRowGroups; ++k) {
      sw += part_w[k][threadIdx.x];
      sb += part_b[k][threadIdx.x];
    }
    const int64_t at = int64_t(blockIdx.y) * cols + c;
    if (gw) gw[at] = to_element<Out>(sw);
    if (gb) gb[at] = to_element<Out>(sb);
  }
}

// grad_weight/grad_bias (either may be undefined) from grad_y, x and the saved statistics.
template <typename T, typename S>
void launch_weight_bias_grads(const Tensor& grad_weight, const Tensor& grad_bias, const Tensor& grad_y,
                              const Tensor& x, const Tensor& mean, const Tensor& rstd, int64_t rows,
                              int64_t cols, cudaStream_t stream) {
  using A = compute_t<T>;
  T* gw = grad_weight.defined() ? device_data<T>(grad_weight) : nullptr;
  T* gb = grad_bias.defined() ? device_data<T>(grad_bias) : nullptr;
  const int64_t tiles = (cols + kColTile - 1) / kColTile;
  const int64_t chunks = std::max<int64_t>(
      1, std::min<int64_t>({(rows + kWbRowChunk - 1) / kWbRowChunk, kWbTargetBlocks / tiles, 65535}));
  const int64_t chunk = (rows + chunks - 1) / chunks;
  const dim3 block{kColTile, kRowGroups, 1};
  const dim3 grid{unsigned(tiles), unsigned(chunks), 1};
  if (chunks == 1) {
    layer_norm_backward_wb_kernel<T, S, T><<<grid, block, 0, stream>>>(
        gw, gb, device_data<T>(grad_y), device_data<T>(x), device_data<S>(mean), device_data<S>(rstd),
        rows, cols, chunk);
    ZT_CUDA_LAUNCH_CHECK("layer_norm_backward_wb_kernel");
    return;
  }
  // Partial sums (chunks, C) for weight and bias, in the compute type.
  Tensor partials = Tensor::empty({2 * chunks * cols}, TensorOptions(DTypeOf<A>::value, x.device()));
  A* pw = device_data<A>(partials);
  A* pb = pw + chunks * cols;
  layer_norm_backward_wb_kernel<T, S, A><<<grid, block, 0, stream>>>(
      pw, pb, device_data<T>(grad_y), device_data<T>(x), device_data<S>(mean), device_data<S>(rstd), rows,
      cols, chunk);
  ZT_CUDA_LAUNCH_CHECK("layer_norm_backward_wb_kernel");
  launch_column_partials_finish(gw, gb, pw, pb, chunks, cols, stream);
}
struct StagedLaunch {
  int threads = 0;  // 0: the row is longer than kMaxStagedBlock * kStagedVecs vectors
  size_t smem = 0;  // kStages buffers of grad_y and x rows
};

// Block size and shared memory of the staged backward for rows of `cols` elements of `elem`
// bytes in 16-byte vectors (cols a multiple of the vector): kStagedVecs vectors a thread.
StagedLaunch staged_launch(int64_t cols, size_t elem) {
  const int64_t nvec = cols / int64_t(16 / elem);
  const int64_t threads = std::max<int64_t>(32, ((nvec + kStagedVecs - 1) / kStagedVecs + 31) / 32 * 32);
  if (threads > kMaxStagedBlock) return {};
  return {int(threads), size_t(kStages) * 2 * kStagedVecs * size_t(threads) * 16};
}

// Dynamic shared memory the fused backward may take per block: the 48 KiB default limit (no
// opt-in needed) less 1 KiB for the kernel's static block_reduce scratch, which counts against
// the same limit (a (1, 5000) f32 row padded to 6144 columns failed to launch without it).
constexpr size_t kFusedWbSmem = (size_t(48) << 10) - 1024;

// grad_x with grad_weight/grad_bias (either may be null) fused into one read of grad_y and x,
// on as many blocks as fit on the device at once; false, with nothing queued, when a block's
// sums would not fit in kFusedWbSmem (the caller then runs the separate kernels).
template <int V, typename T, typename S>
bool launch_fused_backward(T* gx, T* gw, T* gb, const T* gy, const T* x, const S* mean, const S* rstd,
                           const T* w, const T* ga, int64_t rows, int64_t cols, int device, cudaStream_t stream) {
  using A = compute_t<T>;
  if constexpr (V > 1 && V == 16 / int(sizeof(T)) && sizeof(T) <= 4) {
    if (cols / V <= 32 * kWarpRowVecs) {  // narrow rows: a warp each, few partial rows
      const int64_t row_groups = (rows + kWarpRowWarps - 1) / kWarpRowWarps;
      // False, with nothing queued, when a block's sums do not fit in shared memory.
      auto launch = [&]<int K>() {
        auto kernel = ga ? layer_norm_backward_warp_kernel<K, true, T, S> : layer_norm_backward_warp_kernel<K, false, T, S>;
        const size_t smem = size_t(kWarpRowWarps) * warp_sum_floats<K, V>() * sizeof(float);
        const int64_t grid = resident_grid(kernel, kWarpRowWarps * 32, smem, row_groups, device);
        if (grid == 0) return false;
        Tensor partials = Tensor::empty({2 * grid * cols}, TensorOptions(DTypeOf<A>::value, Device::cuda(device)));
        A* pw = device_data<A>(partials);
        A* pb = pw + grid * cols;
        kernel<<<unsigned(grid), kWarpRowWarps * 32, smem, stream>>>(gx, pw, pb, gy, x, mean, rstd, w, ga, rows,
                                                                     cols);
        ZT_CUDA_LAUNCH_CHECK("layer_norm_backward_warp_kernel");
        launch_column_partials_finish(gw, gb, pw, pb, grid, cols, stream);
        return true;
      };
      bool queued = false;
      switch ((cols / V + 31) / 32) {  // vectors per lane
        case 1: queued = launch.template operator()<1>(); break;
        case 2: queued = launch.template operator()<2>(); break;
        case 3: queued = launch.template operator()<3>(); break;
        default: queued = launch.template operator()<4>(); break;
      }
      if (queued) return true;
    }
  }
  // Staged rows where they fit (16-byte vectors, at most 1024 * kStagedVecs of them); else
  // register-cached rows with register weight/bias sums (H200, (rows, 4096): 70% / 91% of copy
  // bandwidth for bf16 / f32, against 54% / 81% for the streaming kernel with shared-memory
  // sums); otherwise the streaming kernel.
  auto kernel = layer_norm_backward_cached_kernel<V, kCachedVecs, true, T, S>;
  int block = 0;
  size_t smem = 0;
  int64_t grid = 0;
  if constexpr (V > 1 && sizeof(T) <= 4) {
    if (const StagedLaunch sl = staged_launch(cols, sizeof(T)); sl.threads > 0) {
      auto staged = ga ? layer_norm_backward_staged_kernel<kStagedVecs, true, true, T, S>
                       : layer_norm_backward_staged_kernel<kStagedVecs, true, false, T, S>;
      grid = resident_grid(staged, sl.threads, sl.smem, rows, device);
      if (grid > 0) {
        kernel = staged;
        block = sl.threads;
        smem = sl.smem;
      }
    }
  }
  if (grid == 0) {
    block = cached_block(cols, V);
    const bool cached = block > 0 && launchable(kernel, block);
    if (!cached) {
      kernel = layer_norm_backward_x_kernel<V, true, T, S>;
      block = row_block(cols);
    }
    const int64_t step = int64_t(block) * V;
    smem = cached ? 0 : size_t(2 * ((cols + step - 1) / step * step)) * sizeof(A);
    if (smem > kFusedWbSmem) return false;
    int per_sm = 0;
    ZT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block, smem));
    grid = std::max<int64_t>(1, std::min<int64_t>(rows, int64_t(std::max(per_sm, 1)) * sm_count(device)));
  }
  // Partial sums (grid, C) for weight and bias, in the compute type.
  Tensor partials = Tensor::empty({2 * grid * cols}, TensorOptions(DTypeOf<A>::value, Device::cuda(device)));
  A* pw = device_data<A>(partials);
  A* pb = pw + grid * cols;
  kernel<<<unsigned(grid), block, smem, stream>>>(gx, pw, pb, gy, x, mean, rstd, w, ga, rows, cols);
  ZT_CUDA_LAUNCH_CHECK("layer_norm_backward_x_kernel (fused weight/bias sums)");
  launch_column_partials_finish(gw, gb, pw, pb, grid, cols, stream);
  return true;
}

}  // namespace

void CudaBackend::layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                      const Tensor& grad_bias, const Tensor& grad_y, const Tensor& x,
                                      const Tensor& mean, const Tensor& rstd, const Tensor& weight,
                                      const Tensor& grad_add) {
  const char* op = "layer_norm_backward";
  const Rows rs = check_rows(x, op);
  const Shape c_shape{rs.c};
  check_like(grad_x, x, x.shape(), op, "grad_x");
  check_like(grad_y, x, x.shape(), op, "grad_y");
  if (weight.defined()) check_like(weight, x, c_shape, op, "weight");
  if (grad_weight.defined()) check_like(grad_weight, x, c_shape, op, "grad_weight");
  if (grad_bias.defined()) check_like(grad_bias, x, c_shape, op, "grad_bias");
  if (grad_add.defined()) check_like(grad_add, x, x.shape(), op, "grad_add");
  check_stats(mean, rstd, rs.n, op);
  const int device =
      common_device(op, {&grad_x, &grad_weight, &grad_bias, &grad_y, &x, &mean, &rstd, &weight, &grad_add});
  DeviceGuard guard(device);
  if (rs.c == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(x.dtype(), op, ([&]<typename T>() {
    auto run = [&]<typename S>() {
      constexpr int kV = 16 / int(sizeof(T));
      T* gxp = device_data<T>(grad_x);
      T* gwp = grad_weight.defined() ? device_data<T>(grad_weight) : nullptr;
      T* gbp = grad_bias.defined() ? device_data<T>(grad_bias) : nullptr;
      const T *gyp = device_data<T>(grad_y), *xp = device_data<T>(x), *wp = data_or_null<T>(weight);
      const S *mp = device_data<S>(mean), *rp = device_data<S>(rstd);
      const T* gap = data_or_null<T>(grad_add);
      const bool vec = vectorizable(rs.c, kV, {gxp, gyp, xp, wp, gap});
      const bool need_wb = gwp || gbp;
      if (rs.n > 0 && need_wb) {
        const bool fused =
            vec ? launch_fused_backward<kV>(gxp, gwp, gbp, gyp, xp, mp, rp, wp, gap, rs.n, rs.c, device, stream)
                : launch_fused_backward<1>(gxp, gwp, gbp, gyp, xp, mp, rp, wp, gap, rs.n, rs.c, device, stream);
        if (fused) return;
      }
      if (rs.n > 0) {
        auto launch = [&](auto kernel) {
          kernel<<<row_grid(rs.n), row_block(rs.c), 0, stream>>>(gxp, nullptr, nullptr, gyp, xp, mp, rp, wp, gap,
                                                                 rs.n, rs.c);
        };
        auto launch_cached = [&](auto kernel, int block) {
          kernel<<<row_grid(rs.n), block, 0, stream>>>(gxp, nullptr, nullptr, gyp, xp, mp, rp, wp, gap, rs.n, rs.c);
        };
        // The staged kernel where it applies (not for f64), else as in launch_fused_backward.
        int64_t staged_grid = 0;
        if constexpr (sizeof(T) <= 4) {
          const StagedLaunch sl = vec ? staged_launch(rs.c, sizeof(T)) : StagedLaunch{};
          auto staged = gap ? layer_norm_backward_staged_kernel<kStagedVecs, false, true, T, S>
                            : layer_norm_backward_staged_kernel<kStagedVecs, false, false, T, S>;
          staged_grid = sl.threads > 0 ? resident_grid(staged, sl.threads, sl.smem, rs.n, device) : 0;
          if (staged_grid > 0)
            staged<<<unsigned(staged_grid), sl.threads, sl.smem, stream>>>(gxp, nullptr, nullptr, gyp, xp, mp, rp,
                                                                          wp, gap, rs.n, rs.c);
        }
        auto cached = vec ? layer_norm_backward_cached_kernel<kV, kCachedVecs, false, T, S>
                          : layer_norm_backward_cached_kernel<1, kCachedVecs, false, T, S>;
        if (staged_grid > 0) {
          // queued above
        } else if (const int block = cached_block(rs.c, vec ? kV : 1); block > 0 && launchable(cached, block)) {
          launch_cached(cached, block);
        } else if (vec) {
          launch(layer_norm_backward_x_kernel<kV, false, T, S>);
        } else {
          launch(layer_norm_backward_x_kernel<1, false, T, S>);
        }
        ZT_CUDA_LAUNCH_CHECK("layer_norm_backward_x_kernel");
      }
      if (need_wb) launch_weight_bias_grads<T, S>(grad_weight, grad_bias, grad_y, x, mean, rstd, rs.n, rs.c, stream);
    };
    if (mean.dtype() == DType::f64) {
      run.template operator()<double>();
    } else {
      run.template operator()<float>();
    }
  }));
}

}  // namespace zt::cuda
