// CUDA cross-entropy over contiguous logits (N, C) with integer targets (N), forward and
// backward fused with the softmax, with the CPU kernel's meaning (core/cpu/
// kernels_cross_entropy.cpp): loss[n] = logsumexp(logits[n]) - logits[n, target[n]], stored as
// f32 (f64 for f64 logits; grad_loss likewise); rows whose target is ignore_index get loss 0 and
// zero gradient. A kernel cannot throw: a
// target out of range (neither in [0, C) nor ignore_index) gives a NaN loss and NaN gradients,
// which the non-finite checks of the training loop report.
//
// Rows that fit in shared memory (a bf16 row of 50304 logits is 100 KB, f32 201 KB; the H200
// allows 227 KB a block) are staged there by cp.async (Note [Staged row kernels] in
// row_softmax.cuh), so the backward reads each logit from HBM once instead of twice, and the
// next row's copies are in flight while the block works on this one. Other rows (unaligned,
// longer) take the streaming kernels, which read the row once for the statistics and the
// backward a second time for the gradient. The forward of a 16-bit row of 8192 or more logits
// is split over several blocks per row instead (below: "split rows").
#include <algorithm>
#include <climits>
#include <cmath>

#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/kernel_utils.cuh"
#include "cuda/row_softmax.cuh"

namespace zt::cuda {
namespace {

// One block per row: the row statistics in one read, then the loss from them and x[target].
template <int V, typename T, typename I, typename L>
__global__ void cross_entropy_kernel(L* loss, const T* logits, const I* target, int64_t t_stride,
                                     int64_t rows, int64_t cols, int64_t ignore_index) {  // (N, C)
  using A = compute_t<T>;
  __shared__ A shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t t = int64_t(target[r * t_stride]);
    if (t == ignore_index) {
      if (threadIdx.x == 0) loss[r] = L(0);
      continue;
    }
    const T* xr = logits + r * cols;
    A tmx, tsum, mx, sum;
    thread_max_sum<V>(xr, cols, tmx, tsum);
    block_max_sum<T>(tmx, tsum, shared, mx, sum);
    if (threadIdx.x == 0) loss[r] = (t >= 0 && t < cols) ? L(mx + f_log(sum) - A(to_compute(xr[t]))) : L(NAN);
  }
}

// One block per row: the row statistics, then grad = grad_loss * (softmax - onehot(target)).
template <int V, typename T, typename I, typename L>
__global__ void cross_entropy_backward_kernel(T* grad, const L* grad_loss, int64_t gl_stride,
                                              const T* logits, const I* target, int64_t t_stride,
                                              int64_t rows, int64_t cols, int64_t ignore_index) {
  using A = compute_t<T>;
  __shared__ A shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t t = int64_t(target[r * t_stride]);
    T* gr = grad + r * cols;
    if (t == ignore_index) {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) gr[c] = to_element<T>(A(0));
      continue;
    }
    const T* xr = logits + r * cols;
    A tmx, tsum, mx, sum;
    thread_max_sum<V>(xr, cols, tmx, tsum);
    block_max_sum<T>(tmx, tsum, shared, mx, sum);
    const bool valid = t >= 0 && t < cols;
    const A gn = A(grad_loss[r * gl_stride]);
    const A scale = valid ? gn / sum : A(NAN);
    // The second read of the row, two loads issued before either is used.
    const int64_t step = int64_t(blockDim.x) * V;
    auto write = [&](int64_t c, const Vec<T, V>& xv) {
      Vec<T, V> gv;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A p = row_exp<T>(A(A(to_compute(xv.v[j])) - mx)) * scale;
        gv.v[j] = to_element<T>(c + j == t ? A(p - gn) : p);
      }
      *reinterpret_cast<Vec<T, V>*>(gr + c) = gv;
    };
    int64_t c = int64_t(threadIdx.x) * V;
    for (; c + step < cols; c += 2 * step) {
      const Vec<T, V> x0 = *reinterpret_cast<const Vec<T, V>*>(xr + c);
      const Vec<T, V> x1 = *reinterpret_cast<const Vec<T, V>*>(xr + c + step);
      write(c, x0);
      write(c + step, x1);
    }
    if (c < cols) write(c, *reinterpret_cast<const Vec<T, V>*>(xr + c));
  }
}

// ---- staged rows ----

