// CUDA indexing kernels: index_select (gather along one dim, the embedding forward) and
// index_add (scatter-add along one dim, the embedding backward) for every dtype, index i32/i64,
// as the CPU kernels (core/cpu/kernels_index.cpp). index_add uses atomics (repeated indices
// accumulate; the order of additions, hence float rounding, is not fixed); whole contiguous
// rows of f32/f16/bf16 (the embedding backward) add 16 bytes an instruction. An index out of
// range stops the kernel with a device-side message (like a device assert) instead of touching
// memory outside the tensor; the launch then reports an error at the next CUDA call.
#include <cstdio>
#include <type_traits>

#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/elementwise.cuh"  // Vec
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {
namespace {

template <typename I>
__device__ __forceinline__ int64_t checked_index(const I* index, int64_t stride, int64_t j, int64_t limit,
                                                 const char* op) {
  const int64_t v = int64_t(index[j * stride]);
  if (v < 0 || v >= limit) {
    printf("zerotrain %s: index[%lld] = %lld out of range [0, %lld)\n", op, (long long)j, (long long)v,
           (long long)limit);
    __trap();
  }
  return v;
}

// Operand offsets: 0 = out (select) / src (add), 1 = the other tensor without the indexed dim,
// 2 = the position along the indexed dim.
template <typename T, typename I>
__global__ void index_select_kernel(T* out, const T* a, const I* index, int64_t index_stride, int64_t n,
                                    OffsetCalc<3> calc, int64_t a_step, int64_t limit) {
  ZT_GRID_STRIDE_LOOP(i, n) {
    int64_t off[3];
    calc.offsets(i, off);
    const int64_t idx = checked_index(index, index_stride, off[2], limit, "index_select");
    out[off[0]] = a[off[1] + idx * a_step];
  }
}

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);  // two's complement
}
__device__ __forceinline__ void atomic_add(Half* p, Half v) {
  atomicAdd(reinterpret_cast<__half*>(p), __ushort_as_half(v.bits));
}
__device__ __forceinline__ void atomic_add(BFloat16* p, BFloat16 v) {
  atomicAdd(reinterpret_cast<__nv_bfloat16*>(p), __ushort_as_bfloat16(v.bits));
}
// One-byte types: compare-and-swap on the aligned 32-bit word holding the byte (allocations
// are 512-byte granular, so the word lies inside the buffer). bool adds as logical or.
template <typename T>
__device__ __forceinline__ void atomic_add_byte(T* p, T v) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  unsigned int* word = reinterpret_cast<unsigned int*>(addr & ~uintptr_t(3));
  const unsigned shift = unsigned(addr & 3u) * 8u;
  unsigned int old = *word, assumed;
  do {
    assumed = old;
    const unsigned cur = (assumed >> shift) & 0xffu;
    const unsigned next = std::is_same_v<T, bool> ? unsigned(cur != 0 || v) : (cur + unsigned(v)) & 0xffu;
    old = atomicCAS(word, assumed, (assumed & ~(0xffu << shift)) | (next << shift));
  } while (assumed != old);
}
__device__ __forceinline__ void atomic_add(uint8_t* p, uint8_t v) { atomic_add_byte(p, v); }
__device__ __forceinline__ void atomic_add(bool* p, bool v) { atomic_add_byte(p, v); }

template <typename T, typename I>
__global__ void index_add_kernel(T* out, const T* src, const I* index, int64_t index_stride, int64_t n,
                                 OffsetCalc<3> calc, int64_t out_step, int64_t limit) {
  ZT_GRID_STRIDE_LOOP(i, n) {
    int64_t off[3];
    calc.offsets(i, off);
    const int64_t idx = checked_index(index, index_stride, off[2], limit, "index_add");
    atomic_add(out + off[1] + idx * out_step, src[off[0]]);
  }
}

// out[v] += the 16 bytes of v's elements, one vector reduction on sm_90 (red.global.add.v4: a
// quarter or an eighth of the atomics of one per element), element atomics before it.
template <typename T>
__device__ __forceinline__ void vector_atomic_add(T* out, const uint4& v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (std::is_same_v<T, BFloat16>) {
    asm volatile("red.global.add.noftz.v4.bf16x2 [%0], {%1, %2, %3, %4};" ::"l"(out), "r"(v.x), "r"(v.y), "r"(v.z),
                 "r"(v.w)
                 : "memory");
  } else if constexpr (std::is_same_v<T, Half>) {
    asm volatile("red.global.add.noftz.v4.f16x2 [%0], {%1, %2, %3, %4};" ::"l"(out), "r"(v.x), "r"(v.y), "r"(v.z),
                 "r"(v.w)
                 : "memory");
  } else {
    static_assert(std::is_same_v<T, float>, "vector_atomic_add takes f32, f16 or bf16");
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(out), "f"(__uint_as_float(v.x)),
                 "f"(__uint_as_float(v.y)), "f"(__uint_as_float(v.z)), "f"(__uint_as_float(v.w))
                 : "memory");
  }
#else
  const Vec<T, 16 / sizeof(T)> e = *reinterpret_cast<const Vec<T, 16 / sizeof(T)>*>(&v);
#pragma unroll
  for (int j = 0; j < int(16 / sizeof(T)); ++j) atomic_add(out + j, e.v[j]);
#endif
}

