// CUDA reductions: sum/mean/max/min over a set of dims, argmax/argmin over one dim. Meaning as
// on the CPU (core/cpu/kernels_reduce.cpp): floating sums accumulate in double and integer sums
// in int64 (a wider float out changes only the final rounding); NaN propagates through
// max/min; arg_reduce returns the first best index and the first NaN wins. One warp reduces one
// output when the reduced extent is short, one block when it is long.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/elementwise.cuh"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {
namespace {

constexpr int kWarpsPerBlock = kBlockSize / 32;
// A reduced extent at least this long gets a whole block per output.
constexpr int64_t kBlockReduceThreshold = 4096;
// Blocks a reduction aims for (a few per SM), and the fewest elements a split chunk gets.
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kSplitChunk = 16384;

template <typename C>
__device__ __forceinline__ bool is_nan_value(C v) {
  if constexpr (std::is_floating_point_v<C>) {
    return isnan(v);
  } else {
    return false;
  }
}

// Accumulators over arithmetic type C.
template <typename A>
struct SumAcc {
  static constexpr bool kIsSum = true, kSquares = false;
  A total = A(0);
  template <typename C> __device__ void add(C x) { total += A(x); }
  __device__ void merge(const SumAcc& o) { total += o.total; }
  __device__ SumAcc shfl(int offset) const { return SumAcc{shfl_xor(total, offset)}; }
};

// Squares summed, each formed in A (the gradient norm's sum of squares without a squared copy).
template <typename A>
struct SumSquaresAcc {
  static constexpr bool kIsSum = true, kSquares = true;
  A total = A(0);
  template <typename C> __device__ void add(C x) { total += A(x) * A(x); }
  __device__ void merge(const SumSquaresAcc& o) { total += o.total; }
  __device__ SumSquaresAcc shfl(int offset) const { return SumSquaresAcc{shfl_xor(total, offset)}; }
};

template <typename C, bool kMax>
struct ExtremumAcc {
  static constexpr bool kIsSum = false, kSquares = false;
  C best;
  __device__ ExtremumAcc() {
    if constexpr (std::is_floating_point_v<C>) {
      best = kMax ? C(-INFINITY) : C(INFINITY);
    } else {
      best = kMax ? std::numeric_limits<C>::lowest() : std::numeric_limits<C>::max();
    }
  }
  __device__ void add(C x) {
    const bool better = (kMax ? x > best : x < best) || is_nan_value(x);  // NaN sticks
    if (better && !is_nan_value(best)) best = x;
  }
  __device__ void merge(const ExtremumAcc& o) { add(o.best); }
  __device__ ExtremumAcc shfl(int offset) const {
    ExtremumAcc r;
    r.best = shfl_xor(best, offset);
    return r;
  }
};

template <typename Acc>
__device__ __forceinline__ Acc warp_merge(Acc acc) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc.merge(acc.shfl(o));
  return acc;
}

// Finishing: sum and extremum store the accumulator; mean divides by the count in double.
template <typename O, bool kMean, typename Acc>
__device__ __forceinline__ O finish(const Acc& acc, double count) {
  if constexpr (kMean) {
    return to_element<O>(double(acc.total) / count);
  } else if constexpr (Acc::kIsSum) {
    return to_element<O>(acc.total);
  } else {
    return to_element<O>(acc.best);
  }
}

// Warp w of the grid reduces output w: out[w] = reduce over r of a[kept(w) + red(r)].
template <typename T, typename O, typename Acc, bool kMean>
__global__ void reduce_warp_kernel(O* out, const T* a, int64_t n_out, int64_t n_red,
                                   OffsetCalc<1> kept, OffsetCalc<1> red) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * kWarpsPerBlock;
  for (int64_t o = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; o < n_out; o += warps) {
    int64_t base;
    kept.offsets(o, &base);
    Acc acc;
    for (int64_t r = lane; r < n_red; r += 32) {
      int64_t off;
      red.offsets(r, &off);
      acc.add(to_arith(a[base + off]));
    }
    acc = warp_merge(acc);
    if (lane == 0) out[o] = finish<O, kMean>(acc, double(n_red));
  }
}

// Merges every thread's accumulator; thread 0 gets the block's. `partial` holds one Acc per warp.
template <typename Acc>
__device__ __forceinline__ Acc block_merge(Acc acc, Acc* partial) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  acc = warp_merge(acc);
  __syncthreads();  // partial may still be read for the previous output
  if (lane == 0) partial[warp] = acc;
  __syncthreads();
  Acc total = lane < kWarpsPerBlock ? partial[lane] : Acc();
  return warp_merge(total);
}