// A row of a staged kernel lives in shared memory as 16-byte vectors; thread t copies and reads
// vectors i * blockDim.x + t, its slots i = 0 .. kRowSlots - 1, copied in kSlotGroups cp.async
// groups of kSlotsPerGroup slots (the statistics fold a group as soon as it lands).
constexpr int kRowSlots = 16, kSlotGroups = 4, kSlotsPerGroup = kRowSlots / kSlotGroups;
// Slots per thread the launchers aim for: 12 gives 1024 threads for an f32 row of 50304 and
// 544 (two blocks on an SM) for a bf16 one.
constexpr int kTargetSlots = 12;

template <typename T>
using RowVec = Vec<T, 16 / int(sizeof(T))>;

// The vector of this thread's slot i (32-bit: a staged row has at most kRowSlots * 1024).
__device__ __forceinline__ int slot_vec(int i) { return i * int(blockDim.x) + int(threadIdx.x); }

// Queues this thread's copies of the row xr (nvec vectors) into `row` (shared), one group per
// kSlotsPerGroup slots; every group is committed, empty or not.
template <typename T>
__device__ __forceinline__ void stage_row(RowVec<T>* row, const T* xr, int nvec) {
  const RowVec<T>* src = reinterpret_cast<const RowVec<T>*>(xr);
#pragma unroll
  for (int g = 0; g < kSlotGroups; ++g) {
#pragma unroll
    for (int i = g * kSlotsPerGroup; i < (g + 1) * kSlotsPerGroup; ++i)
      if (slot_vec(i) < nvec) cp_async16(row + slot_vec(i), src + slot_vec(i));
    cp_async_commit();
  }
}

// Folds the slots of group G into this thread's running (max, sum of exp(x - max)) once the
// group's copies have landed, a vector at a time (a whole group at once spilled registers).
template <int G, typename T, typename A>
__device__ __forceinline__ void fold_slot_group(const RowVec<T>* row, int nvec, A& mx, A& sum) {
  constexpr int V = 16 / int(sizeof(T));
  cp_async_wait<kSlotGroups - 1 - G>();
#pragma unroll
  for (int i = G * kSlotsPerGroup; i < (G + 1) * kSlotsPerGroup; ++i) {
    if (slot_vec(i) >= nvec) continue;
    const uint4 xv = *reinterpret_cast<const uint4*>(row + slot_vec(i));
    A v[V];
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = packed_element<T>(xv, j);
    online_fold<T>(v, mx, sum);
  }
}

// This thread's (max, sum of exp(x - max)) over its slots of the row being staged.
template <typename T, typename A>
__device__ __forceinline__ void fold_staged_row(const RowVec<T>* row, int nvec, A& mx, A& sum) {
  static_assert(kSlotGroups == 4, "one fold_slot_group per group");
  mx = A(-INFINITY);
  sum = A(0);
  fold_slot_group<0, T>(row, nvec, mx, sum);
  fold_slot_group<1, T>(row, nvec, mx, sum);
  fold_slot_group<2, T>(row, nvec, mx, sum);
  fold_slot_group<3, T>(row, nvec, mx, sum);
}

// The staged forward: one read of the row from HBM (cp.async into shared memory, the whole row
// in flight at once), its statistics folded group by group as the copies land, one block
// reduction; the next row's copies start right after the reduction (which follows this row's
// last shared-memory reads). logits[r, target] is read from global memory (an L2 hit) by thread
// 0 at the row's start. Rows of ignore_index are never copied.
template <typename T, typename I, typename L>
__global__ void __launch_bounds__(1024)
    cross_entropy_staged_kernel(L* loss, const T* logits, const I* target, int64_t t_stride, int64_t rows,
                                int64_t cols, int64_t ignore_index) {  // logits (N, C) in 16-byte vectors
  using A = compute_t<T>;
  __shared__ A shared[64];
  extern __shared__ __align__(16) unsigned char ce_staged_row[];
  RowVec<T>* row = reinterpret_cast<RowVec<T>*>(ce_staged_row);  // (C / V) vectors
  const int nvec = int(cols / int64_t(16 / sizeof(T)));
  const int64_t step = gridDim.x;
  int64_t r = blockIdx.x;  // < rows: the grid is at most the rows
  int64_t t = int64_t(target[r * t_stride]);
  bool staged = false;  // this row's copies are already queued
  for (; r < rows; r += step) {
    const int64_t rn = r + step;
    const int64_t tn = rn < rows ? int64_t(target[rn * t_stride]) : ignore_index;
    if (t == ignore_index) {
      if (threadIdx.x == 0) loss[r] = L(0);
    } else {
      const T* xr = logits + r * cols;
      if (!staged) stage_row(row, xr, nvec);
      const bool valid = t >= 0 && t < cols;
      const A xt = threadIdx.x == 0 && valid ? A(to_compute(xr[t])) : A(0);
      A mx, sum;
      fold_staged_row<T>(row, nvec, mx, sum);
      block_merge_max_sum<T>(mx, sum, shared);
      if (tn != ignore_index) stage_row(row, logits + rn * cols, nvec);
      if (threadIdx.x == 0) loss[r] = valid ? L(mx + f_log(sum) - xt) : L(NAN);
    }
    staged = t != ignore_index && tn != ignore_index;
    t = tn;
  }
  cp_async_wait<0>();
}

