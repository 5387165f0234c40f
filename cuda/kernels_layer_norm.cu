// CUDA layer norm over the last dim of contiguous (N, C) data, forward and backward, with the
// CPU kernel's meaning (core/cpu/kernels_layer_norm.cpp): statistics in float (double for f64)
// by two passes, stored in the dtype of the mean/rstd tensors (f32, or f64). Row kernels use
// 16-byte loads and stores when the row length and alignment allow; rows that fit are held in
// registers (read from memory once), longer ones stream (bench/NOTES.md has the measurements).
#include <algorithm>

#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/elementwise.cuh"  // Vec: 16-byte loads and stores
#include "cuda/kernel_utils.cuh"
#include "cuda/row_softmax.cuh"     // vectorizable

namespace zt::cuda {
namespace {

__device__ __forceinline__ float f_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double f_sqrt(double x) { return sqrt(x); }

// Loads V elements of a row at c (one 16-byte load when V > 1) in the compute type.
template <int V, typename A, typename T>
__device__ __forceinline__ void load_row(A (&out)[V], const T* row, int64_t c) {
  const Vec<T, V> v = *reinterpret_cast<const Vec<T, V>*>(row + c);
#pragma unroll
  for (int j = 0; j < V; ++j) out[j] = A(to_compute(v.v[j]));
}

// One block per row: y = (x - mean) * rstd * w + b; V elements per 16-byte load (V = 1: scalar).
template <int V, typename T, typename S>
__global__ void layer_norm_kernel(T* y, S* mean, S* rstd, const T* x, const T* w, const T* b,
                                  int64_t rows, int64_t cols, double eps) {  // x, y (N, C); w, b (C)
  using A = compute_t<T>;
  __shared__ A shared[32];
  const int64_t first = int64_t(threadIdx.x) * V, step = int64_t(blockDim.x) * V;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    A xv[V];
    A sum = 0;
    for (int64_t c = first; c < cols; c += step) {
      load_row(xv, xr, c);
#pragma unroll
      for (int j = 0; j < V; ++j) sum += xv[j];
    }
    const A mu = block_reduce<A, false>(sum, shared) / A(cols);
    A var = 0;
    for (int64_t c = first; c < cols; c += step) {
      load_row(xv, xr, c);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A d = xv[j] - mu;
        var += d * d;
      }
    }
    var = block_reduce<A, false>(var, shared);
    const A inv = A(1) / f_sqrt(var / A(cols) + A(eps));
    for (int64_t c = first; c < cols; c += step) {
      load_row(xv, xr, c);
      A wv[V], bv[V];
      if (w) load_row(wv, w, c);
      if (b) load_row(bv, b, c);
      Vec<T, V> out;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        A v = (xv[j] - mu) * inv;
        if (w) v *= wv[j];
        if (b) v += bv[j];
        out.v[j] = to_element<T>(v);
      }
      *reinterpret_cast<Vec<T, V>*>(yr + c) = out;
    }
    if (threadIdx.x == 0) {
      mean[r] = S(mu);
      rstd[r] = S(inv);
    }
  }
}

// The register-cached forward for rows up to blockDim.x * V * K elements: x is loaded once into
// registers (all K loads of a thread issued together), and the mean, the variance (still two
// passes, over registers: the CPU's numerics) and the output come from there. The streaming
// kernel above reads x three times (twice from L2) with one 16-byte load in flight per thread
// between block reductions: for bf16 rows of 4096 that is one vector per thread per pass, which
// left the kernel latency-bound at 53% of copy bandwidth. Same column layout as the softmax's
// cached kernel: element j of vector k at (k * blockDim.x + threadIdx.x) * V + j.
template <int V, int K, typename T, typename S>
__global__ void layer_norm_cached_kernel(T* y, S* mean, S* rstd, const T* x, const T* w, const T* b,
                                         int64_t rows, int64_t cols, double eps) {  // x, y (N, C); w, b (C)
  using A = compute_t<T>;
  __shared__ A shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    A xv[K][V];
    A sum = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t c = (int64_t(k) * blockDim.x + threadIdx.x) * V;
      if (c < cols) {
        load_row(xv[k], xr, c);
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) xv[k][j] = A(0);
      }
    }
#pragma unroll
    for (int k = 0; k < K; ++k)
