// What the CUDA layer norm's forward (kernels_layer_norm.cu) and backward
// (kernels_layer_norm_backward.cu) share: the row loads, the argument checks and the launch
// shapes of the row kernels.
#pragma once
#include <algorithm>

#include "cuda/cuda_backend.h"
#include "cuda/elementwise.cuh"  // Vec: 16-byte loads and stores
#include "cuda/kernel_utils.cuh"

namespace zt::cuda::layer_norm_rows {

// Loads V elements of a row at c (one 16-byte load when V > 1) in the compute type.
template <int V, typename A, typename T>
__device__ __forceinline__ void load_row(A (&out)[V], const T* row, int64_t c) {
  const Vec<T, V> v = *reinterpret_cast<const Vec<T, V>*>(row + c);
#pragma unroll
  for (int j = 0; j < V; ++j) out[j] = A(to_compute(v.v[j]));
}

struct Rows {
  int64_t n, c;
};

inline Rows check_rows(const Tensor& x, const char* op) {
  ZT_CHECK(x.dim() >= 1 && x.is_contiguous(), op, ": x must be contiguous with at least 1 dim, found ",
           x.str(), " with strides ", shape_str(x.strides()));
  const int64_t c = x.size(-1);
  return {c == 0 ? 0 : x.numel() / c, c};
}

inline void check_like(const Tensor& t, const Tensor& x, const Shape& shape, const char* op, const char* what) {
  ZT_CHECK(t.shape() == shape && t.dtype() == x.dtype() && t.is_contiguous(), op, ": ", what,
           " must be contiguous of shape ", shape_str(shape), " and dtype ", dtype_name(x.dtype()),
           ", found ", t.str());
}

inline void check_stats(const Tensor& mean, const Tensor& rstd, int64_t n, const char* op) {
  for (const Tensor* t : {&mean, &rstd}) {
    ZT_CHECK(t->numel() == n && t->is_contiguous() && (t->dtype() == DType::f32 || t->dtype() == DType::f64),
             op, ": mean and rstd must be contiguous f32 (or f64) tensors of ", n, " elements, found ", t->str());
  }
  ZT_CHECK(mean.dtype() == rstd.dtype(), op, ": mean and rstd must share a dtype, found ",
           dtype_name(mean.dtype()), " and ", dtype_name(rstd.dtype()));
}

template <typename T>
inline const T* data_or_null(const Tensor& t) {
  return t.defined() ? device_data<T>(t) : nullptr;
}

inline unsigned row_grid(int64_t rows) { return unsigned(rows < 65536 ? (rows < 1 ? 1 : rows) : 65536); }
inline int row_block(int64_t cols) { return cols <= 128 ? 32 : (cols <= 1024 ? 128 : 512); }

// 16-byte vector i of the weight as raw bits, or ones when there is no weight, so that the
// element loops multiply without a select per element.
template <typename T>
__device__ __forceinline__ uint4 weight_vector(const T* w, int64_t i) {
  if (w) return reinterpret_cast<const uint4*>(w)[i];
  Vec<T, 16 / int(sizeof(T))> ones;
#pragma unroll
  for (int j = 0; j < 16 / int(sizeof(T)); ++j) ones.v[j] = to_element<T>(compute_t<T>(1));
  return *reinterpret_cast<const uint4*>(&ones);
}

// Rows of at most 32 * kWarpRowVecs 16-byte vectors (a 16-bit row of up to 1024) take a warp
// each, forward and backward.
constexpr int kWarpRowVecs = 4;

// Vectors per thread of the register-cached kernels, and their widest block.
constexpr int kCachedVecs = 4;
constexpr int kMaxCachedBlock = 1024;

// Threads for a register-cached row (whole warps, k vectors each where possible); 0 when the
// row is too long to cache.
inline int cached_block(int64_t cols, int v, int k = kCachedVecs) {
  const int64_t per_thread = int64_t(v) * k;
  const int64_t threads = (cols + per_thread - 1) / per_thread;
  if (threads > kMaxCachedBlock) return 0;
  return int(std::max<int64_t>(32, (threads + 31) / 32 * 32));
}

}  // namespace zt::cuda::layer_norm_rows
