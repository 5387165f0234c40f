// Checks shared by the raw op files (core/ops_*.cpp): defined inputs, one device, one dtype.
// Internal to core: the error messages name the op and what was found.
#pragma once
#include <initializer_list>
#include <optional>

#include "core/ops.h"
#include "core/tensor.h"

namespace zt::raw::detail {

inline void check_defined(const char* op, std::initializer_list<const Tensor*> tensors) {
  int i = 0;
  for (const Tensor* t : tensors) {
    ZT_CHECK(t->defined(), op, ": input ", i, " is an undefined tensor");
    ++i;
  }
}

// All tensors must be defined and live on the first one's device.
inline void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  check_defined(op, tensors);
  const Device d = (*tensors.begin())->device();
  for (const Tensor* t : tensors)
    ZT_CHECK(t->device() == d, op, ": all inputs must be on one device, found ", d.str(), " and ",
             t->device().str());
}

inline void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  ZT_CHECK(a.dtype() == b.dtype(), op, ": operands must share a dtype, found ",
           dtype_name(a.dtype()), " and ", dtype_name(b.dtype()),
           " (convert one with to(dtype) first)");
}

inline void check_floating(const char* op, const Tensor& a) {
  ZT_CHECK(is_floating(a.dtype()), op, ": expected a floating dtype (f32, f64, f16, bf16), found ",
           dtype_name(a.dtype()));
}

inline void check_index_dtype(const char* op, const Tensor& index) {
  ZT_CHECK(index.dtype() == DType::i32 || index.dtype() == DType::i64, op,
           ": indices must be i32 or i64, found ", dtype_name(index.dtype()));
}

// Strides that let `new_shape` view memory laid out as (old_shape, old_strides), or nullopt
// when the layout needs a copy (defined in core/ops_views.cpp).
std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides,
                                  const Shape& new_shape);

// True when two views of one storage may touch the same bytes (their spans intersect).
inline bool may_overlap(const Tensor& a, const Tensor& b) {
  if (!a.shares_storage(b) || a.numel() == 0 || b.numel() == 0) return false;
  auto byte_span = [](const Tensor& t, int64_t* begin, int64_t* end) {
    int64_t last = t.offset();
    for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * t.stride(d);
    *begin = t.offset() * int64_t(t.element_size());
    *end = (last + 1) * int64_t(t.element_size());
  };
  int64_t a0, a1, b0, b1;
  byte_span(a, &a0, &a1);
  byte_span(b, &b0, &b1);
  return a0 < b1 && b0 < a1;
}

// A new view over a's storage.
inline Tensor make_view(const Tensor& a, Shape shape, Shape strides, int64_t offset) {
  return Tensor::view_of(a.storage(), std::move(shape), std::move(strides), offset, a.dtype());
}

// Note [Small-op host cost]
// A 4x4 op on the GPU costs the host a kernel launch (3.3-4.5 us through the CUDA runtime on the
// H200 machine, bench_cuda_ops --only overhead) plus what zerotrain adds: about 0.2 us to
// allocate the output, 0.2-0.4 us of dispatch and checks, 0.3 us of autograd. Most of that is
// heap allocation, so the hot paths avoid what they do not need: operands that already have the
// op's shape are passed as they are (no broadcast view, ~1,000 instructions each), a device guard
// that finds its device current touches nothing on exit, the current stream is one atomic load,
// and the allocator sets the device only around cudaMalloc.

// The broadcast shape of a and b: a's own shape when b's is the same (no new vector), else the
// broadcast result, kept in `storage` (Note [Small-op host cost]).
inline const Shape& broadcast_shape_of(const Tensor& a, const Tensor& b, Shape& storage) {
  if (a.shape() == b.shape()) return a.shape();
  storage = broadcast_shapes(a.shape(), b.shape());
  return storage;
}

// `t` as an operand of an op over `shape`: `t` itself when it has that shape, else its broadcast
// view (Note [Small-op host cost]).
inline Tensor broadcast_operand(const Tensor& t, const Shape& shape) {
  return t.shape() == shape ? t : expand(t, shape);
}

}  // namespace zt::raw::detail