#pragma unroll
      for (int j = 0; j < V; ++j) sum += xv[k][j];
    const A mu = block_reduce<A, false>(sum, shared) / A(cols);
    A var = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if ((int64_t(k) * blockDim.x + threadIdx.x) * V >= cols) continue;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A d = xv[k][j] - mu;
        var += d * d;
      }
    }
    var = block_reduce<A, false>(var, shared);
    const A inv = A(1) / f_sqrt(var / A(cols) + A(eps));
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t c = (int64_t(k) * blockDim.x + threadIdx.x) * V;
      if (c >= cols) continue;
      A wv[V], bv[V];
      if (w) load_row(wv, w, c);
      if (b) load_row(bv, b, c);
      Vec<T, V> out;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        A v = (xv[k][j] - mu) * inv;
        if (w) v *= wv[j];
        if (b) v += bv[j];
        out.v[j] = to_element<T>(v);
      }
      *reinterpret_cast<Vec<T, V>*>(yr + c) = out;
    }
    if (threadIdx.x == 0) {
      mean[r] = S(mu);
      rstd[r] = S(inv);
    }
  }
}

// One block per row: grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = grad_y * w.
// With kWb, the same read of grad_y and x also sums this block's rows of grad_w[c] = sum
// grad_y * xhat and grad_b[c] = sum grad_y into partial_w/partial_b (gridDim.x, C), which
// layer_norm_wb_finish_kernel then adds in block order. The running sums live in dynamic shared
// memory, slot (k * V + j) * blockDim.x + threadIdx.x for element j of the thread's k-th vector:
// each thread owns the same columns in every row (no atomics) and a warp's slots are
// consecutive (no bank conflicts).
template <int V, bool kWb, typename T, typename S>
__global__ void layer_norm_backward_x_kernel(T* gx, compute_t<T>* partial_w, compute_t<T>* partial_b,
                                             const T* gy, const T* x, const S* mean, const S* rstd,
                                             const T* w, int64_t rows, int64_t cols) {
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
      Vec<T, V> out;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xhat = (xv[j] - mu) * inv;
        const A g = w ? gv[j] * wv[j] : gv[j];
        out.v[j] = to_element<T>(A(inv * (g - mean_g - xhat * mean_gx)));
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
                                                  const T* w, int64_t rows, int64_t cols) {
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
      A wv[V];
      if (w) load_row(wv, w, col(k));
      Vec<T, V> out;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xhat = (A(to_compute(xraw[k].v[j])) - mu) * inv, gy_j = to_compute(graw[k].v[j]);
        const A g = w ? gy_j * wv[j] : gy_j;
        out.v[j] = to_element<T>(A(inv * (g - mean_g - xhat * mean_gx)));
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

constexpr int kColTile = 32, kRowGroups = 8;
// Rows per chunk of the grad_weight/grad_bias sums, and the blocks the grid aims for.
constexpr int64_t kWbRowChunk = 64, kWbTargetBlocks = 1024;

// Column sums over rows: grad_w[c] = sum_n grad_y * xhat, grad_b[c] = sum_n grad_y. Block
// (x, y) owns 32 columns and rows chunk y; its 8 row groups meet in shared memory. With one
// chunk the sums go straight to gw/gb (type T); with several, each chunk writes its partial
// sums (type A, (chunks, C)) and layer_norm_wb_finish_kernel adds them in chunk order.
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

// gw[c] = sum over chunks of partial_w[chunk, c] (likewise gb), in chunk order.
template <typename T, typename A>
__global__ void layer_norm_wb_finish_kernel(T* gw, T* gb, const A* partial_w, const A* partial_b,
                                            int64_t chunks, int64_t cols) {
  ZT_GRID_STRIDE_LOOP(c, cols) {
    A sw = 0, sb = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      sw += partial_w[k * cols + c];
      sb += partial_b[k * cols + c];
    }
    if (gw) gw[c] = to_element<T>(sw);
    if (gb) gb[c] = to_element<T>(sb);
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
  layer_norm_wb_finish_kernel<T, A><<<grid_for(cols), kBlockSize, 0, stream>>>(gw, gb, pw, pb, chunks, cols);
  ZT_CUDA_LAUNCH_CHECK("layer_norm_wb_finish_kernel");
}

struct Rows {
  int64_t n, c;
};

Rows check_rows(const Tensor& x, const char* op) {
  ZT_CHECK(x.dim() >= 1 && x.is_contiguous(), op, ": x must be contiguous with at least 1 dim, found ",
           x.str(), " with strides ", shape_str(x.strides()));
  const int64_t c = x.size(-1);
  return {c == 0 ? 0 : x.numel() / c, c};
}

void check_like(const Tensor& t, const Tensor& x, const Shape& shape, const char* op, const char* what) {
  ZT_CHECK(t.shape() == shape && t.dtype() == x.dtype() && t.is_contiguous(), op, ": ", what,
           " must be contiguous of shape ", shape_str(shape), " and dtype ", dtype_name(x.dtype()),
           ", found ", t.str());
}

void check_stats(const Tensor& mean, const Tensor& rstd, int64_t n, const char* op) {
  for (const Tensor* t : {&mean, &rstd}) {
    ZT_CHECK(t->numel() == n && t->is_contiguous() && (t->dtype() == DType::f32 || t->dtype() == DType::f64),
             op, ": mean and rstd must be contiguous f32 (or f64) tensors of ", n, " elements, found ", t->str());
  }
  ZT_CHECK(mean.dtype() == rstd.dtype(), op, ": mean and rstd must share a dtype, found ",
           dtype_name(mean.dtype()), " and ", dtype_name(rstd.dtype()));
}

template <typename T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? device_data<T>(t) : nullptr;
}

