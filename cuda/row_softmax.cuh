// Row-wise softmax statistics shared by the softmax and cross-entropy kernels: the row max and
// the sum of exp(x - max) in one read of the row (online softmax), with 16-byte loads when the
// row layout allows (Vec from cuda/elementwise.cuh; `vectorizable` also serves the layer norm).
#pragma once
#include <cstdint>
#include <initializer_list>

#include "cuda/elementwise.cuh"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {

__device__ __forceinline__ float f_exp(float x) { return expf(x); }
__device__ __forceinline__ double f_exp(double x) { return exp(x); }
__device__ __forceinline__ float f_log(float x) { return logf(x); }
__device__ __forceinline__ double f_log(double x) { return log(x); }

// exp for the row kernels of element type T: f16/bf16 results are rounded to 8-11 mantissa bits,
// so they take the hardware ex2.approx form (__expf: 2 instructions, relative error ~1e-6 for
// the x <= 0 arguments used here) instead of the ~20-instruction accurate expf, which made the
// 16-bit kernels compute-bound (twice the elements per byte of f32). f32/f64 keep the
// accurate exp for their 1e-5 / 1e-11 parity bounds.
template <typename T, typename A>
__device__ __forceinline__ A row_exp(A x) {
  if constexpr (sizeof(T) == 2) {
    return __expf(x);
  } else {
    return f_exp(x);
  }
}

// Folds V values into a running (max, sum of exp(x - max)); -inf terms add 0, NaNs skip the
// max (like fmax) and reach the sum.
template <typename T, int V, typename A>
__device__ __forceinline__ void online_fold(const A (&v)[V], A& mx, A& sum) {
  A m = -INFINITY;
#pragma unroll
  for (int j = 0; j < V; ++j) m = v[j] > m ? v[j] : m;
  if (m > mx) {
    sum *= row_exp<T>(A(mx - m));  // exp(-inf) = 0 before the first values
    mx = m;
  }
#pragma unroll
  for (int j = 0; j < V; ++j)
    if (v[j] != A(-INFINITY)) sum += row_exp<T>(A(v[j] - mx));
}

// Row max and sum of exp(x - max) of this thread's elements of one row in one read (online
// softmax): the sum is rescaled whenever the running max grows. V elements per 16-byte load
// (V = 1: scalar loads); kUnroll loads are issued before any is used, so each thread keeps
// kUnroll * 16 bytes in flight (one load at a time left long rows latency-bound).
template <int V, typename A, typename T>
__device__ __forceinline__ void thread_max_sum(const T* xr, int64_t cols, A& mx, A& sum) {  // xr (C)
  constexpr int kUnroll = 4;
  mx = -INFINITY;
  sum = 0;
  const int64_t step = int64_t(blockDim.x) * V;
  int64_t c = int64_t(threadIdx.x) * V;
  for (; c + (kUnroll - 1) * step < cols; c += kUnroll * step) {
    Vec<T, V> xv[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) xv[u] = *reinterpret_cast<const Vec<T, V>*>(xr + c + u * step);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      A v[V];
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] = to_compute(xv[u].v[j]);
      online_fold<T>(v, mx, sum);
    }
  }
  for (; c < cols; c += step) {
    const Vec<T, V> xv = *reinterpret_cast<const Vec<T, V>*>(xr + c);
    A v[V];
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = to_compute(xv.v[j]);
    online_fold<T>(v, mx, sum);
  }
}

// Block-wide row max and sum of exp(x - max) from each thread's (mx, sum); every thread gets
// them. An all -inf row gives a NaN sum, as the two-pass form did.
template <typename T, typename A>
__device__ __forceinline__ void block_max_sum(A thread_mx, A thread_sum, A* shared, A& mx, A& sum) {
  mx = block_reduce<A, true>(thread_mx, shared);
  sum = block_reduce<A, false>(A(thread_sum * row_exp<T>(A(thread_mx - mx))), shared);
}

// Rows can be read and written v elements (16 bytes) at a time: every row starts 16-byte
// aligned (aligned bases, cols a multiple of v) and no row ends mid-vector.
// Whether `kernel` can run blocks of `threads` threads (registers permitting): the register-
// cached row kernels fall back to their streaming form when not.
template <typename Kernel>
bool launchable(Kernel kernel, int threads) {
  cudaFuncAttributes attr{};
  ZT_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  return threads <= attr.maxThreadsPerBlock;
}

inline bool vectorizable(int64_t cols, int v, std::initializer_list<const void*> bases) {
  if (cols % v != 0) return false;
  for (const void* p : bases)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

}  // namespace zt::cuda
