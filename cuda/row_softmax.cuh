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

// Row max and sum of exp(x - max) of this thread's elements of one row in one read (online
// softmax): the sum is rescaled whenever the running max grows. V elements per 16-byte load
// (V = 1: scalar loads). NaNs are skipped by the max (like fmax) and reach the sum; -inf terms
// add 0.
template <int V, typename A, typename T>
__device__ __forceinline__ void thread_max_sum(const T* xr, int64_t cols, A& mx, A& sum) {  // xr (C)
  mx = -INFINITY;
  sum = 0;
  for (int64_t c = int64_t(threadIdx.x) * V; c < cols; c += int64_t(blockDim.x) * V) {
    const Vec<T, V> xv = *reinterpret_cast<const Vec<T, V>*>(xr + c);
    A v[V];
    A m = -INFINITY;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      v[j] = to_compute(xv.v[j]);
      m = v[j] > m ? v[j] : m;
    }
    if (m > mx) {
      sum *= f_exp(A(mx - m));  // exp(-inf) = 0 before the first values
      mx = m;
    }
#pragma unroll
    for (int j = 0; j < V; ++j)
      if (v[j] != A(-INFINITY)) sum += f_exp(A(v[j] - mx));
  }
}

// Block-wide row max and sum of exp(x - max) from each thread's (mx, sum); every thread gets
// them. An all -inf row gives a NaN sum, as the two-pass form did.
template <typename A>
__device__ __forceinline__ void block_max_sum(A thread_mx, A thread_sum, A* shared, A& mx, A& sum) {
  mx = block_reduce<A, true>(thread_mx, shared);
  sum = block_reduce<A, false>(A(thread_sum * f_exp(A(thread_mx - mx))), shared);
}

// Rows can be read and written v elements (16 bytes) at a time: every row starts 16-byte
// aligned (aligned bases, cols a multiple of v) and no row ends mid-vector.
inline bool vectorizable(int64_t cols, int v, std::initializer_list<const void*> bases) {
  if (cols % v != 0) return false;
  for (const void* p : bases)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

}  // namespace zt::cuda
