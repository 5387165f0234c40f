// CUDA softmax / log-softmax over the last dim of contiguous (rows, C) data, and the backward.
// f16/bf16 rows that fit are staged through shared memory by a resident grid, two rows in flight
// per block while it computes a third (Note [Staged row kernels] in row_softmax.cuh). Otherwise
// one block per row: rows up to 1024 * 4 vectors are held in registers (one read, one exp per
// element); longer rows stream: the row max with the sum of exp(x - max) in one read (online
// softmax), then the outputs. 16-byte loads and stores when the row length allows; computed in
// float (double for f64) like the CPU kernel (core/cpu/kernels_softmax.cpp).
#include <algorithm>

#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/kernel_utils.cuh"
#include "cuda/row_softmax.cuh"

namespace zt::cuda {
namespace {

template <int V, typename T>
__global__ void softmax_kernel(T* y, const T* x, int64_t rows, int64_t cols, bool log) {  // (rows, C)
  using A = compute_t<T>;
  __shared__ A shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    A tmx, tsum, mx, sum;
    thread_max_sum<V>(xr, cols, tmx, tsum);
    block_max_sum<T>(tmx, tsum, shared, mx, sum);
    const A lse = mx + f_log(sum), inv = A(1) / sum;
    for (int64_t c = int64_t(threadIdx.x) * V; c < cols; c += int64_t(blockDim.x) * V) {
      const Vec<T, V> xv = *reinterpret_cast<const Vec<T, V>*>(xr + c);
      Vec<T, V> yv;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A v = to_compute(xv.v[j]);
        yv.v[j] = log ? to_element<T>(A(v - lse)) : to_element<T>(A(row_exp<T>(A(v - mx)) * inv));
      }
      *reinterpret_cast<Vec<T, V>*>(yr + c) = yv;
    }
  }
}

// Rows of up to blockDim.x * V * K elements held in registers: each thread issues its K loads
// at once, then max, sum and the outputs come from registers, so a row is read from memory
// once (the streaming kernel above reads it twice, the second time from L2, with one 16-byte
// load in flight per thread). Element j of the thread's k-th vector is at
// column (k * blockDim.x + threadIdx.x) * V + j.
template <int V, int K, typename T>
__global__ void softmax_cached_kernel(T* y, const T* x, int64_t rows, int64_t cols, bool log) {  // (rows, C)
  using A = compute_t<T>;
  __shared__ A shared[32];
  // Registers hold the raw vectors (f16/bf16 packed two to a register) and values are converted
  // where used: the float copy of a bf16 row doubled the registers and cut the blocks per SM.
  auto col = [&](int k) { return (int64_t(k) * blockDim.x + threadIdx.x) * V; };
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    Vec<T, V> raw[K];
#pragma unroll
    for (int k = 0; k < K; ++k)
      if (col(k) < cols) raw[k] = *reinterpret_cast<const Vec<T, V>*>(xr + col(k));
    A m = -INFINITY;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (col(k) >= cols) continue;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A v = to_compute(raw[k].v[j]);
        m = v > m ? v : m;
      }
    }
    const A mx = block_reduce<A, true>(m, shared);
    A s = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (col(k) >= cols) continue;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A v = to_compute(raw[k].v[j]);
        if (v != A(-INFINITY)) s += row_exp<T>(A(v - mx));  // -inf adds 0
      }
    }
    const A sum = block_reduce<A, false>(s, shared);
    const A lse = mx + f_log(sum), inv = A(1) / sum;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (col(k) >= cols) continue;
      Vec<T, V> yv;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A v = to_compute(raw[k].v[j]);
        yv.v[j] = to_element<T>(log ? A(v - lse) : A(row_exp<T>(A(v - mx)) * inv));
      }
      *reinterpret_cast<Vec<T, V>*>(yr + col(k)) = yv;
    }
  }
}

// Vectors per thread and rows in shared memory per block of the staged forward.
constexpr int kStagedVecs = 4, kStages = 3;

