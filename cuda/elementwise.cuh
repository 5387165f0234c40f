// The elementwise map used by the pointwise kernels: out[i] = f(in_0[i], ..., in_{K-1}[i])
// over same-shape views. Contiguous operands with 16-byte aligned data take a vectorised path
// (16-byte loads and stores); anything else goes through the strided offset calculator.
#pragma once
#include <array>

#include "cuda/device.h"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {

template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

template <typename P, int N>
struct PtrArray {
  P p[N > 0 ? N : 1];
};

template <typename F, typename I, int NIN>
__device__ __forceinline__ auto apply_fn(const F& f, const I (&x)[NIN]) {
  if constexpr (NIN == 1) {
    return f(x[0]);
  } else if constexpr (NIN == 2) {
    return f(x[0], x[1]);
  } else {
    return f(x[0], x[1], x[2]);
  }
}

template <int NIN, int VEC, typename O, typename I, typename F>
__global__ void map_contiguous_kernel(O* out, PtrArray<const I*, NIN> in, int64_t n, F f) {
  const int64_t nvec = n / VEC;
  ZT_GRID_STRIDE_LOOP(i, nvec) {
    Vec<I, VEC> xv[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) xv[k] = reinterpret_cast<const Vec<I, VEC>*>(in.p[k])[i];
    Vec<O, VEC> ov;
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      I x[NIN];
#pragma unroll
      for (int k = 0; k < NIN; ++k) x[k] = xv[k].v[j];
      ov.v[j] = apply_fn(f, x);
    }
    reinterpret_cast<Vec<O, VEC>*>(out)[i] = ov;
  }
  // The tail that does not fill a vector, one element per thread.
  ZT_GRID_STRIDE_LOOP(t, n - nvec * VEC) {
    const int64_t i = nvec * VEC + t;
    I x[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) x[k] = in.p[k][i];
    out[i] = apply_fn(f, x);
  }
}

template <int NIN, typename O, typename I, typename F>
__global__ void map_strided_kernel(O* out, PtrArray<const I*, NIN> in, int64_t n,
                                   OffsetCalc<NIN + 1> calc, F f) {
  ZT_GRID_STRIDE_LOOP(i, n) {
    int64_t off[NIN + 1];
    calc.offsets(i, off);
    I x[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) x[k] = in.p[k][off[k + 1]];
    out[off[0]] = apply_fn(f, x);
  }
}

// Launches out = f(ins...) on out's device; ins have out's shape (broadcast views allowed).
template <int NIN, typename O, typename I, typename F>
void launch_map(const char* name, const Tensor& out, const std::array<const Tensor*, NIN>& ins, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  cudaStream_t stream = current_stream(out.device());
  PtrArray<const I*, NIN> ptrs;
  bool contiguous = out.is_contiguous();
  constexpr int kVec = 16 / (sizeof(I) > sizeof(O) ? sizeof(I) : sizeof(O));
  bool aligned = reinterpret_cast<uintptr_t>(out.raw_data()) % (sizeof(O) * kVec) == 0;
  for (int k = 0; k < NIN; ++k) {
    ptrs.p[k] = static_cast<const I*>(ins[size_t(k)]->raw_data());
    contiguous = contiguous && ins[size_t(k)]->is_contiguous();
    aligned = aligned && reinterpret_cast<uintptr_t>(ptrs.p[k]) % (sizeof(I) * kVec) == 0;
  }
  O* o = static_cast<O*>(out.raw_data());
  if (contiguous && aligned) {
    map_contiguous_kernel<NIN, kVec, O, I, F>
        <<<grid_for((n + kVec - 1) / kVec), kBlockSize, 0, stream>>>(o, ptrs, n, f);
  } else {
    std::array<const Shape*, size_t(NIN + 1)> strides;
    strides[0] = &out.strides();
    for (int k = 0; k < NIN; ++k) strides[size_t(k + 1)] = &ins[size_t(k)]->strides();
    const OffsetCalc<NIN + 1> calc = make_offset_calc<NIN + 1>(out.shape(), strides);
    map_strided_kernel<NIN, O, I, F><<<grid_for(n), kBlockSize, 0, stream>>>(o, ptrs, n, calc, f);
  }
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(__FILE__, __LINE__, name, err);
}

// out element = convert(x): the dtype cast of copy.
template <typename D, typename S>
struct CastFn {
  __device__ D operator()(S x) const { return to_element<D>(x); }
};

}  // namespace zt::cuda