// The whole block reduces the elements [r0, r1) of the output at a + base; thread 0 gets the
// result. `partial` holds one Acc per warp.
template <typename T, typename Acc>
__device__ __forceinline__ Acc block_accumulate(const T* a, int64_t base, int64_t r0, int64_t r1,
                                                const OffsetCalc<1>& red, Acc* partial) {
  Acc acc;
  for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
    int64_t off;
    red.offsets(r, &off);
    acc.add(to_arith(a[base + off]));
  }
  return block_merge(acc, partial);
}

// Block b of the grid reduces output b.
template <typename T, typename O, typename Acc, bool kMean>
__global__ void reduce_block_kernel(O* out, const T* a, int64_t n_out, int64_t n_red,
                                    OffsetCalc<1> kept, OffsetCalc<1> red) {
  // Raw storage: shared memory cannot run Acc's constructor.
  __shared__ alignas(Acc) unsigned char partial_raw[sizeof(Acc) * kWarpsPerBlock];
  Acc* partial = reinterpret_cast<Acc*>(partial_raw);
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    int64_t base;
    kept.offsets(o, &base);
    const Acc total = block_accumulate<T, Acc>(a, base, 0, n_red, red, partial);
    if (threadIdx.x == 0) out[o] = finish<O, kMean>(total, double(n_red));
  }
}

// Block (s, o) of a split reduction: chunk s = blockIdx.x, elements [r0, r1), of output
// o = blockIdx.y, whose first element is at a + base.
struct SplitChunk {
  int64_t base, r0, r1;
};

__device__ __forceinline__ SplitChunk split_chunk(const OffsetCalc<1>& kept, int64_t n_red, int64_t chunk) {
  SplitChunk c;
  kept.offsets(blockIdx.y, &c.base);
  c.r0 = int64_t(blockIdx.x) * chunk;
  c.r1 = c.r0 + chunk < n_red ? c.r0 + chunk : n_red;
  return c;
}

// Few outputs with long reductions: block (s, o) reduces chunk s of output o into
// partials[o * splits + s]; reduce_finish_kernel combines the chunks of each output.
template <typename T, typename Acc>
__global__ void reduce_split_kernel(Acc* partials, const T* a, int64_t n_red, int64_t chunk,
                                    OffsetCalc<1> kept, OffsetCalc<1> red) {
  __shared__ alignas(Acc) unsigned char partial_raw[sizeof(Acc) * kWarpsPerBlock];
  const SplitChunk c = split_chunk(kept, n_red, chunk);
  const Acc total = block_accumulate<T, Acc>(a, c.base, c.r0, c.r1, red, reinterpret_cast<Acc*>(partial_raw));
  if (threadIdx.x == 0) partials[int64_t(blockIdx.y) * gridDim.x + blockIdx.x] = total;
}

// reduce_split_kernel for a contiguous reduced extent whose chunks start 16-byte aligned: each
// thread keeps kSplitLoads 16-byte loads in flight. The scalar kernel issues one element's load
// at a time: the gradient norm's sum of squares over GPT-2's 124M bf16 gradients ran at 0.7 TB/s.
constexpr int kSplitLoads = 4;

template <typename T, typename Acc, int V>
__global__ void reduce_split_vec_kernel(Acc* partials, const T* a, int64_t n_red, int64_t chunk, OffsetCalc<1> kept) {
  using VT = Vec<T, V>;
  __shared__ alignas(Acc) unsigned char partial_raw[sizeof(Acc) * kWarpsPerBlock];
  const auto [base, r0, r1] = split_chunk(kept, n_red, chunk);
  const VT* v = reinterpret_cast<const VT*>(a + base + r0);
  const int64_t nv = (r1 - r0) / V, step = blockDim.x;
  Acc acc;
  int64_t i = threadIdx.x;
  for (; i + (kSplitLoads - 1) * step < nv; i += kSplitLoads * step) {
    VT x[kSplitLoads];
#pragma unroll
    for (int u = 0; u < kSplitLoads; ++u) x[u] = v[i + u * step];
#pragma unroll
    for (int u = 0; u < kSplitLoads; ++u)
#pragma unroll
      for (int j = 0; j < V; ++j) acc.add(to_arith(x[u].v[j]));
  }
  for (; i < nv; i += step) {
    const VT x = v[i];
#pragma unroll
    for (int j = 0; j < V; ++j) acc.add(to_arith(x.v[j]));
  }
  for (int64_t r = r0 + nv * V + threadIdx.x; r < r1; r += step) acc.add(to_arith(a[base + r]));  // the last chunk's tail
  const Acc total = block_merge(acc, reinterpret_cast<Acc*>(partial_raw));
  if (threadIdx.x == 0) partials[int64_t(blockIdx.y) * gridDim.x + blockIdx.x] = total;
}