// The staged forward for 16-bit rows of up to blockDim.x * K vectors of 8 (Note [Staged row
// kernels]): while a block computes row r, its copies of rows r + gridDim.x and r + 2 * gridDim.x
// are in flight (kStages buffers of (K, blockDim.x) vectors). The row goes from shared memory to
// registers once (packed); each thread's max and sum of exp(x - its max) merge in one block
// reduction; the outputs are exp(x - lse) or x - lse. Each exp is one FFMA and one ex2.
// The register-cached kernel above measured 69% of copy bandwidth on the H200 for bf16
// (65536, 8192): one row (16 KB) per block in flight only until its loads landed, then four
// barriers, two exps of about 6 instructions each per element.
template <int K, bool kLog, typename T>
__global__ void softmax_staged_kernel(T* y, const T* x, int64_t rows, int64_t cols) {  // (rows, C)
  static_assert(sizeof(T) == 2, "the staged softmax takes f16/bf16 rows");
  constexpr int V = 8;
  using A = float;
  using VT = Vec<T, V>;
  __shared__ A shared[64];
  extern __shared__ __align__(16) unsigned char softmax_stages[];
  VT* stages = reinterpret_cast<VT*>(softmax_stages);  // (kStages, K, blockDim.x) vectors
  const int64_t nvec = cols / V, step = gridDim.x;
  const int nt = blockDim.x, tid = threadIdx.x;
  auto vec = [&](int k) { return int64_t(k) * nt + tid; };  // the thread's k-th vector of a row
  auto slot = [&](int s, int k) { return stages + (int64_t(s) * K + k) * nt + tid; };
  // Queues the copies of row r into buffer s as one group (empty past the last row, so that
  // every iteration commits exactly one group).
  auto issue = [&](int64_t r, int s) {
    if (r < rows) {
      const VT* src = reinterpret_cast<const VT*>(x + r * cols);
#pragma unroll
      for (int k = 0; k < K; ++k)
        if (vec(k) < nvec) cp_async16(slot(s, k), src + vec(k));
    }
    cp_async_commit();
  };
  int64_t r = blockIdx.x;
  for (int s = 0; s < kStages - 1; ++s) issue(r + s * step, s);
  for (int s = 0; r < rows; r += step, s = s + 1 == kStages ? 0 : s + 1) {
    // Buffer s - 1 was last read before the previous row's block reduction (its barriers).
    issue(r + (kStages - 1) * step, s == 0 ? kStages - 1 : s - 1);
    cp_async_wait<kStages - 1>();  // row r's group has landed
    uint4 raw[K];  // packed: two 16-bit elements a register
#pragma unroll
    for (int k = 0; k < K; ++k)
      if (vec(k) < nvec) raw[k] = *reinterpret_cast<const uint4*>(slot(s, k));
    A mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
#pragma unroll
      for (int j = 0; j < V; ++j) mx = max_skip_nan(mx, packed_element<T>(raw[k], j));
    }
    A sum = 0;
    const ExpMinus<T, A> e(exp_shift(mx));
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
#pragma unroll
      for (int j = 0; j < V; ++j) sum += e(packed_element<T>(raw[k], j));
    }
    block_merge_max_sum<T>(mx, sum, shared);
    const A lse = mx + f_log(sum);
    const ExpMinus<T, A> p(lse);
    VT* yr = reinterpret_cast<VT*>(y + r * cols);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (vec(k) >= nvec) continue;
      VT out;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A v = packed_element<T>(raw[k], j);
        out.v[j] = to_element<T>(kLog ? A(v - lse) : p(v));
      }
      yr[vec(k)] = out;
    }
  }
  cp_async_wait<0>();
}

