// The elementwise map used by the pointwise kernels: out[i] = f(in_0[i], ..., in_{K-1}[i])
// over same-shape views. Contiguous operands with 16-byte aligned data take a vectorised path
// (16-byte loads and stores). Views whose last dim is contiguous in every operand (a bias
// broadcast over rows, a column slice of a wider matrix) take the row path: 16-byte vectors
// along the row, the strided offset calculator once per vector for the row's start. Anything
// else goes through the offset calculator per element (a 64-bit division per dim).
#pragma once
#include <algorithm>
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

// f lane by lane over one VEC-vector of each input.
template <int NIN, int VEC, typename O, typename I, typename F>
__device__ __forceinline__ Vec<O, VEC> apply_vec(const F& f, const Vec<I, VEC> (&xv)[NIN]) {
  Vec<O, VEC> ov;
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    I x[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) x[k] = xv[k].v[j];
    ov.v[j] = apply_fn(f, x);
  }
  return ov;
}

template <int NIN, int VEC, typename O, typename I, typename F>
__global__ void map_contiguous_kernel(O* out, PtrArray<const I*, NIN> in, int64_t n, F f) {
  const int64_t nvec = n / VEC;
  ZT_GRID_STRIDE_LOOP(i, nvec) {
    Vec<I, VEC> xv[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) xv[k] = reinterpret_cast<const Vec<I, VEC>*>(in.p[k])[i];
    reinterpret_cast<Vec<O, VEC>*>(out)[i] = apply_vec<NIN, VEC, O>(f, xv);
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

// Rows of `row_vecs` VEC-vectors: thread x of the block owns vector blockIdx.x * blockDim.x + x
// of every row it visits, and the block's y threads step through the rows (no division per
// vector); the calculator over the leading dims gives each row's start in each operand.
template <int NIN, int VEC, typename O, typename I, typename F>
__global__ void map_rows_kernel(O* out, PtrArray<const I*, NIN> in, int64_t rows, int64_t row_vecs,
                                OffsetCalc<NIN + 1> row_start, F f) {
  const int64_t cv = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (cv >= row_vecs) return;
  const int64_t c = cv * VEC;
  for (int64_t r = int64_t(blockIdx.y) * blockDim.y + threadIdx.y; r < rows; r += int64_t(gridDim.y) * blockDim.y) {
    int64_t off[NIN + 1];
    row_start.offsets(r, off);
    Vec<I, VEC> xv[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) xv[k] = *reinterpret_cast<const Vec<I, VEC>*>(in.p[k] + off[k + 1] + c);
    *reinterpret_cast<Vec<O, VEC>*>(out + off[0] + c) = apply_vec<NIN, VEC, O>(f, xv);
  }
}

// Whether `t` (data at `p`) suits the row path: the last dim contiguous, and every row start
// aligned to `vec_bytes` (the data and every leading stride).
inline bool rows_vectorizable(const Tensor& t, const void* p, int64_t elem_bytes, int64_t vec_bytes) {
  if (reinterpret_cast<uintptr_t>(p) % uintptr_t(vec_bytes) != 0) return false;
  if (t.stride(t.dim() - 1) != 1) return false;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) {
    if (t.size(d) > 1 && (t.stride(d) * elem_bytes) % vec_bytes != 0) return false;
  }
  return true;
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
  const int64_t row = out.dim() > 0 ? out.size(out.dim() - 1) : 1;
  bool rows = !(contiguous && aligned) && out.dim() > 1 && row % kVec == 0 &&
              rows_vectorizable(out, o, sizeof(O), sizeof(O) * kVec);
  for (int k = 0; k < NIN && rows; ++k) {
    rows = rows_vectorizable(*ins[size_t(k)], ptrs.p[k], sizeof(I), sizeof(I) * kVec);
  }
  if (contiguous && aligned) {
    map_contiguous_kernel<NIN, kVec, O, I, F>
        <<<grid_for((n + kVec - 1) / kVec), kBlockSize, 0, stream>>>(o, ptrs, n, f);
  } else if (rows) {
    const Shape lead(out.shape().begin(), out.shape().end() - 1);
    std::array<Shape, size_t(NIN + 1)> lead_strides;
    lead_strides[0] = Shape(out.strides().begin(), out.strides().end() - 1);
    for (int k = 0; k < NIN; ++k) {
      const Shape& st = ins[size_t(k)]->strides();
      lead_strides[size_t(k + 1)] = Shape(st.begin(), st.end() - 1);
    }
    std::array<const Shape*, size_t(NIN + 1)> strides;
    for (size_t k = 0; k < strides.size(); ++k) strides[k] = &lead_strides[k];
    const OffsetCalc<NIN + 1> calc = make_offset_calc<NIN + 1>(lead, strides);
    // kBlockSize threads: up to 32 along the row, the rest over rows.
    const int64_t row_vecs = row / kVec, rows_n = n / row;
    unsigned bx = 32;
    while (bx > 1 && int64_t(bx / 2) >= row_vecs) bx /= 2;
    const unsigned by = unsigned(kBlockSize) / bx;
    const int64_t gx = (row_vecs + bx - 1) / bx;
    const int64_t gy = std::min<int64_t>((rows_n + by - 1) / by, std::max<int64_t>(1, 65536 / gx));
    map_rows_kernel<NIN, kVec, O, I, F><<<dim3(unsigned(gx), unsigned(std::min<int64_t>(gy, 65535))), dim3(bx, by), 0,
                                          stream>>>(o, ptrs, rows_n, row_vecs, calc, f);
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