// One warp per output merges its `splits` partials in a fixed order (deterministic). The grid is
// capped (grid_for), so warps loop over the outputs.
template <typename O, typename Acc, bool kMean>
__global__ void reduce_finish_kernel(O* out, const Acc* partials, int64_t n_out, int64_t splits,
                                     int64_t n_red) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * kWarpsPerBlock;
  for (int64_t o = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; o < n_out; o += warps) {
    Acc acc;
    for (int64_t s = lane; s < splits; s += 32) acc.merge(partials[o * splits + s]);
    acc = warp_merge(acc);
    if (lane == 0) out[o] = finish<O, kMean>(acc, double(n_red));
  }
}

// reduce_finish_kernel for a few partials an output (a column sum over few rows: the position
// embedding's gradient summed over a batch of 8, 786,432 outputs of one partial each): a thread
// per output instead of a warp whose other 31 lanes idle (44 us there).
template <typename O, typename Acc, bool kMean>
__global__ void reduce_finish_thread_kernel(O* out, const Acc* partials, int64_t n_out, int64_t splits,
                                            int64_t n_red) {
  ZT_GRID_STRIDE_LOOP(o, n_out) {
    Acc acc;
    for (int64_t s = 0; s < splits; ++s) acc.merge(partials[o * splits + s]);
    out[o] = finish<O, kMean>(acc, double(n_red));
  }
}

// Column sums: a is (rows, columns) with unit column stride (the bias gradient of a linear layer
// sums its output gradient over the leading dims). Threads of a warp read neighbouring VEC-vectors
// of one row, so reads coalesce (a block per output would read one element per row: a 32-byte
// sector for 2 bytes of bf16). Block (x, s) sums columns [x*32*VEC, (x+1)*32*VEC) over the rows
// of split s, kColumnRowsInFlight rows at a time, into partials[column * splits + s];
// reduce_finish_kernel then merges each column's splits in a fixed order (deterministic).
constexpr int kColumnRowsInFlight = kBlockSize / 32;

template <typename T, typename A, int VEC>
__global__ void reduce_columns_kernel(SumAcc<A>* partials, const T* a, int64_t n_col, int64_t n_row,
                                      int64_t row_stride, int64_t rows_per_split) {
  __shared__ A tile[kColumnRowsInFlight][32 * VEC];
  const int64_t c0 = (int64_t(blockIdx.x) * 32 + threadIdx.x) * VEC;
  const int64_t s = blockIdx.y;
  const int64_t r0 = s * rows_per_split;
  const int64_t r1 = r0 + rows_per_split < n_row ? r0 + rows_per_split : n_row;
  A acc[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) acc[j] = A(0);
  if (c0 < n_col) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColumnRowsInFlight) {
      const Vec<T, VEC> v = *reinterpret_cast<const Vec<T, VEC>*>(a + r * row_stride + c0);
#pragma unroll
      for (int j = 0; j < VEC; ++j) acc[j] += A(to_arith(v.v[j]));
    }
  }
#pragma unroll
  for (int j = 0; j < VEC; ++j) tile[threadIdx.y][threadIdx.x * VEC + j] = acc[j];
  __syncthreads();
  if (threadIdx.y != 0 || c0 >= n_col) return;
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    A total = A(0);
#pragma unroll
    for (int y = 0; y < kColumnRowsInFlight; ++y) total += tile[y][threadIdx.x * VEC + j];
    partials[(c0 + j) * gridDim.y + s] = SumAcc<A>{total};
  }
}

// The (kept, reduced) split of a's dims: offsets of each output's first element and of each
// reduced element relative to it.
struct ReduceLayout {
  OffsetCalc<1> kept, red;
  int64_t n_out = 1, n_red = 1;
};

