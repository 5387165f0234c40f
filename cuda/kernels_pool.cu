// CUDA 2-D max and average pooling (NCHW), forward and backward; the CPU kernels
// (core/cpu/kernels_pool.cpp) define the meaning. Forward: one thread per output element.
// Backward: one thread per input element gathering from the windows that contain it, so no
// atomics are needed and the result does not depend on scheduling.
#include <cmath>

#include "core/pool_checks.h"
#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {
namespace {

template <typename T>
__global__ void max_pool_kernel(T* out, int64_t* indices, const T* x, PoolDims d, Pool2dGeometry g) {
  using A = compute_t<T>;
  const int64_t total = d.planes * d.oh * d.ow;
  ZT_GRID_STRIDE_LOOP(o, total) {
    const int64_t ox = o % d.ow, oy = (o / d.ow) % d.oh, p = o / (d.ow * d.oh);
    const T* plane = x + p * d.h * d.w;  // (H, W)
    A best = -INFINITY;
    int64_t best_index = -1;
    bool done = false;
    for (int64_t i = 0; i < g.kernel_h && !done; ++i) {
      const int64_t iy = oy * g.stride_h - g.pad_h + i * g.dil_h;
      if (iy < 0 || iy >= d.h) continue;
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t ix = ox * g.stride_w - g.pad_w + j * g.dil_w;
        if (ix < 0 || ix >= d.w) continue;
        const A v = to_compute(plane[iy * d.w + ix]);
        if (best_index < 0 || v > best || isnan(v)) {
          best = v;
          best_index = iy * d.w + ix;
        }
        if (isnan(v)) {  // NaN wins, and the first one is kept
          done = true;
          break;
        }
      }
    }
    out[o] = to_element<T>(best);
    indices[o] = best_index;
  }
}

// grad_x[p, iy, ix] = sum of grad_out over the windows whose maximum was at (iy, ix).
template <typename T>
__global__ void max_pool_backward_kernel(T* grad_x, const T* grad_out, const int64_t* indices, PoolDims d,
                                         Pool2dGeometry g) {
  using A = compute_t<T>;
  const int64_t total = d.planes * d.h * d.w;
  ZT_GRID_STRIDE_LOOP(e, total) {
    const int64_t ix = e % d.w, iy = (e / d.w) % d.h, p = e / (d.w * d.h);
    const int64_t here = iy * d.w + ix, base = p * d.oh * d.ow;
    A acc = 0;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      const int64_t ty = iy + g.pad_h - i * g.dil_h;
      if (ty < 0 || ty % g.stride_h != 0 || ty / g.stride_h >= d.oh) continue;
      const int64_t oy = ty / g.stride_h;
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t tx = ix + g.pad_w - j * g.dil_w;
        if (tx < 0 || tx % g.stride_w != 0 || tx / g.stride_w >= d.ow) continue;
        const int64_t o = base + oy * d.ow + tx / g.stride_w;
        if (indices[o] == here) acc += to_compute(grad_out[o]);
      }
    }
    grad_x[e] = to_element<T>(acc);
  }
}

// The divisor of the window at (oy, ox), as the CPU's avg_window computes it.
__device__ __forceinline__ int64_t avg_divisor(int64_t oy, int64_t ox, const PoolDims& d,
                                               const Pool2dGeometry& g, int64_t* y0, int64_t* y1,
                                               int64_t* x0, int64_t* x1) {
  int64_t a = oy * g.stride_h - g.pad_h, b = ox * g.stride_w - g.pad_w;
  int64_t c = min(a + g.kernel_h, d.h + g.pad_h), e = min(b + g.kernel_w, d.w + g.pad_w);
  const int64_t padded = (c - a) * (e - b);
  a = max(a, int64_t(0));
  b = max(b, int64_t(0));
  c = min(c, d.h);
  e = min(e, d.w);
  *y0 = a;
  *y1 = c;
  *x0 = b;
  *x1 = e;
  return g.count_include_pad ? padded : (c - a) * (e - b);
}

template <typename T>
__global__ void avg_pool_kernel(T* out, const T* x, PoolDims d, Pool2dGeometry g) {
  using A = compute_t<T>;
  const int64_t total = d.planes * d.oh * d.ow;
  ZT_GRID_STRIDE_LOOP(o, total) {
    const int64_t ox = o % d.ow, oy = (o / d.ow) % d.oh, p = o / (d.ow * d.oh);
    const T* plane = x + p * d.h * d.w;  // (H, W)
    int64_t y0, y1, x0, x1;
    const int64_t divisor = avg_divisor(oy, ox, d, g, &y0, &y1, &x0, &x1);
    A sum = 0;
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t xx = x0; xx < x1; ++xx) sum += to_compute(plane[y * d.w + xx]);
    out[o] = to_element<T>(sum / A(divisor));
  }
}

