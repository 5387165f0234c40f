// Row-wise softmax statistics shared by the softmax and cross-entropy kernels: the row max and
// the sum of exp(x - max) in one read of the row (online softmax), with 16-byte loads when the
// row layout allows (Vec from cuda/elementwise.cuh; `vectorizable` also serves the layer norm).
// Also the pieces of the shared-memory staged row kernels (Note [Staged row kernels]): cp.async
// copies and the resident grid of a row loop.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <mutex>
#include <tuple>

#include "cuda/elementwise.cuh"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {

__device__ __forceinline__ float f_exp(float x) { return expf(x); }
__device__ __forceinline__ double f_exp(double x) { return exp(x); }
__device__ __forceinline__ float f_log(float x) { return logf(x); }
__device__ __forceinline__ double f_log(double x) { return log(x); }

inline constexpr float kLog2e = 1.4426950408889634f;

// 2^x by the hardware ex2.approx (one MUFU instruction, ~2 ulp); results below 2^-126 flush to 0.
__device__ __forceinline__ float ex2_approx_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// exp for the row kernels of element type T: f16/bf16 results are rounded to 8-11 mantissa bits,
// so they take the hardware ex2.approx (2 instructions with the log2(e) scaling; relative error
// ~1e-6) instead of the ~20-instruction accurate expf, which made the 16-bit kernels
// compute-bound (twice the elements per byte of f32). __expf was the same ex2 plus a subnormal
// range fix-up (6 instructions): here results below 2^-126 flush to 0, an absolute error under
// 1.2e-38. f32/f64 keep the accurate exp for their 1e-5 / 1e-11 parity bounds.
template <typename T, typename A>
__device__ __forceinline__ A row_exp(A x) {
  if constexpr (sizeof(T) == 2) {
    return ex2_approx_ftz(x * kLog2e);
  } else {
    return f_exp(x);
  }
}

// exp(x - shift) for every element of a row with one shift: for 16-bit T one FFMA and one ex2
// (shift * log2(e) computed once), else row_exp of the difference. exp(-inf - shift) = 0 and NaNs
// stay NaN, as with exp(x - shift).
template <typename T, typename A>
struct ExpMinus {
  A shift, shift_log2;
  __device__ __forceinline__ explicit ExpMinus(A s) : shift(s), shift_log2(A(s * A(kLog2e))) {}
  __device__ __forceinline__ A operator()(A x) const {
    if constexpr (sizeof(T) == 2) {
      return ex2_approx_ftz(fmaf(x, kLog2e, -shift_log2));
    } else {
      return f_exp(A(x - shift));
    }
  }
};

// The shift of exp(x - shift) for a running max `mx`: mx itself, or 0 while it is -inf (no
// finite value yet), so that -inf values add exp(-inf) = 0 and NaNs still reach the sum (the
// two-pass form skipped -inf values and let NaNs through).
template <typename A>
__device__ __forceinline__ A exp_shift(A mx) {
  return mx == A(-INFINITY) ? A(0) : mx;
}

// max(m, v) for a running max m that is never NaN: NaN values are skipped (fmax's rule), one
// FMNMX instead of a compare and a select.
__device__ __forceinline__ float max_skip_nan(float m, float v) { return fmaxf(m, v); }
__device__ __forceinline__ double max_skip_nan(double m, double v) { return fmax(m, v); }

// Folds V values into a running (max, sum of exp(x - max)); -inf terms add 0, NaNs skip the
// max (like fmax) and reach the sum.
template <typename T, int V, typename A>
__device__ __forceinline__ void online_fold(const A (&v)[V], A& mx, A& sum) {
  A m = mx;
#pragma unroll
  for (int j = 0; j < V; ++j) m = max_skip_nan(m, v[j]);
  if (m > mx) {
    sum *= row_exp<T>(A(mx - m));  // exp(-inf) = 0 before the first values
    mx = m;
  }
  const ExpMinus<T, A> e(exp_shift(mx));
#pragma unroll
  for (int j = 0; j < V; ++j) sum += e(v[j]);
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

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// Merges (other_mx, other_sum) into the partial (mx, sum) of the same row: both sums rescaled to
// the larger max. Symmetric to the last bit (the products are rounded before the add, never
// contracted into an FMA), so both lanes of a butterfly step agree. Equal maxes (also two -inf)
// scale by exactly 1; a NaN sum stays NaN.
template <typename T, typename A>
__device__ __forceinline__ void merge_max_sum(A& mx, A& sum, A other_mx, A other_sum) {
  const A m = other_mx > mx ? other_mx : mx;
  const A a = mx == m ? A(1) : row_exp<T>(A(mx - m));
  const A b = other_mx == m ? A(1) : row_exp<T>(A(other_mx - m));
  sum = mul_rn(sum, a) + mul_rn(other_sum, b);
  mx = m;
}

template <typename T, typename A>
__device__ __forceinline__ void warp_merge_max_sum(A& mx, A& sum) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) merge_max_sum<T>(mx, sum, shfl_xor(mx, o), shfl_xor(sum, o));
}