// The register-cached backward: gout and y of the row held in registers (same layout as
// softmax_cached_kernel), so each is read once (the streaming kernel reads both twice).
template <int V, int K, typename T>
__global__ void softmax_backward_cached_kernel(T* gin, const T* gout, const T* y, int64_t rows, int64_t cols,
                                               bool log) {  // (rows, C) each
  using A = compute_t<T>;
  __shared__ A shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = gout + r * cols;
    const T* yr = y + r * cols;
    T* dr = gin + r * cols;
    Vec<T, V> graw[K], yraw[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t c = (int64_t(k) * blockDim.x + threadIdx.x) * V;
      if (c < cols) {
        graw[k] = *reinterpret_cast<const Vec<T, V>*>(gr + c);
        yraw[k] = *reinterpret_cast<const Vec<T, V>*>(yr + c);
      }
    }
    A dot = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if ((int64_t(k) * blockDim.x + threadIdx.x) * V >= cols) continue;
#pragma unroll
      for (int j = 0; j < V; ++j)
        dot += log ? A(to_compute(graw[k].v[j])) : A(to_compute(graw[k].v[j])) * A(to_compute(yraw[k].v[j]));
    }
    dot = block_reduce<A, false>(dot, shared);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t c = (int64_t(k) * blockDim.x + threadIdx.x) * V;
      if (c >= cols) continue;
      Vec<T, V> dv;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A g = to_compute(graw[k].v[j]), v = to_compute(yraw[k].v[j]);
        dv.v[j] = to_element<T>(log ? A(g - f_exp(v) * dot) : A(v * (g - dot)));
      }
      *reinterpret_cast<Vec<T, V>*>(dr + c) = dv;
    }
  }
}

