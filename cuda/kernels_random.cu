// CUDA random draws from the counter-based Philox stream (core/philox.h): element i of a draw
// with (seed, offset) is the same number on every backend, so CPU and CUDA tensors drawn with
// one generator state are identical up to the final rounding.
#include "core/philox.h"
#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {
namespace {

// out[i] = low + range * uniform_i, in the output's compute type (as the CPU kernel).
template <typename T>
__global__ void random_uniform_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset,
                                      compute_t<T> low, compute_t<T> range) {
  using C = compute_t<T>;
  ZT_GRID_STRIDE_LOOP(i, n) out[i] = to_element<T>(C(low + range * C(philox::uniform(seed, offset, uint64_t(i)))));
}

// out[i] = mean + stddev * normal_i.
template <typename T>
__global__ void random_normal_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset,
                                     compute_t<T> mean, compute_t<T> stddev) {
  using C = compute_t<T>;
  ZT_GRID_STRIDE_LOOP(i, n) out[i] = to_element<T>(C(mean + stddev * C(philox::normal(seed, offset, uint64_t(i)))));
}

}  // namespace

void CudaBackend::random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double low,
                                 double high) {
  ZT_CHECK(out.is_contiguous(), "random_uniform: out must be contiguous, found strides ",
           shape_str(out.strides()));
  const int device = common_device("random_uniform", {&out});
  DeviceGuard guard(device);
  const int64_t n = out.numel();
  if (n == 0) return;
  ZT_DISPATCH_FLOATING(out.dtype(), "random_uniform", ([&]<typename T>() {
    using C = compute_t<T>;
    random_uniform_kernel<T><<<grid_for(n), kBlockSize, 0, current_stream(device)>>>(
        device_data<T>(out), n, seed, offset, C(low), C(high - low));
    ZT_CUDA_LAUNCH_CHECK("random_uniform_kernel");
  }));
}

void CudaBackend::random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean,
                                double stddev) {
  ZT_CHECK(out.is_contiguous(), "random_normal: out must be contiguous, found strides ",
           shape_str(out.strides()));
  const int device = common_device("random_normal", {&out});
  DeviceGuard guard(device);
  const int64_t n = out.numel();
  if (n == 0) return;
  ZT_DISPATCH_FLOATING(out.dtype(), "random_normal", ([&]<typename T>() {
    using C = compute_t<T>;
    random_normal_kernel<T><<<grid_for(n), kBlockSize, 0, current_stream(device)>>>(
        device_data<T>(out), n, seed, offset, C(mean), C(stddev));
    ZT_CUDA_LAUNCH_CHECK("random_normal_kernel");
  }));
}

}  // namespace zt::cuda