// Block-wide (max, sum of exp(x - max)) of a row from every thread's partial pair, in one
// reduction (two barriers; block_max_sum takes four). Every thread gets the same result. An all
// -inf row gives (-inf, 0), so its outputs (exp(x - max) / sum, max + log(sum)) are NaN as on the
// CPU. `shared` holds 64 values.
template <typename T, typename A>
__device__ __forceinline__ void block_merge_max_sum(A& mx, A& sum, A* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int warps = (blockDim.x + 31) / 32;
  warp_merge_max_sum<T>(mx, sum);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) {
    shared[warp] = mx;
    shared[32 + warp] = sum;
  }
  __syncthreads();
  mx = lane < warps ? shared[lane] : A(-INFINITY);
  sum = lane < warps ? shared[32 + lane] : A(0);
  warp_merge_max_sum<T>(mx, sum);
}

// Whether `kernel` can run blocks of `threads` threads (registers permitting): the register-
// cached row kernels fall back to their streaming form when not.
template <typename Kernel>
bool launchable(Kernel kernel, int threads) {
  cudaFuncAttributes attr{};
  ZT_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  return threads <= attr.maxThreadsPerBlock;
}

// Rows can be read and written v elements (16 bytes) at a time: every row starts 16-byte
// aligned (aligned bases, cols a multiple of v) and no row ends mid-vector.
inline bool vectorizable(int64_t cols, int v, std::initializer_list<const void*> bases) {
  if (cols % v != 0) return false;
  for (const void* p : bases)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

// Note [Staged row kernels]
// The row kernels that were latency-bound on the H200 (bf16 softmax forward, layer-norm
// backward, cross-entropy) move rows from HBM into shared memory with cp.async, 16 bytes per
// copy, without passing through registers, so a block keeps one or two whole rows in flight
// while it computes on another (or, for the cross-entropy, holds a whole 50304-wide row that
// would not fit in registers). Each thread copies and later reads only its own vectors (vector
// i * blockDim.x + threadIdx.x of the row, i = 0, 1, ...): cp.async.wait_group alone then makes
// a thread's copies visible to it, no barrier is needed between copy and use, and a warp's
// copies and reads touch consecutive 16-byte words (no bank conflicts). A buffer is refilled
// only after a block barrier that follows the last reads of it (the row's block reduction) or
// after the value read from it has been consumed by a store of the same thread. Grids are the
// blocks that fit on the device at once (resident_grid), each looping over rows blockIdx.x,
// + gridDim.x, ...: no block launch per row and no tail of short-lived blocks.

// Copies 16 bytes from global to shared memory asynchronously (cp.async.cg: through L2 only).
// Both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(__cvta_generic_to_global(gmem))
               : "memory");
#else
  *static_cast<uint4*>(smem) = *static_cast<const uint4*>(gmem);
#endif
}

// Closes the group of this thread's cp.async copies issued since the last commit (an empty
// group when none were).
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most N of this thread's committed groups are still in flight; the copies of
// the others are then visible to this thread.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// Blocks of `kernel` with `threads` threads and `smem` bytes of dynamic shared memory that fit
// on one SM of `device` (0 when none: too many registers or too much shared memory). Dynamic
// shared memory over the 48 KiB default is opted into here, up to the device's limit. Cached
// per (kernel, threads, smem, device): the launchers call this on every launch.
inline int blocks_per_sm(const void* kernel, int threads, size_t smem, int device) {
  static std::mutex mutex;
  static std::map<std::tuple<const void*, int, size_t, int>, int> cache;
  const auto key = std::make_tuple(kernel, threads, smem, device);
  std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = cache.find(key); it != cache.end()) return it->second;
  cudaFuncAttributes attr{};
  ZT_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  int optin = 0;
  ZT_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  int per_sm = 0;
  if (threads <= attr.maxThreadsPerBlock && smem + attr.sharedSizeBytes <= size_t(optin)) {
    // Static and dynamic shared memory together over the 48 KiB default need the opt-in; always
    // to the device maximum, so that a later, smaller opt-in never undoes a larger one.
    if (smem + attr.sharedSizeBytes > (size_t(48) << 10))
      ZT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         optin - int(attr.sharedSizeBytes)));
    ZT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  }
  cache.emplace(key, per_sm);
  return per_sm;
}

inline int sm_count(int device) {
  int sms = 0;
  ZT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

// ZT_ROW_GRID_CAP=N in the environment caps the grids of resident_grid at N blocks (read
// once). For tests: the parity cases have fewer rows than resident blocks, so without it every
// block computes one row and the row-to-row staging of the loop is never exercised.
inline int64_t row_grid_cap() {
  static const int64_t cap = [] {
    const char* v = std::getenv("ZT_ROW_GRID_CAP");
    const long long n = v ? std::atoll(v) : 0;
    return n > 0 ? int64_t(n) : INT64_MAX;
  }();
  return cap;
}

// The grid of a row loop over `rows` rows: every block that fits on the device at once (at
// least min_per_sm per SM), capped by the rows; 0 when fewer than min_per_sm blocks fit on an SM
// (the caller then takes another kernel).
template <typename Kernel>
int64_t resident_grid(Kernel kernel, int threads, size_t smem, int64_t rows, int device, int min_per_sm = 1) {
  const int per_sm = blocks_per_sm(reinterpret_cast<const void*>(kernel), threads, smem, device);
  if (per_sm < min_per_sm || rows < 1) return 0;
  return std::min({rows, int64_t(per_sm) * sm_count(device), row_grid_cap()});
}

}  // namespace zt::cuda