// softmax: gin = y * (gout - sum(gout * y)); log-softmax: gin = gout - exp(y) * sum(gout).
template <int V, typename T>
__global__ void softmax_backward_kernel(T* gin, const T* gout, const T* y, int64_t rows, int64_t cols,
                                        bool log) {  // (rows, C) each
  using A = compute_t<T>;
  __shared__ A shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = gout + r * cols;
    const T* yr = y + r * cols;
    T* dr = gin + r * cols;
    A dot = 0;
    for (int64_t c = int64_t(threadIdx.x) * V; c < cols; c += int64_t(blockDim.x) * V) {
      const Vec<T, V> gv = *reinterpret_cast<const Vec<T, V>*>(gr + c);
      const Vec<T, V> yv = *reinterpret_cast<const Vec<T, V>*>(yr + c);
#pragma unroll
      for (int j = 0; j < V; ++j)
        dot += log ? A(to_compute(gv.v[j])) : A(to_compute(gv.v[j])) * A(to_compute(yv.v[j]));
    }
    dot = block_reduce<A, false>(dot, shared);
    for (int64_t c = int64_t(threadIdx.x) * V; c < cols; c += int64_t(blockDim.x) * V) {
      const Vec<T, V> gv = *reinterpret_cast<const Vec<T, V>*>(gr + c);
      const Vec<T, V> yv = *reinterpret_cast<const Vec<T, V>*>(yr + c);
      Vec<T, V> dv;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A g = to_compute(gv.v[j]), v = to_compute(yv.v[j]);
        dv.v[j] = to_element<T>(log ? A(g - f_exp(v) * dot) : A(v * (g - dot)));
      }
      *reinterpret_cast<Vec<T, V>*>(dr + c) = dv;
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

constexpr int kMaxCachedBlock = 1024;

// Threads for a register-cached row of `cols` elements in vectors of v, k vectors per thread:
// every thread full where possible, whole warps; 0 when the row is too long to cache.
int cached_block(int64_t cols, int v, int k) {
  const int64_t per_thread = int64_t(v) * k;
  const int64_t threads = (cols + per_thread - 1) / per_thread;
  if (threads > kMaxCachedBlock) return 0;
  return int(std::max<int64_t>(32, (threads + 31) / 32 * 32));
}

// Queues the staged forward when x is f16/bf16, 16-byte aligned rows of at most 1024 * K
// vectors and at least two blocks fit on an SM; false (nothing queued) otherwise.
template <typename T>
bool launch_softmax_staged(T* y, const T* x, RowShape rs, bool log, int device, cudaStream_t stream) {
  if constexpr (sizeof(T) != 2) {
    return false;
  } else {
    constexpr int V = 8;
    if (!vectorizable(rs.cols, V, {y, x})) return false;
    const int64_t nvec = rs.cols / V;
    const int64_t threads = std::max<int64_t>(32, ((nvec + kStagedVecs - 1) / kStagedVecs + 31) / 32 * 32);
    if (threads > kMaxCachedBlock) return false;
    const size_t smem = size_t(kStages) * kStagedVecs * size_t(threads) * sizeof(Vec<T, V>);
    auto kernel = log ? softmax_staged_kernel<kStagedVecs, true, T> : softmax_staged_kernel<kStagedVecs, false, T>;
    const int64_t grid = resident_grid(kernel, int(threads), smem, rs.rows, device, 2);
    if (grid == 0) return false;
    kernel<<<unsigned(grid), unsigned(threads), smem, stream>>>(y, x, rs.rows, rs.cols);
    return true;
  }
}

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
    constexpr int kV = 16 / int(sizeof(T));
    T* o = device_data<T>(out);
    const T* i = device_data<T>(x);
    if (launch_softmax_staged<T>(o, i, rs, log, device, current_stream(device))) {
      ZT_CUDA_LAUNCH_CHECK("softmax_staged_kernel");
      return;
    }
    auto launch = [&](auto kernel) {
      kernel<<<row_grid(rs.rows), row_block(rs.cols), 0, current_stream(device)>>>(o, i, rs.rows, rs.cols, log);
    };
    // Vectors per thread, measured on an H200 for (rows, 8192): 2 for 16-bit rows (70% of copy
    // bandwidth; 4 and 8 gave 47% and 68%), 4 for f32 (81%; the streaming kernel 79%).
    constexpr int kK = sizeof(T) == 2 ? 2 : 4;
    const bool vec = vectorizable(rs.cols, kV, {o, i});
    const int block = cached_block(rs.cols, vec ? kV : 1, kK);
    auto cached = vec ? softmax_cached_kernel<kV, kK, T> : softmax_cached_kernel<1, kK, T>;
    if (block > 0 && launchable(cached, block)) {
      cached<<<row_grid(rs.rows), block, 0, current_stream(device)>>>(o, i, rs.rows, rs.cols, log);
    } else if (vec) {
      launch(softmax_kernel<kV, T>);
    } else {
      launch(softmax_kernel<1, T>);
    }
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
    constexpr int kV = 16 / int(sizeof(T));
    T* gi = device_data<T>(grad_in);
    const T* go = device_data<T>(grad_out);
    const T* y = device_data<T>(out);
    auto launch = [&](auto kernel) {
      kernel<<<row_grid(rs.rows), row_block(rs.cols), 0, current_stream(device)>>>(gi, go, y, rs.rows, rs.cols,
                                                                                   log);
    };
    // 8 vectors per thread: 104% / 103% of copy bandwidth for bf16 / f32 (rows, 8192) on an
    // H200, where 4 gave 51% / 100% and the streaming kernel 98% / 75%.
    constexpr int kK = 8;
    const bool vec = vectorizable(rs.cols, kV, {gi, go, y});
    const int block = cached_block(rs.cols, vec ? kV : 1, kK);
    auto cached = vec ? softmax_backward_cached_kernel<kV, kK, T> : softmax_backward_cached_kernel<1, kK, T>;
    if (block > 0 && launchable(cached, block)) {
      cached<<<row_grid(rs.rows), block, 0, current_stream(device)>>>(gi, go, y, rs.rows, rs.cols, log);
    } else if (vec) {
      launch(softmax_backward_kernel<kV, T>);
    } else {
      launch(softmax_backward_kernel<1, T>);
    }
    ZT_CUDA_LAUNCH_CHECK("softmax_backward_kernel");
  }));
}

}  // namespace zt::cuda