unsigned row_grid(int64_t rows) { return unsigned(rows < 65536 ? (rows < 1 ? 1 : rows) : 65536); }
int row_block(int64_t cols) { return cols <= 128 ? 32 : (cols <= 1024 ? 128 : 512); }

// Vectors per thread of the register-cached kernels, and their widest block.
constexpr int kCachedVecs = 4;
constexpr int kMaxCachedBlock = 1024;

// Threads for a register-cached row (whole warps, k vectors each where possible); 0 when the
// row is too long to cache.
int cached_block(int64_t cols, int v, int k = kCachedVecs) {
  const int64_t per_thread = int64_t(v) * k;
  const int64_t threads = (cols + per_thread - 1) / per_thread;
  if (threads > kMaxCachedBlock) return 0;
  return int(std::max<int64_t>(32, (threads + 31) / 32 * 32));
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
                           const T* w, int64_t rows, int64_t cols, int device, cudaStream_t stream) {
  using A = compute_t<T>;
  // Register-cached rows with register weight/bias sums where the row fits (H200, (rows, 4096):
  // 70% / 91% of copy bandwidth for bf16 / f32, against 54% / 81% for the streaming kernel
  // with shared-memory sums); otherwise the streaming kernel.
  auto kernel = layer_norm_backward_cached_kernel<V, kCachedVecs, true, T, S>;
  int block = cached_block(cols, V);
  const bool cached = block > 0 && launchable(kernel, block);
  if (!cached) {
    kernel = layer_norm_backward_x_kernel<V, true, T, S>;
    block = row_block(cols);
  }
  const int64_t step = int64_t(block) * V;
  const size_t smem = cached ? 0 : size_t(2 * ((cols + step - 1) / step * step)) * sizeof(A);
  if (smem > kFusedWbSmem) return false;
  int per_sm = 0, sms = 0;
  ZT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block, smem));
  ZT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t grid = std::max<int64_t>(1, std::min<int64_t>(rows, int64_t(std::max(per_sm, 1)) * sms));
  // Partial sums (grid, C) for weight and bias, in the compute type.
  Tensor partials = Tensor::empty({2 * grid * cols}, TensorOptions(DTypeOf<A>::value, Device::cuda(device)));
  A* pw = device_data<A>(partials);
  A* pb = pw + grid * cols;
  kernel<<<unsigned(grid), block, smem, stream>>>(gx, pw, pb, gy, x, mean, rstd, w, rows, cols);
  ZT_CUDA_LAUNCH_CHECK("layer_norm_backward_x_kernel (fused weight/bias sums)");
  layer_norm_wb_finish_kernel<T, A><<<grid_for(cols), kBlockSize, 0, stream>>>(gw, gb, pw, pb, grid, cols);
  ZT_CUDA_LAUNCH_CHECK("layer_norm_wb_finish_kernel");
  return true;
}

}  // namespace