// The staged backward: the row is read from HBM once into shared memory and its statistics
// folded as it lands; after one block reduction every thread turns its slots into gradients,
// grad = grad_loss * (softmax - onehot(target)), and right after storing a slot's gradient it
// queues the copy of the same slot of the block's next row into it (that store consumed the
// slot's value, so the copy cannot overwrite it early): the next row streams in while this one
// streams out. Rows of ignore_index get zeros and are never copied.
template <typename T, typename I, typename L>
__global__ void __launch_bounds__(1024)
    cross_entropy_backward_staged_kernel(T* grad, const L* grad_loss, int64_t gl_stride, const T* logits,
                                         const I* target, int64_t t_stride, int64_t rows, int64_t cols,
                                         int64_t ignore_index) {  // grad, logits (N, C) in 16-byte vectors
  using A = compute_t<T>;
  constexpr int V = 16 / int(sizeof(T));
  __shared__ A shared[64];
  extern __shared__ __align__(16) unsigned char ce_staged_row[];
  RowVec<T>* row = reinterpret_cast<RowVec<T>*>(ce_staged_row);  // (C / V) vectors
  const int nvec = int(cols / V);
  const int64_t step = gridDim.x;
  int64_t r = blockIdx.x;  // < rows: the grid is at most the rows
  int64_t t = int64_t(target[r * t_stride]);
  bool staged = false;  // this row's copies are already queued
  for (; r < rows; r += step) {
    const int64_t rn = r + step;
    const int64_t tn = rn < rows ? int64_t(target[rn * t_stride]) : ignore_index;
    RowVec<T>* gr = reinterpret_cast<RowVec<T>*>(grad + r * cols);
    const bool next = t != ignore_index && tn != ignore_index;  // stage row rn during this one
    if (t == ignore_index) {
      RowVec<T> zero;
#pragma unroll
      for (int j = 0; j < V; ++j) zero.v[j] = to_element<T>(A(0));
      for (int vec = threadIdx.x; vec < nvec; vec += blockDim.x) gr[vec] = zero;
    } else {
      if (!staged) stage_row(row, logits + r * cols, nvec);
      const A gn = A(grad_loss[r * gl_stride]);
      A mx, sum;
      fold_staged_row<T>(row, nvec, mx, sum);
      block_merge_max_sum<T>(mx, sum, shared);
      const bool valid = t >= 0 && t < cols;
      const A scale = valid ? A(gn / sum) : A(NAN);
      const int t_vec = valid ? int(t / V) : -1;  // the vector holding the target, if any
      const int t_lane = int(valid ? t % V : 0);
      const ExpMinus<T, A> e(mx);
      const RowVec<T>* xn = reinterpret_cast<const RowVec<T>*>(logits + (next ? rn : r) * cols);  // if next
#pragma unroll
      for (int g = 0; g < kSlotGroups; ++g) {
#pragma unroll
        for (int i = g * kSlotsPerGroup; i < (g + 1) * kSlotsPerGroup; ++i) {
          const int vec = slot_vec(i);
          if (vec >= nvec) continue;
          const uint4 xv = *reinterpret_cast<const uint4*>(row + vec);
          RowVec<T> gv;
#pragma unroll
          for (int j = 0; j < V; ++j) gv.v[j] = to_element<T>(A(e(packed_element<T>(xv, j)) * scale));
          if (vec == t_vec) {
#pragma unroll
            for (int j = 0; j < V; ++j)
              if (j == t_lane) gv.v[j] = to_element<T>(A(A(e(packed_element<T>(xv, j)) * scale) - gn));
          }
          gr[vec] = gv;
          if (next) cp_async16(row + vec, xn + vec);
        }
        if (next) cp_async_commit();
      }
    }
    staged = next;
    t = tn;
  }
  cp_async_wait<0>();
}

