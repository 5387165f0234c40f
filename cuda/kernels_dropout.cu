// CUDA dropout: mask[i] = philox::uniform(seed, offset, i) > p, out = x * mask / (1 - p), with i
// the logical (row-major) position of the element, so the mask equals the CPU's for the same
// (seed, offset) whatever the strides of x (core/cpu/kernels_dropout.cpp).
#include "core/philox.h"
#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {
namespace {

template <typename T>
__global__ void dropout_kernel(T* out, uint8_t* mask, const T* x, int64_t n, OffsetCalc<1> x_calc,
                               float threshold, compute_t<T> scale, uint64_t seed, uint64_t offset) {
  using A = compute_t<T>;
  ZT_GRID_STRIDE_LOOP(i, n) {
    int64_t xo;
    x_calc.offsets(i, &xo);
    const bool keep = philox::uniform(seed, offset, uint64_t(i)) > threshold;
    mask[i] = keep ? 1 : 0;
    out[i] = keep ? to_element<T>(A(to_compute(x[xo]) * scale)) : to_element<T>(A(0));
  }
}

}  // namespace

void CudaBackend::dropout(const Tensor& out, const Tensor& mask, const Tensor& x, double p,
                          uint64_t seed, uint64_t offset) {
  ZT_CHECK(p >= 0.0 && p <= 1.0, "dropout: p must be in [0, 1], found ", p);
  ZT_CHECK(out.shape() == x.shape() && out.dtype() == x.dtype() && out.is_contiguous(),
           "dropout: out must be contiguous like x ", x.str(), ", found ", out.str());
  ZT_CHECK(mask.shape() == x.shape() && mask.dtype() == DType::u8 && mask.is_contiguous(),
           "dropout: mask must be a contiguous u8 tensor of shape ", shape_str(x.shape()),
           ", found ", mask.str());
  const int device = common_device("dropout", {&out, &mask, &x});
  DeviceGuard guard(device);
  const int64_t n = x.numel();
  if (n == 0) return;
  const OffsetCalc<1> x_calc = make_offset_calc<1>(x.shape(), {&x.strides()});
  ZT_DISPATCH_FLOATING(x.dtype(), "dropout", ([&]<typename T>() {
    using A = compute_t<T>;
    const A scale = p < 1.0 ? A(1.0 / (1.0 - p)) : A(0);
    dropout_kernel<T><<<grid_for(n), kBlockSize, 0, current_stream(device)>>>(
        device_data<T>(out), device_data<uint8_t>(mask), device_data<T>(x), n, x_calc, float(p),
        scale, seed, offset);
    ZT_CUDA_LAUNCH_CHECK("dropout_kernel");
  }));
}

}  // namespace zt::cuda