void CudaBackend::layer_norm(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                             const Tensor& weight, const Tensor& bias, double eps) {
  const Rows rs = check_rows(x, "layer_norm");
  const Shape c_shape{rs.c};
  check_like(y, x, x.shape(), "layer_norm", "y");
  if (weight.defined()) check_like(weight, x, c_shape, "layer_norm", "weight");
  if (bias.defined()) check_like(bias, x, c_shape, "layer_norm", "bias");
  check_stats(mean, rstd, rs.n, "layer_norm");
  const int device = common_device("layer_norm", {&y, &mean, &rstd, &x, &weight, &bias});
  DeviceGuard guard(device);
  if (rs.n == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(x.dtype(), "layer_norm", ([&]<typename T>() {
    auto run = [&]<typename S>() {
      constexpr int kV = 16 / int(sizeof(T));
      T* yp = device_data<T>(y);
      const T *xp = device_data<T>(x), *wp = data_or_null<T>(weight), *bp = data_or_null<T>(bias);
      auto launch = [&](auto kernel) {
        kernel<<<row_grid(rs.n), row_block(rs.c), 0, stream>>>(yp, device_data<S>(mean), device_data<S>(rstd), xp,
                                                               wp, bp, rs.n, rs.c, eps);
      };
      auto launch_cached = [&](auto kernel, int block) {
        kernel<<<row_grid(rs.n), block, 0, stream>>>(yp, device_data<S>(mean), device_data<S>(rstd), xp, wp, bp,
                                                     rs.n, rs.c, eps);
      };
      const bool vec = vectorizable(rs.c, kV, {yp, xp, wp, bp});
      auto cached = vec ? layer_norm_cached_kernel<kV, kCachedVecs, T, S>
                        : layer_norm_cached_kernel<1, kCachedVecs, T, S>;
      if (const int block = cached_block(rs.c, vec ? kV : 1); block > 0 && launchable(cached, block)) {
        launch_cached(cached, block);
      } else if (vec) {
        launch(layer_norm_kernel<kV, T, S>);
      } else {
        launch(layer_norm_kernel<1, T, S>);
      }
      ZT_CUDA_LAUNCH_CHECK("layer_norm_kernel");
    };
    if (mean.dtype() == DType::f64) {
      run.template operator()<double>();
    } else {
      run.template operator()<float>();
    }
  }));
}

void CudaBackend::layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                      const Tensor& grad_bias, const Tensor& grad_y, const Tensor& x,
                                      const Tensor& mean, const Tensor& rstd, const Tensor& weight) {
  const char* op = "layer_norm_backward";
  const Rows rs = check_rows(x, op);
  const Shape c_shape{rs.c};
  check_like(grad_x, x, x.shape(), op, "grad_x");
  check_like(grad_y, x, x.shape(), op, "grad_y");
  if (weight.defined()) check_like(weight, x, c_shape, op, "weight");
  if (grad_weight.defined()) check_like(grad_weight, x, c_shape, op, "grad_weight");
  if (grad_bias.defined()) check_like(grad_bias, x, c_shape, op, "grad_bias");
  check_stats(mean, rstd, rs.n, op);
  const int device = common_device(op, {&grad_x, &grad_weight, &grad_bias, &grad_y, &x, &mean, &rstd, &weight});
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
      const bool vec = vectorizable(rs.c, kV, {gxp, gyp, xp, wp});
      const bool need_wb = gwp || gbp;
      if (rs.n > 0 && need_wb) {
        const bool fused =
            vec ? launch_fused_backward<kV>(gxp, gwp, gbp, gyp, xp, mp, rp, wp, rs.n, rs.c, device, stream)
                : launch_fused_backward<1>(gxp, gwp, gbp, gyp, xp, mp, rp, wp, rs.n, rs.c, device, stream);
        if (fused) return;
      }
      if (rs.n > 0) {
        auto launch = [&](auto kernel) {
          kernel<<<row_grid(rs.n), row_block(rs.c), 0, stream>>>(gxp, nullptr, nullptr, gyp, xp, mp, rp, wp, rs.n,
                                                                 rs.c);
        };
        auto launch_cached = [&](auto kernel, int block) {
          kernel<<<row_grid(rs.n), block, 0, stream>>>(gxp, nullptr, nullptr, gyp, xp, mp, rp, wp, rs.n, rs.c);
        };
        auto cached = vec ? layer_norm_backward_cached_kernel<kV, kCachedVecs, false, T, S>
                          : layer_norm_backward_cached_kernel<1, kCachedVecs, false, T, S>;
        if (const int block = cached_block(rs.c, vec ? kV : 1); block > 0 && launchable(cached, block)) {
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