// ---- split rows (16-bit logits) ----

// A 16-bit row of a large vocabulary is split in chunks of at most kSplitThreads x kSplitVecs
// vectors, one block per (row, chunk): each thread issues all its 16-byte loads before it uses
// any (up to 128 bytes in flight a thread, many small blocks an SM), folds them into a (max,
// sum of exp) pair, and the block's pair goes to a (rows, chunks) workspace; a second kernel
// merges a row's chunks in order and writes the loss. One block per row held one row's bytes
// in flight and left the memory idle through each row's reduction: on the H200, bf16 (8192,
// 50304) went from 75% of the copy bandwidth (staged) to 93%.
constexpr int kSplitThreads = 256, kSplitVecs = 8;

template <typename T, typename I>
__global__ void __launch_bounds__(kSplitThreads)
    cross_entropy_split_kernel(float2* partial, const T* logits, const I* target, int64_t t_stride, int64_t cols,
                               int64_t ignore_index, int chunks, int chunk_vecs) {
  constexpr int V = 16 / int(sizeof(T));
  __shared__ float shared[64];
  const int64_t r = int64_t(blockIdx.x) / chunks;
  const int chunk = int(int64_t(blockIdx.x) % chunks);
  if (int64_t(target[r * t_stride]) == ignore_index) return;  // the merge writes 0
  const int nvec = int(cols / V), v0 = chunk * chunk_vecs, v1 = min(nvec, v0 + chunk_vecs);
  const uint4* src = reinterpret_cast<const uint4*>(logits + r * cols);
  uint4 xv[kSplitVecs];
#pragma unroll
  for (int i = 0; i < kSplitVecs; ++i) {
    const int v = v0 + i * kSplitThreads + int(threadIdx.x);
    if (v < v1) xv[i] = src[v];
  }
  float mx = -INFINITY, sum = 0.f;
#pragma unroll
  for (int i = 0; i < kSplitVecs; ++i) {
    if (v0 + i * kSplitThreads + int(threadIdx.x) >= v1) break;
    float x[V];
#pragma unroll
    for (int j = 0; j < V; ++j) x[j] = packed_element<T>(xv[i], j);
    online_fold<T>(x, mx, sum);
  }
  block_merge_max_sum<T>(mx, sum, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = make_float2(mx, sum);
}

// loss[r] from row r's chunk pairs, merged in chunk order; one thread per row.
template <typename T, typename I, typename L>
__global__ void cross_entropy_merge_kernel(L* loss, const float2* partial, const T* logits, const I* target,
                                           int64_t t_stride, int64_t rows, int64_t cols, int64_t ignore_index,
                                           int chunks) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const int64_t t = int64_t(target[r * t_stride]);
  if (t == ignore_index) {
    loss[r] = L(0);
    return;
  }
  float mx = partial[r * chunks].x, sum = partial[r * chunks].y;
  for (int c = 1; c < chunks; ++c) merge_max_sum<T>(mx, sum, partial[r * chunks + c].x, partial[r * chunks + c].y);
  const bool valid = t >= 0 && t < cols;
  loss[r] = valid ? L(mx + f_log(sum) - float(to_compute(logits[r * cols + t]))) : L(NAN);
}

struct StagedShape {
  int threads = 0;  // 0: the row does not fit kRowSlots vectors a thread
  size_t smem = 0;  // bytes of dynamic shared memory: the row
};

// Threads and shared memory of a staged row of `cols` elements of `elem` bytes (cols a multiple
// of the 16-byte vector): about kTargetSlots vectors a thread, whole warps, at most 1024.
StagedShape staged_shape(int64_t cols, size_t elem) {
  const int64_t nvec = cols / int64_t(16 / elem);
  const int64_t per_target = (nvec + kTargetSlots - 1) / kTargetSlots;
  const int64_t threads = std::min<int64_t>(1024, std::max<int64_t>(32, (per_target + 31) / 32 * 32));
  if ((nvec + threads - 1) / threads > kRowSlots) return {};
  return {int(threads), size_t(nvec) * 16};
}

struct Rows {
  int64_t n, c;
};

