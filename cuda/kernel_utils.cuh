// Shared device helpers for the CUDA kernels: element conversions (f16/bf16 computed in f32,
// as on the CPU), the strided offset calculator used for views and broadcasts, launch sizes
// and the dtype dispatch into device types.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <type_traits>

#include "core/cpu/strided.h"  // collapse_dims: the one dim-merging rule, shared with the CPU
#include "core/tensor.h"
#include "cuda/cuda_check.h"

namespace zt::cuda {

// ---- element conversions ----

// Arithmetic type of an element type: f32 for f16/bf16, int for bool, the type itself otherwise
// (the CPU's arith_t).
template <typename T>
using arith_t = std::conditional_t<std::is_same_v<T, bool>, int, compute_t<T>>;

template <typename T>
__device__ __forceinline__ compute_t<T> to_compute(T v) {
  if constexpr (std::is_same_v<T, Half>) {
    return __half2float(__ushort_as_half(v.bits));
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return __bfloat162float(__ushort_as_bfloat16(v.bits));
  } else {
    return v;
  }
}

// Conversion of a stored element into its arithmetic type (bool -> int, f16/bf16 -> float).
template <typename T>
__device__ __forceinline__ arith_t<T> to_arith(T v) {
  return arith_t<T>(to_compute(v));
}

// Converts any arithmetic value to element type D; bool takes "nonzero" (the CPU's
// convert_element), f16/bf16 round to nearest even from f32.
template <typename D, typename S>
__device__ __forceinline__ D to_element(S v) {
  if constexpr (std::is_same_v<S, D>) {
    return v;
  } else if constexpr (std::is_same_v<S, Half> || std::is_same_v<S, BFloat16>) {
    return to_element<D>(to_compute(v));
  } else if constexpr (std::is_same_v<D, bool>) {
    return double(v) != 0.0;
  } else if constexpr (std::is_same_v<D, Half>) {
    Half h;
    h.bits = __half_as_ushort(__float2half_rn(float(v)));
    return h;
  } else if constexpr (std::is_same_v<D, BFloat16>) {
    BFloat16 h;
    h.bits = __bfloat16_as_ushort(__float2bfloat16_rn(float(v)));
    return h;
  } else if constexpr (std::is_same_v<D, uint8_t> && std::is_floating_point_v<S>) {
    // Out of range this is undefined in C++; the host (x86) truncates through a wide integer
    // and keeps the low byte, while the GPU would saturate. Do what the host does.
    return static_cast<uint8_t>(static_cast<int64_t>(v));
  } else {
    return static_cast<D>(v);
  }
}

// Element j (0 .. 16 / sizeof(T) - 1) of 16 bytes of T (f16, bf16 or f32) held as four 32-bit
// words, in the compute type: a bf16 is the upper half of an f32 (one shift or one mask), an f16
// one conversion, an f32 the word itself. Kept packed, 16-bit rows take half the registers of
// one element a register and skip the extraction (PRMT) before each conversion.
template <typename T>
__device__ __forceinline__ compute_t<T> packed_element(const uint4& u, int j) {
  static_assert(sizeof(T) == 2 || sizeof(T) == 4, "packed_element takes f16, bf16 or f32");
  const int i = sizeof(T) == 4 ? j : j / 2;
  const uint32_t w = i == 0 ? u.x : (i == 1 ? u.y : (i == 2 ? u.z : u.w));
  if constexpr (sizeof(T) == 4) {
    return __uint_as_float(w);
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return __uint_as_float(j % 2 ? (w & 0xffff0000u) : (w << 16));
  } else {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(j % 2 ? w >> 16 : w & 0xffffu)));
  }
}

// ---- strided offsets ----

inline constexpr int kMaxDims = 8;

// Maps a linear index over a shape to the element offset of each of K operands. Built on the
// host from (shape, strides) with dims merged where every operand allows it.
template <int K>
struct OffsetCalc {
  int ndim = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[K][kMaxDims];