ReduceLayout make_layout(const Tensor& a, const std::vector<int>& dims) {
  std::vector<bool> reduced(size_t(a.dim()), false);
  for (int d : dims) {
    ZT_CHECK(d >= 0 && d < a.dim(), "reduce: dim ", d, " out of range for shape ", shape_str(a.shape()));
    reduced[size_t(d)] = true;
  }
  Shape kept_shape, kept_strides, red_shape, red_strides;
  for (int64_t d = 0; d < a.dim(); ++d) {
    (reduced[size_t(d)] ? red_shape : kept_shape).push_back(a.size(d));
    (reduced[size_t(d)] ? red_strides : kept_strides).push_back(a.stride(d));
  }
  ReduceLayout l;
  l.kept = make_offset_calc<1>(kept_shape, {&kept_strides});
  l.red = make_offset_calc<1>(red_shape, {&red_strides});
  l.n_out = shape_numel(kept_shape);
  l.n_red = shape_numel(red_shape);
  return l;
}

// Whether l is a column sum (reduce_columns_kernel): one kept dim of unit stride, one reduced dim.
bool is_column_reduction(const ReduceLayout& l) {
  return l.n_out > 1 && l.n_red > 1 && l.kept.ndim == 1 && l.kept.strides[0][0] == 1 && l.red.ndim == 1;
}

template <typename T, typename O, typename A, bool kMean, int VEC>
void launch_column_reduce(O* o, const T* p, const ReduceLayout& l, const Device& device, cudaStream_t stream) {
  const int64_t col_blocks = (l.n_out + 32 * VEC - 1) / (32 * VEC);
  const int64_t splits = std::clamp<int64_t>(kTargetBlocks / col_blocks, 1,
                                             std::min<int64_t>(65535, (l.n_red + 31) / 32));
  const int64_t rows_per_split = (l.n_red + splits - 1) / splits;
  Tensor partials = Tensor::empty({int64_t(sizeof(SumAcc<A>)) * l.n_out * splits}, TensorOptions(DType::u8, device));
  auto* pp = reinterpret_cast<SumAcc<A>*>(partials.raw_data());
  reduce_columns_kernel<T, A, VEC><<<dim3(unsigned(col_blocks), unsigned(splits)), dim3(32, kColumnRowsInFlight), 0,
                                     stream>>>(pp, p, l.n_out, l.n_red, l.red.strides[0][0], rows_per_split);
  ZT_CUDA_LAUNCH_CHECK("reduce_columns_kernel");
  if (splits <= 4) {
    reduce_finish_thread_kernel<O, SumAcc<A>, kMean><<<grid_for(l.n_out), kBlockSize, 0, stream>>>(o, pp, l.n_out,
                                                                                                 splits, l.n_red);
  } else {
    reduce_finish_kernel<O, SumAcc<A>, kMean><<<grid_for(l.n_out, kWarpsPerBlock), kBlockSize, 0, stream>>>(
        o, pp, l.n_out, splits, l.n_red);
  }
  ZT_CUDA_LAUNCH_CHECK("reduce_finish_kernel");
}

