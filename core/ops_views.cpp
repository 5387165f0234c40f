// Raw view ops: reshape, transpose, permute, narrow, slice, select, (un)squeeze, flatten, expand,
// split. Each builds new shape/strides/offset over the same storage; only reshape of a layout
// that cannot be expressed as strides copies.
#include <algorithm>

#include "core/ops.h"
#include "core/ops_util.h"

namespace zt::raw {
namespace {

// Replaces a single -1 in `shape` by the size that makes numel match.
Shape infer_shape(const Shape& shape, int64_t numel, const Shape& from) {
  Shape out = shape;
  int infer_at = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      ZT_CHECK(infer_at < 0, "reshape: only one dim may be -1, found shape ", shape_str(shape));
      infer_at = int(i);
    } else {
      ZT_CHECK(out[i] >= 0, "reshape: invalid size ", out[i], " in shape ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer_at >= 0) {
    ZT_CHECK(known != 0 && numel % known == 0, "reshape: cannot reshape ", shape_str(from),
             " (", numel, " elements) into ", shape_str(shape));
    out[size_t(infer_at)] = numel / known;
  }
  ZT_CHECK(shape_numel(out) == numel, "reshape: cannot reshape ", shape_str(from), " (", numel,
           " elements) into ", shape_str(shape), " (", shape_numel(out), " elements)");
  return out;
}

}  // namespace

// Each run of old dims that is contiguous in memory ("chunk") must map onto whole new dims.
std::optional<Shape> detail::view_strides(const Shape& old_shape, const Shape& old_strides,
                                  const Shape& new_shape) {
  if (old_shape.empty() || shape_numel(old_shape) == 0) return contiguous_strides(new_shape);
  Shape new_strides(new_shape.size(), 1);
  int64_t view_d = int64_t(new_shape.size()) - 1;
  int64_t chunk_stride = old_strides.back(), tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[size_t(d)];
    const bool chunk_ends =
        d == 0 || (old_shape[size_t(d - 1)] != 1 &&
                   old_strides[size_t(d - 1)] != tensor_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || new_shape[size_t(view_d)] == 1)) {
      new_strides[size_t(view_d)] = view_numel * chunk_stride;
      view_numel *= new_shape[size_t(view_d)];
      --view_d;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (d > 0) {
      chunk_stride = old_strides[size_t(d - 1)];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return new_strides;
}

Tensor reshape(const Tensor& a, Shape shape) {
  detail::check_defined("reshape", {&a});
  shape = infer_shape(shape, a.numel(), a.shape());
  if (auto strides = detail::view_strides(a.shape(), a.strides(), shape))
    return detail::make_view(a, shape, *strides, a.offset());
  Tensor c = contiguous(a);
  return detail::make_view(c, shape, contiguous_strides(shape), c.offset());
}

Tensor view(const Tensor& a, Shape shape) {
  detail::check_defined("view", {&a});
  shape = infer_shape(shape, a.numel(), a.shape());
  auto strides = detail::view_strides(a.shape(), a.strides(), shape);
  ZT_CHECK(strides, "view: a tensor of shape ", shape_str(a.shape()), " and strides ",
           shape_str(a.strides()), " cannot be viewed as ", shape_str(shape),
           " without a copy (use reshape)");
  return detail::make_view(a, shape, *strides, a.offset());
}

Tensor transpose(const Tensor& a, int64_t dim0, int64_t dim1) {
  detail::check_defined("transpose", {&a});
  const int d0 = normalize_dim(dim0, a.dim()), d1 = normalize_dim(dim1, a.dim());
  Shape shape = a.shape(), strides = a.strides();
  if (a.dim() == 0) return detail::make_view(a, shape, strides, a.offset());
  std::swap(shape[size_t(d0)], shape[size_t(d1)]);
  std::swap(strides[size_t(d0)], strides[size_t(d1)]);
  return detail::make_view(a, shape, strides, a.offset());
}

Tensor permute(const Tensor& a, const std::vector<int64_t>& dims) {
  detail::check_defined("permute", {&a});
  ZT_CHECK(int64_t(dims.size()) == a.dim(), "permute: expected ", a.dim(), " dims for shape ",
           shape_str(a.shape()), ", found ", dims.size(), " ", shape_str(dims));
  Shape shape(dims.size()), strides(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int d = normalize_dim(dims[i], a.dim());
    ZT_CHECK(!seen[size_t(d)], "permute: dim ", d, " repeated in ", shape_str(dims));
    seen[size_t(d)] = true;
    shape[i] = a.shape()[size_t(d)];
    strides[i] = a.strides()[size_t(d)];
  }
  return detail::make_view(a, shape, strides, a.offset());
}

Tensor narrow(const Tensor& a, int64_t dim, int64_t start, int64_t length) {
  detail::check_defined("narrow", {&a});
  ZT_CHECK(a.dim() > 0, "narrow: cannot narrow a 0-dim tensor");
  const int d = normalize_dim(dim, a.dim());
  const int64_t size = a.shape()[size_t(d)];
  if (start < 0) start += size;
  ZT_CHECK(start >= 0 && length >= 0 && start + length <= size, "narrow: range [", start, ", ",
           start + length, ") is out of bounds for dim ", d, " of shape ", shape_str(a.shape()));
  Shape shape = a.shape();
  shape[size_t(d)] = length;
  return detail::make_view(a, shape, a.strides(), a.offset() + start * a.strides()[size_t(d)]);
}

Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end, int64_t step) {
  detail::check_defined("slice", {&a});
  ZT_CHECK(a.dim() > 0, "slice: cannot slice a 0-dim tensor");
  ZT_CHECK(step > 0, "slice: step must be positive, found ", step);
  const int d = normalize_dim(dim, a.dim());
  const int64_t size = a.shape()[size_t(d)];
  // Python semantics: negative bounds count from the end, out-of-range bounds are clamped.
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  Shape shape = a.shape(), strides = a.strides();
  shape[size_t(d)] = (end - start + step - 1) / step;
  strides[size_t(d)] *= step;
  return detail::make_view(a, shape, strides, a.offset() + start * a.strides()[size_t(d)]);
}

Tensor select(const Tensor& a, int64_t dim, int64_t index) {
  detail::check_defined("select", {&a});
  ZT_CHECK(a.dim() > 0, "select: cannot select from a 0-dim tensor");
  const int d = normalize_dim(dim, a.dim());
  const int64_t size = a.shape()[size_t(d)];
  ZT_CHECK(index >= -size && index < size, "select: index ", index, " is out of range for dim ", d,
           " of shape ", shape_str(a.shape()));
  if (index < 0) index += size;
  Shape shape = a.shape(), strides = a.strides();
  const int64_t offset = a.offset() + index * strides[size_t(d)];
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return detail::make_view(a, shape, strides, offset);
}

Tensor unsqueeze(const Tensor& a, int64_t dim) {
  detail::check_defined("unsqueeze", {&a});
  const int d = normalize_dim(dim, a.dim() + 1);
  Shape shape = a.shape(), strides = a.strides();
  const int64_t stride = d < a.dim() ? strides[size_t(d)] * shape[size_t(d)] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return detail::make_view(a, shape, strides, a.offset());
}

// As PyTorch: squeezing a dim whose size is not 1 returns the tensor unchanged.
Tensor squeeze(const Tensor& a, int64_t dim) {
  detail::check_defined("squeeze", {&a});
  if (a.dim() == 0) return detail::make_view(a, a.shape(), a.strides(), a.offset());
  const int d = normalize_dim(dim, a.dim());
  Shape shape = a.shape(), strides = a.strides();
  if (shape[size_t(d)] == 1) {
    shape.erase(shape.begin() + d);
    strides.erase(strides.begin() + d);
  }
  return detail::make_view(a, shape, strides, a.offset());
}

Tensor flatten(const Tensor& a, int64_t start_dim, int64_t end_dim) {
  detail::check_defined("flatten", {&a});
  if (a.dim() == 0) return reshape(a, {1});
  const int s = normalize_dim(start_dim, a.dim()), e = normalize_dim(end_dim, a.dim());
  ZT_CHECK(s <= e, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim,
           " for shape ", shape_str(a.shape()));
  Shape shape(a.shape().begin(), a.shape().begin() + s);
  int64_t merged = 1;
  for (int d = s; d <= e; ++d) merged *= a.shape()[size_t(d)];
  shape.push_back(merged);
  shape.insert(shape.end(), a.shape().begin() + e + 1, a.shape().end());
  return reshape(a, shape);
}

Tensor expand(const Tensor& a, const Shape& shape) {
  detail::check_defined("expand", {&a});
  ZT_CHECK(shape.size() >= a.shape().size(), "expand: cannot expand shape ", shape_str(a.shape()),
           " to fewer dims ", shape_str(shape));
  const size_t lead = shape.size() - a.shape().size();
  Shape out_shape(shape.size()), strides(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      ZT_CHECK(shape[i] >= 0, "expand: new leading dim ", i, " cannot be ", shape[i], " in ",
               shape_str(shape));
      out_shape[i] = shape[i];
      strides[i] = 0;
      continue;
    }
    const int64_t have = a.shape()[i - lead];
    const int64_t want = shape[i] == -1 ? have : shape[i];
    ZT_CHECK(want == have || have == 1, "expand: cannot expand shape ", shape_str(a.shape()),
             " to ", shape_str(shape), " (dim ", i, ": ", have, " vs ", want, ")");
    out_shape[i] = want;
    strides[i] = want == have ? a.strides()[i - lead] : 0;
  }
  return detail::make_view(a, out_shape, strides, a.offset());
}