Rows check_logits(const Tensor& logits, const Tensor& target, const char* op) {
  ZT_CHECK(logits.dim() == 2 && logits.is_contiguous(), op, ": logits must be contiguous (N, C), found ",
           logits.str(), " with strides ", shape_str(logits.strides()));
  const Rows rs{logits.size(0), logits.size(1)};
  ZT_CHECK(target.dim() == 1 && target.size(0) == rs.n, op, ": target must be (", rs.n,
           ") to match the logits rows, found ", target.str());
  return rs;
}

// Loss and grad_loss are f32, or f64 for f64 logits (so f64 gradchecks keep full precision).
void check_loss_dtype(const Tensor& logits, const Tensor& loss, const char* op, const char* what) {
  const DType expected = logits.dtype() == DType::f64 ? DType::f64 : DType::f32;
  ZT_CHECK(loss.dtype() == expected, op, ": ", what, " must be ", dtype_name(expected), " for ",
           dtype_name(logits.dtype()), " logits, found ", loss.str());
}

// Calls fn.template operator()<L>() with L the loss type for these logits.
template <typename Fn>
void with_loss_type(const Tensor& logits, Fn&& fn) {
  if (logits.dtype() == DType::f64) {
    fn.template operator()<double>();
  } else {
    fn.template operator()<float>();
  }
}

unsigned row_grid(int64_t rows) { return unsigned(rows < 65536 ? (rows < 1 ? 1 : rows) : 65536); }
int row_block(int64_t cols) { return cols <= 128 ? 32 : (cols <= 1024 ? 128 : 512); }

}  // namespace