// index_add along dim 0 of contiguous (R, C) out and (N, C) src, C a multiple of the 16-byte
// vector: a thread per vector of src.
template <typename T, typename I>
__global__ void index_add_rows_kernel(T* out, const T* src, const I* index, int64_t index_stride, int64_t n_vecs,
                                      int64_t row_vecs, int64_t limit) {
  constexpr int V = 16 / int(sizeof(T));
  ZT_GRID_STRIDE_LOOP(i, n_vecs) {
    const int64_t row = i / row_vecs, col = (i - row * row_vecs) * V;
    const int64_t idx = checked_index(index, index_stride, row, limit, "index_add");
    vector_atomic_add(out + idx * row_vecs * V + col, reinterpret_cast<const uint4*>(src)[i]);
  }
}

// (strides of `other` with dim zeroed, unit stride at dim only): the two helper operands.
struct IndexedStrides {
  Shape other, position;
};

IndexedStrides indexed_strides(const Tensor& other, int dim) {
  IndexedStrides s{other.strides(), Shape(size_t(other.dim()), 0)};
  s.other[size_t(dim)] = 0;
  s.position[size_t(dim)] = 1;
  return s;
}

void check_index(const Tensor& index, const char* op) {
  ZT_CHECK(index.dim() <= 1, op, ": index must be 0-D or 1-D, found ", index.str());
}

}  // namespace

void CudaBackend::index_select(const Tensor& out, const Tensor& a, int dim, const Tensor& index) {
  ZT_CHECK(dim >= 0 && dim < a.dim(), "index_select: dim ", dim, " out of range for ", a.str());
  ZT_CHECK(out.dtype() == a.dtype(), "index_select: out dtype ", dtype_name(out.dtype()),
           " must match a's ", dtype_name(a.dtype()));
  check_index(index, "index_select");
  Shape expected = a.shape();
  expected[size_t(dim)] = index.numel();
  ZT_CHECK(out.shape() == expected, "index_select: out must have shape ", shape_str(expected),
           ", found ", shape_str(out.shape()));
  const int device = common_device("index_select", {&out, &a, &index});
  DeviceGuard guard(device);
  const int64_t n = out.numel();
  if (n == 0) return;
  const IndexedStrides s = indexed_strides(a, dim);
  const OffsetCalc<3> calc = make_offset_calc<3>(out.shape(), {&out.strides(), &s.other, &s.position});
  const int64_t index_stride = index.dim() == 1 ? index.stride(0) : 0;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_ALL(a.dtype(), "index_select", ([&]<typename T>() {
    ZT_DISPATCH_INDEX(index.dtype(), "index_select", ([&]<typename I>() {
      index_select_kernel<T, I><<<grid_for(n), kBlockSize, 0, stream>>>(
          device_data<T>(out), device_data<T>(a), device_data<I>(index), index_stride, n, calc,
          a.stride(dim), a.size(dim));
      ZT_CUDA_LAUNCH_CHECK("index_select_kernel");
    }));
  }));
}

void CudaBackend::index_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) {
  ZT_CHECK(dim >= 0 && dim < out.dim(), "index_add: dim ", dim, " out of range for ", out.str());
  ZT_CHECK(out.dtype() == src.dtype(), "index_add: src dtype ", dtype_name(src.dtype()),
           " must match out's ", dtype_name(out.dtype()));
  check_index(index, "index_add");
  Shape expected = out.shape();
  expected[size_t(dim)] = index.numel();
  ZT_CHECK(src.shape() == expected, "index_add: src must have shape ", shape_str(expected),
           ", found ", shape_str(src.shape()));
  const int device = common_device("index_add", {&out, &index, &src});
  DeviceGuard guard(device);
  const int64_t n = src.numel();
  if (n == 0) return;
  const int64_t index_stride = index.dim() == 1 ? index.stride(0) : 0;
  cudaStream_t stream = current_stream(device);
  // Whole rows (dim 0 of contiguous tensors) of 16-byte vectors: the vector path.
  const int64_t cols = out.dim() == 0 ? 1 : out.numel() / std::max<int64_t>(out.size(0), 1);
  const DType dt = out.dtype();
  if (dim == 0 && out.is_contiguous() && src.is_contiguous() &&
      (dt == DType::f32 || dt == DType::f16 || dt == DType::bf16)) {
    const int v = 16 / int(dtype_size(dt));
    if (cols % v == 0 && reinterpret_cast<uintptr_t>(out.raw_data()) % 16 == 0 &&
        reinterpret_cast<uintptr_t>(src.raw_data()) % 16 == 0) {
      ZT_DISPATCH_FLOATING(dt, "index_add", ([&]<typename T>() {
        if constexpr (sizeof(T) <= 4) {
          ZT_DISPATCH_INDEX(index.dtype(), "index_add", ([&]<typename I>() {
            const int64_t n_vecs = n / v;
            index_add_rows_kernel<T, I><<<grid_for(n_vecs), kBlockSize, 0, stream>>>(
                device_data<T>(out), device_data<T>(src), device_data<I>(index), index_stride, n_vecs, cols / v,
                out.size(0));
            ZT_CUDA_LAUNCH_CHECK("index_add_rows_kernel");
          }));
        }
      }));
      return;
    }
  }
  const IndexedStrides s = indexed_strides(out, dim);
  const OffsetCalc<3> calc = make_offset_calc<3>(src.shape(), {&src.strides(), &s.other, &s.position});
  ZT_DISPATCH_ALL(out.dtype(), "index_add", ([&]<typename T>() {
    ZT_DISPATCH_INDEX(index.dtype(), "index_add", ([&]<typename I>() {
      index_add_kernel<T, I><<<grid_for(n), kBlockSize, 0, stream>>>(
          device_data<T>(out), device_data<T>(src), device_data<I>(index), index_stride, n, calc,
          out.stride(dim), out.size(dim));
      ZT_CUDA_LAUNCH_CHECK("index_add_kernel");
    }));
  }));
}

}  // namespace zt::cuda
