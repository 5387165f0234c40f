// CUDA layer norm forward over the last dim of contiguous (N, C) data, with the CPU kernel's
// meaning (core/cpu/kernels_layer_norm.cpp): statistics in float (double for f64) by two passes,
// stored in the dtype of the mean/rstd tensors (f32, or f64). Row kernels use 16-byte loads and
// stores when the row length and alignment allow; rows that fit are held in registers (read from
// memory once), narrow rows a warp each, longer ones stream (bench/NOTES.md has the
// measurements). The backward is kernels_layer_norm_backward.cu.
#include <algorithm>

#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/elementwise.cuh"  // Vec: 16-byte loads and stores
#include "cuda/kernel_utils.cuh"
#include "cuda/layer_norm_rows.cuh"
#include "cuda/row_softmax.cuh"     // vectorizable, launchable

namespace zt::cuda {
namespace {

using namespace layer_norm_rows;

__device__ __forceinline__ float f_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double f_sqrt(double x) { return sqrt(x); }

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

// Narrow rows, a warp per row: rows of at most 32 * kWarpRowVecs 16-byte vectors (a bf16 row
// of up to 1024, GPT-2's 768 among them), K the vectors a lane holds. The cached kernel gives
// such a row a 32-thread block (24 busy lanes for 768) and two block reductions, each with two
// barriers: at bf16 (8192, 768) it reached 42-53% of the copy bandwidth. Here the row sums are
// warp shuffles, kWarpRowsPerBlock rows share a block, and every row of the grid is in flight
// at once. Same two passes over registers as the other kernels.
constexpr int kWarpRowsPerBlock = 4;

template <int K, typename T, typename S>
__global__ void __launch_bounds__(kWarpRowsPerBlock * 32)
    layer_norm_warp_kernel(T* y, S* mean, S* rstd, const T* x, const T* w, const T* b, int64_t rows,
                           int64_t cols, double eps) {  // x, y (N, C); w, b (C)
  using A = compute_t<T>;
  constexpr int V = 16 / int(sizeof(T));
  using VT = Vec<T, V>;
  const int lane = int(threadIdx.x) % 32, nvec = int(cols / V);
  auto vec = [&](int k) { return k * 32 + lane; };
  for (int64_t r = int64_t(blockIdx.x) * kWarpRowsPerBlock + threadIdx.x / 32; r < rows;
       r += int64_t(gridDim.x) * kWarpRowsPerBlock) {
    const VT* xr = reinterpret_cast<const VT*>(x + r * cols);
    VT raw[K];
#pragma unroll
    for (int k = 0; k < K; ++k)
      if (vec(k) < nvec) raw[k] = xr[vec(k)];
    A sum = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
#pragma unroll
      for (int j = 0; j < V; ++j) sum += A(to_compute(raw[k].v[j]));
    }
    const A mu = warp_sum(sum) / A(cols);
    A var = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A d = A(to_compute(raw[k].v[j])) - mu;
        var += d * d;
      }
    }
    const A inv = A(1) / f_sqrt(warp_sum(var) / A(cols) + A(eps));
    VT* yr = reinterpret_cast<VT*>(y + r * cols);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
      VT wv, bv, out;
      if (w) wv = reinterpret_cast<const VT*>(w)[vec(k)];
      if (b) bv = reinterpret_cast<const VT*>(b)[vec(k)];
#pragma unroll
      for (int j = 0; j < V; ++j) {
        A v = (A(to_compute(raw[k].v[j])) - mu) * inv;
        if (w) v *= A(to_compute(wv.v[j]));
        if (b) v += A(to_compute(bv.v[j]));
        out.v[j] = to_element<T>(v);
      }
      yr[vec(k)] = out;
    }
    if (lane == 0) {
      mean[r] = S(mu);
      rstd[r] = S(inv);
    }
  }
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
      if (const int64_t lane_vecs = (rs.c / kV + 31) / 32; vec && lane_vecs <= kWarpRowVecs) {
        const unsigned grid = unsigned(std::min<int64_t>((rs.n + kWarpRowsPerBlock - 1) / kWarpRowsPerBlock, 65535));
        auto launch_warp = [&](auto kernel) {
          kernel<<<grid, kWarpRowsPerBlock * 32, 0, stream>>>(yp, device_data<S>(mean), device_data<S>(rstd), xp,
                                                              wp, bp, rs.n, rs.c, eps);
        };
        switch (lane_vecs) {
          case 1: launch_warp(layer_norm_warp_kernel<1, T, S>); break;
          case 2: launch_warp(layer_norm_warp_kernel<2, T, S>); break;
          case 3: launch_warp(layer_norm_warp_kernel<3, T, S>); break;
          default: launch_warp(layer_norm_warp_kernel<4, T, S>); break;
        }
        ZT_CUDA_LAUNCH_CHECK("layer_norm_warp_kernel");
        return;
      }
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

}  // namespace zt::cuda