void CudaBackend::cross_entropy(const Tensor& loss, const Tensor& logits, const Tensor& target,
                                int64_t ignore_index) {
  const Rows rs = check_logits(logits, target, "cross_entropy");
  ZT_CHECK(loss.dim() == 1 && loss.size(0) == rs.n && loss.is_contiguous(),
           "cross_entropy: loss must be a contiguous (", rs.n, ") tensor, found ", loss.str());
  check_loss_dtype(logits, loss, "cross_entropy", "loss");
  const int device = common_device("cross_entropy", {&loss, &logits, &target});
  DeviceGuard guard(device);
  if (rs.n == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(logits.dtype(), "cross_entropy", ([&]<typename T>() {
    ZT_DISPATCH_INDEX(target.dtype(), "cross_entropy", ([&]<typename I>() {
      with_loss_type(logits, [&]<typename L>() {
        constexpr int kV = 16 / int(sizeof(T));
        const T* x = device_data<T>(logits);
        auto launch = [&](auto kernel) {
          kernel<<<row_grid(rs.n), row_block(rs.c), 0, stream>>>(device_data<L>(loss), x, device_data<I>(target),
                                                                 target.stride(0), rs.n, rs.c, ignore_index);
        };
        // Staged when two blocks fit on an SM (a bf16 row of 50304): with one, the reduction
        // and the start of the next row are not hidden, and the streaming kernel already
        // reaches the copy bandwidth for f32 rows of 50304 (bench/NOTES.md).
        const bool vec = vectorizable(rs.c, kV, {x});
        if constexpr (sizeof(T) == 2) {
          const int64_t nvec = rs.c / kV;
          if (vec && nvec >= 4 * kSplitThreads) {  // rows of 8192+ (a vocabulary): split
            const int64_t chunks = (nvec + kSplitThreads * kSplitVecs - 1) / (kSplitThreads * kSplitVecs);
            const int64_t chunk_vecs = (nvec + chunks - 1) / chunks;
            ZT_CHECK(rs.n * chunks <= INT_MAX, "cross_entropy: ", rs.n, " rows of ", rs.c,
                     " logits exceed the CUDA grid");
            Tensor partial = Tensor::empty({rs.n * chunks * 2}, TensorOptions(DType::f32, Device::cuda(device)));
            float2* pp = reinterpret_cast<float2*>(device_data<float>(partial));
            cross_entropy_split_kernel<T, I><<<unsigned(rs.n * chunks), kSplitThreads, 0, stream>>>(
                pp, x, device_data<I>(target), target.stride(0), rs.c, ignore_index, int(chunks), int(chunk_vecs));
            ZT_CUDA_LAUNCH_CHECK("cross_entropy_split_kernel");
            cross_entropy_merge_kernel<T, I, L><<<unsigned((rs.n + 255) / 256), 256, 0, stream>>>(
                device_data<L>(loss), pp, x, device_data<I>(target), target.stride(0), rs.n, rs.c, ignore_index,
                int(chunks));
            ZT_CUDA_LAUNCH_CHECK("cross_entropy_merge_kernel");
            return;
          }
        }
        if constexpr (sizeof(T) <= 4) {  // f64 rows stream (no staged instantiation)
          if (const StagedShape ss = vec ? staged_shape(rs.c, sizeof(T)) : StagedShape{}; ss.threads > 0) {
            auto kernel = cross_entropy_staged_kernel<T, I, L>;
            if (const int64_t grid = resident_grid(kernel, ss.threads, ss.smem, rs.n, device, 2); grid > 0) {
              kernel<<<unsigned(grid), unsigned(ss.threads), ss.smem, stream>>>(
                  device_data<L>(loss), x, device_data<I>(target), target.stride(0), rs.n, rs.c, ignore_index);
              ZT_CUDA_LAUNCH_CHECK("cross_entropy_staged_kernel");
              return;
            }
          }
        }
        if (vec) {
          launch(cross_entropy_kernel<kV, T, I, L>);
        } else {
          launch(cross_entropy_kernel<1, T, I, L>);
        }
        ZT_CUDA_LAUNCH_CHECK("cross_entropy_kernel");
      });
    }));
  }));
}

void CudaBackend::cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                                         const Tensor& logits, const Tensor& target,
                                         int64_t ignore_index) {
  const char* op = "cross_entropy_backward";
  const Rows rs = check_logits(logits, target, op);
  ZT_CHECK(grad_logits.shape() == logits.shape() && grad_logits.dtype() == logits.dtype() &&
               grad_logits.is_contiguous(),
           op, ": grad_logits must be contiguous like logits ", logits.str(), ", found ", grad_logits.str());
  // grad_loss may be a broadcast view (stride 0) of a scalar gradient from a mean reduction.
  ZT_CHECK(grad_loss.dim() == 1 && grad_loss.size(0) == rs.n, op, ": grad_loss must be (", rs.n,
           "), found ", grad_loss.str());
  check_loss_dtype(logits, grad_loss, op, "grad_loss");
  const int device = common_device(op, {&grad_logits, &grad_loss, &logits, &target});
  DeviceGuard guard(device);
  if (rs.n == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(logits.dtype(), op, ([&]<typename T>() {
    ZT_DISPATCH_INDEX(target.dtype(), op, ([&]<typename I>() {
      with_loss_type(logits, [&]<typename L>() {
        constexpr int kV = 16 / int(sizeof(T));
        T* g = device_data<T>(grad_logits);
        const T* x = device_data<T>(logits);
        auto launch = [&](auto kernel) {
          kernel<<<row_grid(rs.n), row_block(rs.c), 0, stream>>>(g, device_data<L>(grad_loss), grad_loss.stride(0),
                                                                 x, device_data<I>(target), target.stride(0), rs.n,
                                                                 rs.c, ignore_index);
        };
        // Staged whenever the row fits in shared memory (one block per SM for an f32 row of
        // 50304): the streaming kernel reads every row twice, the second time mostly from HBM.
        const bool vec = vectorizable(rs.c, kV, {g, x});
        if constexpr (sizeof(T) <= 4) {  // f64 rows stream (no staged instantiation)
          if (const StagedShape ss = vec ? staged_shape(rs.c, sizeof(T)) : StagedShape{}; ss.threads > 0) {
            auto kernel = cross_entropy_backward_staged_kernel<T, I, L>;
            if (const int64_t grid = resident_grid(kernel, ss.threads, ss.smem, rs.n, device, 1); grid > 0) {
              kernel<<<unsigned(grid), unsigned(ss.threads), ss.smem, stream>>>(
                  g, device_data<L>(grad_loss), grad_loss.stride(0), x, device_data<I>(target), target.stride(0),
                  rs.n, rs.c, ignore_index);
              ZT_CUDA_LAUNCH_CHECK("cross_entropy_backward_staged_kernel");
              return;
            }
          }
        }
        if (vec) {
          launch(cross_entropy_backward_kernel<kV, T, I, L>);
        } else {
          launch(cross_entropy_backward_kernel<1, T, I, L>);
        }
        ZT_CUDA_LAUNCH_CHECK("cross_entropy_backward_kernel");
      });
    }));
  }));
}

}  // namespace zt::cuda