template <typename T, typename O, typename Acc, bool kMean>
void launch_reduce(const Tensor& out, const Tensor& a, const ReduceLayout& l, cudaStream_t stream) {
  O* o = device_data<O>(out);
  const T* p = device_data<T>(a);
  if constexpr (Acc::kIsSum && !Acc::kSquares) {
    if (is_column_reduction(l)) {
      using A = decltype(Acc::total);
      constexpr int kVec = 16 / sizeof(T) >= 8 ? 8 : (16 / sizeof(T) > 0 ? int(16 / sizeof(T)) : 1);
      const bool vectorizable = l.n_out % kVec == 0 && l.red.strides[0][0] % kVec == 0 &&
                                reinterpret_cast<uintptr_t>(p) % (sizeof(T) * kVec) == 0;
      if (vectorizable) return launch_column_reduce<T, O, A, kMean, kVec>(o, p, l, out.device(), stream);
      return launch_column_reduce<T, O, A, kMean, 1>(o, p, l, out.device(), stream);
    }
  }
  // Enough blocks to fill the GPU: split each reduction when the outputs alone are too few.
  const int64_t splits = std::min<int64_t>((kTargetBlocks + l.n_out - 1) / l.n_out,
                                           (l.n_red + kSplitChunk - 1) / kSplitChunk);
  if (l.n_red >= kBlockReduceThreshold && splits > 1 && l.n_out < 65536) {
    constexpr int kV = sizeof(T) <= 16 && 16 % sizeof(T) == 0 ? int(16 / sizeof(T)) : 1;
    // Chunks of whole vectors; every output's first element 16-byte aligned (its kept strides
    // multiples of the vector).
    const int64_t chunk = (l.n_red + splits - 1) / splits;
    const int64_t vec_chunk = (chunk + kV - 1) / kV * kV;
    bool vec = kV > 1 && l.red.ndim == 1 && l.red.strides[0][0] == 1 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
    for (int d = 0; vec && d < l.kept.ndim; ++d) vec = l.kept.strides[0][d] % kV == 0;
    const int64_t n_chunks = vec ? (l.n_red + vec_chunk - 1) / vec_chunk : splits;
    Tensor partials = Tensor::empty({int64_t(sizeof(Acc)) * l.n_out * n_chunks},
                                    TensorOptions(DType::u8, out.device()));
    Acc* pp = reinterpret_cast<Acc*>(partials.raw_data());
    const dim3 grid{unsigned(n_chunks), unsigned(l.n_out), 1};
    if (vec) {
      reduce_split_vec_kernel<T, Acc, kV><<<grid, kBlockSize, 0, stream>>>(pp, p, l.n_red, vec_chunk, l.kept);
    } else {
      reduce_split_kernel<T, Acc><<<grid, kBlockSize, 0, stream>>>(pp, p, l.n_red, chunk, l.kept, l.red);
    }
    ZT_CUDA_LAUNCH_CHECK("reduce_split_kernel");
    reduce_finish_kernel<O, Acc, kMean><<<grid_for(l.n_out, kWarpsPerBlock), kBlockSize, 0, stream>>>(
        o, pp, l.n_out, n_chunks, l.n_red);
    ZT_CUDA_LAUNCH_CHECK("reduce_finish_kernel");
  } else if (l.n_red >= kBlockReduceThreshold) {
    const unsigned grid = unsigned(l.n_out < 65536 ? l.n_out : 65536);
    reduce_block_kernel<T, O, Acc, kMean><<<grid, kBlockSize, 0, stream>>>(o, p, l.n_out, l.n_red, l.kept, l.red);
    ZT_CUDA_LAUNCH_CHECK("reduce_block_kernel");
  } else {
    reduce_warp_kernel<T, O, Acc, kMean><<<grid_for(l.n_out, kWarpsPerBlock), kBlockSize, 0, stream>>>(
        o, p, l.n_out, l.n_red, l.kept, l.red);
    ZT_CUDA_LAUNCH_CHECK("reduce_warp_kernel");
  }
}

// ---- arg_reduce ----

template <typename C>
struct ArgBest {
  C value;
  int64_t index;
};

// Is candidate b preferred over the current a? NaN first (lowest index among NaNs), then the
// better value, then the lower index.
template <typename C, bool kMax>
__device__ __forceinline__ bool prefer(const ArgBest<C>& a, const ArgBest<C>& b) {
  if (b.index < 0) return false;
  if (a.index < 0) return true;
  const bool an = is_nan_value(a.value), bn = is_nan_value(b.value);
  if (an || bn) return bn && (!an || b.index < a.index);
  if (b.value == a.value) return b.index < a.index;
  return kMax ? b.value > a.value : b.value < a.value;
}

