// CUDA softmax / log-softmax over the last dim of contiguous (rows, C) data, and the backward.
// One block per row: the row max, then the sum of exp(x - max), then the outputs; computed in
// float (double for f64) like the CPU kernel (core/cpu/kernels_softmax.cpp).
#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {
namespace {

__device__ __forceinline__ float f_exp(float x) { return expf(x); }
__device__ __forceinline__ double f_exp(double x) { return exp(x); }
__device__ __forceinline__ float f_log(float x) { return logf(x); }
__device__ __forceinline__ double f_log(double x) { return log(x); }

template <typename T>
__global__ void softmax_kernel(T* y, const T* x, int64_t rows, int64_t cols, bool log) {  // (rows, C)
  using A = compute_t<T>;
  __shared__ A shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    A mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) mx = fmax(mx, to_compute(xr[c]));
    mx = block_reduce<A, true>(mx, shared);
    A sum = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += f_exp(A(to_compute(xr[c]) - mx));
    sum = block_reduce<A, false>(sum, shared);
    if (log) {
      const A lse = mx + f_log(sum);
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = to_element<T>(A(to_compute(xr[c]) - lse));
    } else {
      const A inv = A(1) / sum;
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        yr[c] = to_element<T>(A(f_exp(A(to_compute(xr[c]) - mx)) * inv));
    }
  }
}

// softmax: gin = y * (gout - sum(gout * y)); log-softmax: gin = gout - exp(y) * sum(gout).
template <typename T>
__global__ void softmax_backward_kernel(T* gin, const T* gout, const T* y, int64_t rows, int64_t cols,
                                        bool log) {  // (rows, C) each
  using A = compute_t<T>;
  __shared__ A shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = gout + r * cols;
    const T* yr = y + r * cols;
    T* dr = gin + r * cols;
    A dot = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      dot += log ? A(to_compute(gr[c])) : A(to_compute(gr[c])) * A(to_compute(yr[c]));
    dot = block_reduce<A, false>(dot, shared);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const A g = to_compute(gr[c]), v = to_compute(yr[c]);
      dr[c] = to_element<T>(log ? A(g - f_exp(v) * dot) : A(v * (g - dot)));
    }
  }
}

struct RowShape {
  int64_t rows, cols;
};

RowShape row_shape(const Tensor& t, const char* op, const char* what) {
  ZT_CHECK(t.is_contiguous(), op, ": ", what, " must be contiguous, found shape ",
           shape_str(t.shape()), " with strides ", shape_str(t.strides()));
  const int64_t cols = t.dim() == 0 ? 1 : t.size(-1);
  return {cols == 0 ? 0 : t.numel() / cols, cols};
}

unsigned row_grid(int64_t rows) { return unsigned(rows < 65536 ? (rows < 1 ? 1 : rows) : 65536); }

// Threads per row: a warp for short rows, more for long ones.
int row_block(int64_t cols) { return cols <= 128 ? 32 : (cols <= 1024 ? 128 : 512); }

}  // namespace

void CudaBackend::softmax(const Tensor& out, const Tensor& x, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  const RowShape rs = row_shape(x, op, "x");
  row_shape(out, op, "out");
  ZT_CHECK(out.shape() == x.shape() && out.dtype() == x.dtype(), op, ": out must match x ",
           x.str(), ", found ", out.str());
  const int device = common_device(op, {&out, &x});
  DeviceGuard guard(device);
  if (rs.rows == 0) return;
  ZT_DISPATCH_FLOATING(x.dtype(), op, ([&]<typename T>() {
    softmax_kernel<T><<<row_grid(rs.rows), row_block(rs.cols), 0, current_stream(device)>>>(
        device_data<T>(out), device_data<T>(x), rs.rows, rs.cols, log);
    ZT_CUDA_LAUNCH_CHECK("softmax_kernel");
  }));
}

void CudaBackend::softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out,
                                   bool log) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  const RowShape rs = row_shape(out, op, "out");
  row_shape(grad_in, op, "grad_in");
  row_shape(grad_out, op, "grad_out");
  ZT_CHECK(grad_in.shape() == out.shape() && grad_out.shape() == out.shape() &&
               grad_in.dtype() == out.dtype() && grad_out.dtype() == out.dtype(),
           op, ": grad_in ", grad_in.str(), " and grad_out ", grad_out.str(), " must match out ",
           out.str());
  const int device = common_device(op, {&grad_in, &grad_out, &out});
  DeviceGuard guard(device);
  if (rs.rows == 0) return;
  ZT_DISPATCH_FLOATING(out.dtype(), op, ([&]<typename T>() {
    softmax_backward_kernel<T><<<row_grid(rs.rows), row_block(rs.cols), 0, current_stream(device)>>>(
        device_data<T>(grad_in), device_data<T>(grad_out), device_data<T>(out), rs.rows, rs.cols, log);
    ZT_CUDA_LAUNCH_CHECK("softmax_backward_kernel");
  }));
}

}  // namespace zt::cuda