  __device__ __forceinline__ void offsets(int64_t linear, int64_t* out) const {
    if (ndim == 1) {  // one merged dim (contiguous runs, plain strides): no division needed
#pragma unroll
      for (int k = 0; k < K; ++k) out[k] = linear * strides[k][0];
      return;
    }
#pragma unroll
    for (int k = 0; k < K; ++k) out[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t i = linear % sizes[d];
      linear /= sizes[d];
#pragma unroll
      for (int k = 0; k < K; ++k) out[k] += i * strides[k][d];
    }
  }
};

template <int K>
OffsetCalc<K> make_offset_calc(const Shape& shape, const std::array<const Shape*, size_t(K)>& strides) {
  const cpu::CollapsedLayout<size_t(K)> layout = cpu::collapse_dims<size_t(K)>(shape, strides);
  ZT_CHECK(layout.shape.size() <= size_t(kMaxDims), "CUDA kernels take views of at most ", kMaxDims,
           " non-mergeable dims, found ", layout.shape.size(), " for shape ", shape_str(shape));
  OffsetCalc<K> calc;
  calc.ndim = int(layout.shape.size());
  for (int d = 0; d < calc.ndim; ++d) {
    calc.sizes[d] = layout.shape[size_t(d)];
    for (int k = 0; k < K; ++k) calc.strides[k][d] = layout.strides[size_t(k)][size_t(d)];
  }
  return calc;
}

// ---- launch sizes ----

inline constexpr int kBlockSize = 256;

// Blocks for a grid-stride loop over n items (capped: each thread then handles several).
inline unsigned grid_for(int64_t n, int block = kBlockSize) {
  const int64_t blocks = (n + block - 1) / block;
  return unsigned(blocks < 1 ? 1 : (blocks > 65536 ? 65536 : blocks));
}

#define ZT_GRID_STRIDE_LOOP(i, n)                                                      \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);           \
       i += int64_t(blockDim.x) * gridDim.x)

// Typed device pointer of a tensor (storage + offset).
template <typename T>
inline T* device_data(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

// ---- reductions inside a block ----

// Warp shuffle for any arithmetic type (types under 32 bits travel as int).
template <typename C>
__device__ __forceinline__ C shfl_xor(C v, int offset) {
  if constexpr (sizeof(C) < 4) {
    return C(__shfl_xor_sync(0xffffffffu, int(v), offset));
  } else if constexpr (std::is_same_v<C, int64_t>) {
    return C(__shfl_xor_sync(0xffffffffu, (long long)v, offset));
  } else {
    return __shfl_xor_sync(0xffffffffu, v, offset);
  }
}

template <typename C>
__device__ __forceinline__ C warp_sum(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename C>
__device__ __forceinline__ C warp_max(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const C w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

// Sum (or max) over the block; every thread gets the result. `shared` holds 32 values.
template <typename C, bool kMax>
__device__ __forceinline__ C block_reduce(C v, C* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int warps = (blockDim.x + 31) / 32;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  C r = lane < warps ? shared[lane] : (kMax ? -INFINITY : C(0));
  if (kMax) {
    r = warp_max(r);
  } else {
    r = warp_sum(r);
  }
  return r;
}

// Two sums over the block in one reduction (two barriers instead of block_reduce's four for
// two calls); every thread gets both. `shared` holds 64 values.
template <typename C>
__device__ __forceinline__ void block_reduce_sum2(C& a, C& b, C* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int warps = (blockDim.x + 31) / 32;
  a = warp_sum(a);
  b = warp_sum(b);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) {
    shared[warp] = a;
    shared[32 + warp] = b;
  }
  __syncthreads();
  a = warp_sum(lane < warps ? shared[lane] : C(0));
  b = warp_sum(lane < warps ? shared[32 + lane] : C(0));
}

}  // namespace zt::cuda