template <typename T, bool kMax>
__global__ void arg_reduce_kernel(int64_t* out, const T* a, int64_t n_out, int64_t len, int64_t stride,
                                  OffsetCalc<1> kept) {
  using C = arith_t<T>;
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * kWarpsPerBlock;
  for (int64_t o = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; o < n_out; o += warps) {
    int64_t base;
    kept.offsets(o, &base);
    ArgBest<C> best{C(0), -1};
    for (int64_t j = lane; j < len; j += 32) {
      const ArgBest<C> cand{to_arith(a[base + j * stride]), j};
      if (prefer<C, kMax>(best, cand)) best = cand;
    }
#pragma unroll
    for (int s = 16; s > 0; s >>= 1) {
      const ArgBest<C> other{shfl_xor(best.value, s), shfl_xor(best.index, s)};
      if (prefer<C, kMax>(best, other)) best = other;
    }
    if (lane == 0) out[o] = best.index;
  }
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& a, const std::vector<int>& dims) {
  const int device = common_device("reduce", {&out, &a});
  DeviceGuard guard(device);
  const ReduceLayout l = make_layout(a, dims);
  ZT_CHECK(out.numel() == l.n_out && out.is_contiguous(), "reduce ", op_name(op),
           ": out must be contiguous with ", l.n_out, " elements, found ", out.str());
  ZT_CHECK(l.n_red > 0 || op == ReduceOp::sum || op == ReduceOp::sum_squares, "reduce ", op_name(op),
           ": cannot reduce an empty set of elements (shape ", shape_str(a.shape()), ")");
  if (l.n_out == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_ALL(a.dtype(), "reduce", ([&]<typename T>() {
    using C = arith_t<T>;
    using A = std::conditional_t<std::is_floating_point_v<C>, double, int64_t>;
    auto with_out = [&]<typename O>() {
      switch (op) {
        case ReduceOp::sum: return launch_reduce<T, O, SumAcc<A>, false>(out, a, l, stream);
        case ReduceOp::mean: return launch_reduce<T, O, SumAcc<A>, true>(out, a, l, stream);
        case ReduceOp::max: return launch_reduce<T, O, ExtremumAcc<C, true>, false>(out, a, l, stream);
        case ReduceOp::min: return launch_reduce<T, O, ExtremumAcc<C, false>, false>(out, a, l, stream);
        case ReduceOp::sum_squares:
          if constexpr (std::is_floating_point_v<C>) return launch_reduce<T, O, SumSquaresAcc<A>, false>(out, a, l, stream);
          ZT_FAIL("reduce sum_squares: expected a floating dtype, found ", dtype_name(a.dtype()));
      }
    };
    const bool widened = op != ReduceOp::max && op != ReduceOp::min;
    if (out.dtype() == a.dtype()) {
      with_out.template operator()<T>();
    } else if (out.dtype() == DType::i64 && !is_floating(a.dtype())) {
      if constexpr (!std::is_floating_point_v<C>) with_out.template operator()<int64_t>();  // integer sums widen, as numpy does
    } else if (widened && std::is_floating_point_v<C> && out.dtype() == DType::f64) {
      if constexpr (std::is_floating_point_v<C>) with_out.template operator()<double>();
    } else if (widened && std::is_floating_point_v<C> && out.dtype() == DType::f32) {
      if constexpr (std::is_floating_point_v<C>) with_out.template operator()<float>();
    } else {
      ZT_FAIL("reduce ", op_name(op), ": out dtype ", dtype_name(out.dtype()), " for input dtype ",
              dtype_name(a.dtype()), " (expected the input dtype, i64 for integer inputs, or f32/f64 for the sums "
              "of floating inputs)");
    }
  }));
}

void CudaBackend::arg_reduce(ArgReduceOp op, const Tensor& out, const Tensor& a, int dim) {
  ZT_CHECK(dim >= 0 && dim < a.dim(), "arg_reduce: dim ", dim, " out of range for shape ", shape_str(a.shape()));
  ZT_CHECK(out.dtype() == DType::i64, "arg_reduce: out must be i64, found ", dtype_name(out.dtype()));
  const int device = common_device("arg_reduce", {&out, &a});
  DeviceGuard guard(device);
  const ReduceLayout l = make_layout(a, {dim});
  ZT_CHECK(out.numel() == l.n_out && out.is_contiguous(), "arg_reduce: out must be contiguous with ",
           l.n_out, " elements, found ", out.str());
  ZT_CHECK(l.n_red > 0, "arg_reduce: dim ", dim, " of shape ", shape_str(a.shape()), " is empty");
  if (l.n_out == 0) return;
  const int64_t len = a.size(dim), stride = a.stride(dim);
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_ALL(a.dtype(), "arg_reduce", ([&]<typename T>() {
    const unsigned grid = grid_for(l.n_out, kWarpsPerBlock);
    if (op == ArgReduceOp::argmax) {
      arg_reduce_kernel<T, true><<<grid, kBlockSize, 0, stream>>>(device_data<int64_t>(out), device_data<T>(a),
                                                                  l.n_out, len, stride, l.kept);
    } else {
      arg_reduce_kernel<T, false><<<grid, kBlockSize, 0, stream>>>(device_data<int64_t>(out), device_data<T>(a),
                                                                   l.n_out, len, stride, l.kept);
    }
    ZT_CUDA_LAUNCH_CHECK("arg_reduce_kernel");
  }));
}

}  // namespace zt::cuda
