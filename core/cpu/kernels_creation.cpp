// CPU kernels that create or copy values: fill, arange, Philox random draws, strided copy/cast.
#include <cmath>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"
#include "core/philox.h"

namespace zt::cpu {

void CpuBackend::fill(const Tensor& out, double value) {
  ZT_DISPATCH_ALL(out.dtype(), "fill", ([&]<typename T>() {
    const T v = cast_to<T>(value);
    T* base = typed_data<T>(out);
    for_each_segment<1>(out.shape(), {&out.strides()},
                        [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
                          T* p = base + off[0];
                          if (st[0] == 1) {
                            for (int64_t j = 0; j < n; ++j) p[j] = v;
                          } else {
                            for (int64_t j = 0; j < n; ++j) p[j * st[0]] = v;
                          }
                        });
  }));
}

void CpuBackend::arange(const Tensor& out, double start, double step) {
  ZT_CHECK(out.dim() == 1, "arange: out must be 1-D, found shape ", shape_str(out.shape()));
  ZT_DISPATCH_ALL(out.dtype(), "arange", ([&]<typename T>() {
    T* p = typed_data<T>(out);
    const int64_t s = out.stride(0);
    parallel_for(out.numel(), 1, [&](int64_t i) { p[i * s] = cast_to<T>(start + double(i) * step); });
  }));
}

// Element i is low + (high - low) * u_i, u_i = philox::uniform(seed, offset, i) in (0, 1],
// evaluated in the output's compute type (float for f16/bf16/f32, double for f64), as the
// CUDA kernel does.
void CpuBackend::random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double low,
                                double high) {
  ZT_CHECK(out.is_contiguous(), "random_uniform: out must be contiguous, found strides ",
           shape_str(out.strides()));
  ZT_DISPATCH_FLOATING(out.dtype(), "random_uniform", ([&]<typename T>() {
    using C = compute_t<T>;
    T* p = typed_data<T>(out);
    const C lo = C(low), range = C(high - low);
    parallel_for(out.numel(), 16, [&](int64_t i) {
      p[i] = cast_to<T>(lo + range * C(philox::uniform(seed, offset, uint64_t(i))));
    });
  }));
}

// Element i is mean + stddev * z_i, z_i = philox::normal(seed, offset, i).
void CpuBackend::random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean,
                               double stddev) {
  ZT_CHECK(out.is_contiguous(), "random_normal: out must be contiguous, found strides ",
           shape_str(out.strides()));
  ZT_DISPATCH_FLOATING(out.dtype(), "random_normal", ([&]<typename T>() {
    using C = compute_t<T>;
    T* p = typed_data<T>(out);
    const C mu = C(mean), sigma = C(stddev);
    parallel_for(out.numel(), 32, [&](int64_t i) {
      p[i] = cast_to<T>(mu + sigma * C(philox::normal(seed, offset, uint64_t(i))));
    });
  }));
}

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  ZT_CHECK(dst.shape() == src.shape(), "copy: dst shape ", shape_str(dst.shape()),
           " differs from src shape ", shape_str(src.shape()));
  ZT_CHECK(dst.device().is_cpu() && src.device().is_cpu(), "copy: the CPU backend copies CPU tensors only, found dst on ",
           dst.device().str(), " and src on ", src.device().str());
  ZT_DISPATCH_ALL(dst.dtype(), "copy", ([&]<typename D>() {
    ZT_DISPATCH_ALL(src.dtype(), "copy", ([&]<typename S>() {
      D* d = typed_data<D>(dst);
      const S* s = typed_data<S>(src);
      for_each_segment<2>(dst.shape(), {&dst.strides(), &src.strides()},
                          [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                            D* dp = d + off[0];
                            const S* sp = s + off[1];
                            if (st[0] == 1 && st[1] == 1) {
                              for (int64_t j = 0; j < n; ++j) dp[j] = convert_element<D>(sp[j]);
                            } else {
                              for (int64_t j = 0; j < n; ++j)
                                dp[j * st[0]] = convert_element<D>(sp[j * st[1]]);
                            }
                          });
    }));
  }));
}

}  // namespace zt::cpu