template <typename T>
__global__ void avg_pool_backward_kernel(T* grad_x, const T* grad_out, PoolDims d, Pool2dGeometry g) {
  using A = compute_t<T>;
  const int64_t total = d.planes * d.h * d.w;
  ZT_GRID_STRIDE_LOOP(e, total) {
    const int64_t ix = e % d.w, iy = (e / d.w) % d.h, p = e / (d.w * d.h);
    A acc = 0;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      const int64_t ty = iy + g.pad_h - i;
      if (ty < 0 || ty % g.stride_h != 0 || ty / g.stride_h >= d.oh) continue;
      const int64_t oy = ty / g.stride_h;
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t tx = ix + g.pad_w - j;
        if (tx < 0 || tx % g.stride_w != 0 || tx / g.stride_w >= d.ow) continue;
        const int64_t ox = tx / g.stride_w;
        int64_t y0, y1, x0, x1;
        const int64_t divisor = avg_divisor(oy, ox, d, g, &y0, &y1, &x0, &x1);
        acc += to_compute(grad_out[(p * d.oh + oy) * d.ow + ox]) / A(divisor);
      }
    }
    grad_x[e] = to_element<T>(acc);
  }
}

}  // namespace

void CudaBackend::max_pool2d(const Tensor& out, const Tensor& indices, const Tensor& x,
                             const Pool2dGeometry& geometry) {
  const PoolDims d = pool_dims(x, out, geometry, "max_pool2d");
  check_pool_indices(indices, out, "max_pool2d");
  const int device = common_device("max_pool2d", {&out, &indices, &x});
  DeviceGuard guard(device);
  const int64_t n = out.numel();
  if (n == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(x.dtype(), "max_pool2d", ([&]<typename T>() {
    max_pool_kernel<T><<<grid_for(n), kBlockSize, 0, stream>>>(
        device_data<T>(out), device_data<int64_t>(indices), device_data<T>(x), d, geometry);
    ZT_CUDA_LAUNCH_CHECK("max_pool_kernel");
  }));
}

void CudaBackend::max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                      const Tensor& indices, const Pool2dGeometry& geometry) {
  const PoolDims d = pool_dims(grad_x, grad_out, geometry, "max_pool2d_backward");
  check_pool_indices(indices, grad_out, "max_pool2d_backward");
  const int device = common_device("max_pool2d_backward", {&grad_x, &grad_out, &indices});
  DeviceGuard guard(device);
  const int64_t n = grad_x.numel();
  if (n == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(grad_x.dtype(), "max_pool2d_backward", ([&]<typename T>() {
    max_pool_backward_kernel<T><<<grid_for(n), kBlockSize, 0, stream>>>(
        device_data<T>(grad_x), device_data<T>(grad_out), device_data<int64_t>(indices), d, geometry);
    ZT_CUDA_LAUNCH_CHECK("max_pool_backward_kernel");
  }));
}

void CudaBackend::avg_pool2d(const Tensor& out, const Tensor& x, const Pool2dGeometry& geometry) {
  check_avg_pool_geometry(geometry, "avg_pool2d");
  const PoolDims d = pool_dims(x, out, geometry, "avg_pool2d");
  const int device = common_device("avg_pool2d", {&out, &x});
  DeviceGuard guard(device);
  const int64_t n = out.numel();
  if (n == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(x.dtype(), "avg_pool2d", ([&]<typename T>() {
    avg_pool_kernel<T><<<grid_for(n), kBlockSize, 0, stream>>>(device_data<T>(out), device_data<T>(x), d,
                                                              geometry);
    ZT_CUDA_LAUNCH_CHECK("avg_pool_kernel");
  }));
}

void CudaBackend::avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                      const Pool2dGeometry& geometry) {
  check_avg_pool_geometry(geometry, "avg_pool2d_backward");
  const PoolDims d = pool_dims(grad_x, grad_out, geometry, "avg_pool2d_backward");
  const int device = common_device("avg_pool2d_backward", {&grad_x, &grad_out});
  DeviceGuard guard(device);
  const int64_t n = grad_x.numel();
  if (n == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(grad_x.dtype(), "avg_pool2d_backward", ([&]<typename T>() {
    avg_pool_backward_kernel<T><<<grid_for(n), kBlockSize, 0, stream>>>(
        device_data<T>(grad_x), device_data<T>(grad_out), d, geometry);
    ZT_CUDA_LAUNCH_CHECK("avg_pool_backward_kernel");
  }));
}

}  // namespace zt::cuda