std::vector<Tensor> split(const Tensor& a, int64_t split_size, int64_t dim) {
  detail::check_defined("split", {&a});
  ZT_CHECK(split_size > 0, "split: split_size must be positive, found ", split_size);
  const int d = normalize_dim(dim, a.dim());
  const int64_t size = a.shape()[size_t(d)];
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < size; start += split_size)
    parts.push_back(narrow(a, d, start, std::min(split_size, size - start)));
  if (size == 0) parts.push_back(narrow(a, d, 0, 0));
  return parts;
}

std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim) {
  detail::check_defined("split", {&a});
  const int d = normalize_dim(dim, a.dim());
  int64_t total = 0;
  for (int64_t s : sizes) {
    ZT_CHECK(s >= 0, "split: negative size ", s, " in ", shape_str(sizes));
    total += s;
  }
  ZT_CHECK(total == a.shape()[size_t(d)], "split: sizes ", shape_str(sizes), " sum to ", total,
           " but dim ", d, " of shape ", shape_str(a.shape()), " has ", a.shape()[size_t(d)]);
  std::vector<Tensor> parts;
  int64_t start = 0;
  for (int64_t s : sizes) {
    parts.push_back(narrow(a, d, start, s));
    start += s;
  }
  return parts;
}

}  // namespace zt::raw
