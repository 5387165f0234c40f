// CPU indexing kernels: index_select (gather along one dim, the embedding forward) and
// index_add (scatter-add along one dim, the embedding backward). Any dtype; index i32/i64.
#include <algorithm>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"

namespace zt::cpu {
namespace {

// The index values as i64 in logical order, each checked against [0, limit). Read and checked
// serially because an exception must not leave an OpenMP region.
std::vector<int64_t> read_index(const Tensor& index, int64_t limit, int dim, const char* op) {
  ZT_CHECK(index.dim() <= 1, op, ": index must be 0-D or 1-D, found ", index.str());
  std::vector<int64_t> idx(size_t(index.numel()));
  ZT_DISPATCH_INDEX(index.dtype(), op, [&]<typename I>() {
    const I* p = typed_data<I>(index);
    const int64_t s = index.dim() == 1 ? index.stride(0) : 0;
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = int64_t(p[int64_t(i) * s]);
  });
  for (size_t i = 0; i < idx.size(); ++i) {
    ZT_CHECK(idx[i] >= 0 && idx[i] < limit, op, ": index[", i, "] = ", idx[i],
             " is out of range for dim ", dim, " of size ", limit, " (expected 0 <= index < ", limit, ")");
  }
  return idx;
}

Shape drop_dim(const Shape& s, int dim) {
  Shape out = s;
  out.erase(out.begin() + dim);
  return out;
}

// A slice (the tensor without the indexed dim) collapsed into rows of `inner` elements:
// operand k's element j of row r is at row_offsets[k][r] + j * inner_strides[k].
struct SliceRows {
  std::vector<std::array<int64_t, 2>> row_offsets;
  int64_t inner = 1;
  std::array<int64_t, 2> inner_strides{0, 0};
};

SliceRows slice_rows(const Shape& shape, const Shape& strides0, const Shape& strides1) {
  const CollapsedLayout<2> l = collapse_dims<2>(shape, {&strides0, &strides1});
  SliceRows out;
  const int nd = int(l.shape.size());
  if (nd == 0) {
    out.row_offsets.push_back({0, 0});
    return out;
  }
  out.inner = l.shape[size_t(nd - 1)];
  out.inner_strides = {l.strides[0][size_t(nd - 1)], l.strides[1][size_t(nd - 1)]};
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= l.shape[size_t(d)];
  out.row_offsets.reserve(size_t(rows));
  std::vector<int64_t> pos(size_t(std::max(nd - 1, 1)), 0);
  std::array<int64_t, 2> off{0, 0};
  for (int64_t r = 0; r < rows; ++r) {
    out.row_offsets.push_back(off);
    for (int d = nd - 2; d >= 0; --d) {  // odometer over the outer dims
      for (int k = 0; k < 2; ++k) off[size_t(k)] += l.strides[size_t(k)][size_t(d)];
      if (++pos[size_t(d)] < l.shape[size_t(d)]) break;
      for (int k = 0; k < 2; ++k) off[size_t(k)] -= pos[size_t(d)] * l.strides[size_t(k)][size_t(d)];
      pos[size_t(d)] = 0;
    }
  }
  return out;
}

}  // namespace

// out (..., n, ...) = a (..., idx, ...): slice i of out is slice index[i] of a. Each task
// copies one row of one slice, so threads split both the index (the embedding case) and the
// slice.
void CpuBackend::index_select(const Tensor& out, const Tensor& a, int dim, const Tensor& index) {
  ZT_CHECK(dim >= 0 && dim < a.dim(), "index_select: dim ", dim, " out of range for ", a.str());
  ZT_CHECK(out.dtype() == a.dtype(), "index_select: out dtype ", dtype_name(out.dtype()),
           " must match a's ", dtype_name(a.dtype()));
  const std::vector<int64_t> idx = read_index(index, a.size(dim), dim, "index_select");
  Shape expected = a.shape();
  expected[size_t(dim)] = int64_t(idx.size());
  ZT_CHECK(out.shape() == expected, "index_select: out must have shape ", shape_str(expected),
           ", found ", shape_str(out.shape()));
  const Shape out_strides = drop_dim(out.strides(), dim), a_strides = drop_dim(a.strides(), dim);
  const SliceRows rows = slice_rows(drop_dim(a.shape(), dim), out_strides, a_strides);
  const int64_t n = int64_t(idx.size()), out_step = out.stride(dim), a_step = a.stride(dim);
  const int64_t rows_per_slice = int64_t(rows.row_offsets.size());
  if (n == 0 || rows.inner == 0) return;
  ZT_DISPATCH_ALL(a.dtype(), "index_select", [&]<typename T>() {
    T* o = typed_data<T>(out);
    const T* src = typed_data<T>(a);
    const int64_t so = rows.inner_strides[0];
    const int64_t sa = rows.inner_strides[1];
    parallel_for(n * rows_per_slice, rows.inner, [&](int64_t task) {
      const int64_t i = task / rows_per_slice;
      const auto& base = rows.row_offsets[size_t(task % rows_per_slice)];
      T* d = o + i * out_step + base[0];
      const T* v = src + idx[size_t(i)] * a_step + base[1];
      if (so == 1 && sa == 1) {
        std::copy(v, v + rows.inner, d);
      } else {
        for (int64_t j = 0; j < rows.inner; ++j) d[j * so] = v[j * sa];
      }
    });
  });
}

// out (..., D, ...) += src (..., n, ...) at index: slice i of src adds into slice index[i] of
// out. Indices may repeat, so threads split the slice positions (disjoint outputs) and each
// walks every i in order, which also makes the result deterministic.
void CpuBackend::index_add(const Tensor& out, int dim, const Tensor& index, const Tensor& src) {
  ZT_CHECK(dim >= 0 && dim < out.dim(), "index_add: dim ", dim, " out of range for ", out.str());
  ZT_CHECK(out.dtype() == src.dtype(), "index_add: src dtype ", dtype_name(src.dtype()),
           " must match out's ", dtype_name(out.dtype()));
  const std::vector<int64_t> idx = read_index(index, out.size(dim), dim, "index_add");
  Shape expected = out.shape();
  expected[size_t(dim)] = int64_t(idx.size());
  ZT_CHECK(src.shape() == expected, "index_add: src must have shape ", shape_str(expected),
           ", found ", shape_str(src.shape()));
  const Shape out_strides = drop_dim(out.strides(), dim), src_strides = drop_dim(src.strides(), dim);
  const SliceRows rows = slice_rows(drop_dim(out.shape(), dim), out_strides, src_strides);
  const int64_t n = int64_t(idx.size()), out_step = out.stride(dim), src_step = src.stride(dim);
  constexpr int64_t kChunk = 256;  // slice elements per task: long enough for a vector loop
  const int64_t chunks_per_row = (rows.inner + kChunk - 1) / kChunk;
  const int64_t tasks = int64_t(rows.row_offsets.size()) * chunks_per_row;
  if (n == 0 || rows.inner == 0) return;
  ZT_DISPATCH_ALL(out.dtype(), "index_add", [&]<typename T>() {
    using A = compute_t<T>;
    T* o = typed_data<T>(out);
    const T* s = typed_data<T>(src);
    const int64_t so = rows.inner_strides[0];
    const int64_t ss = rows.inner_strides[1];
    parallel_for(tasks, n * kChunk, [&](int64_t task) {
      const auto& base = rows.row_offsets[size_t(task / chunks_per_row)];
      const int64_t j0 = (task % chunks_per_row) * kChunk, j1 = std::min(rows.inner, j0 + kChunk);
      for (int64_t i = 0; i < n; ++i) {
        T* d = o + base[0] + idx[size_t(i)] * out_step;
        const T* v = s + base[1] + i * src_step;
        for (int64_t j = j0; j < j1; ++j) d[j * so] = T(A(d[j * so]) + A(v[j * ss]));
      }
    });
  });
}

}  // namespace zt::cpu
