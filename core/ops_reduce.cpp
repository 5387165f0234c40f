// Raw reductions: sum/mean/max/min over dims (keepdim or not), argmax/argmin, and sum_to (the
// backward of broadcasting).
#include <algorithm>
#include <cmath>

#include "core/ops.h"
#include "core/ops_util.h"

namespace zt::raw {
namespace {

// Sorted unique normalised dims; {} means every dim.
std::vector<int> normalize_dims(const std::vector<int64_t>& dims, int64_t ndim) {
  std::vector<int> out;
  if (dims.empty()) {
    for (int d = 0; d < ndim; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) {
    const int n = normalize_dim(d, ndim);
    ZT_CHECK(std::find(out.begin(), out.end(), n) == out.end(), "reduce: dim ", d,
             " appears twice in ", shape_str(dims));
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  if (ndim == 0) out.clear();  // a 0-dim tensor accepts dim 0/-1 and reduces over nothing
  return out;
}

DType reduce_out_dtype(ReduceOp op, DType t) {
  const bool widen = op == ReduceOp::sum &&
      (t == DType::boolean || t == DType::u8 || t == DType::i32);
  return widen ? DType::i64 : t;
}

// a's shape with `dims` set to 1 (keepdim) or removed.
Shape reduced_shape(const Shape& shape, const std::vector<int>& dims, bool keepdim) {
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d) {
    const bool reduced = std::find(dims.begin(), dims.end(), int(d)) != dims.end();
    if (!reduced) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

}  // namespace

Tensor reduce(ReduceOp op, const Tensor& a, std::vector<int64_t> dims, bool keepdim, std::optional<DType> dtype) {
  detail::check_defined(op_name(op), {&a});
  if (op == ReduceOp::mean || op == ReduceOp::sum_squares) detail::check_floating(op_name(op), a);
  const DType out_dtype = dtype.value_or(reduce_out_dtype(op, a.dtype()));
  if (out_dtype != reduce_out_dtype(op, a.dtype())) {
    const bool sums = op == ReduceOp::sum || op == ReduceOp::mean || op == ReduceOp::sum_squares;
    const bool wider = out_dtype == DType::f64 || (out_dtype == DType::f32 && a.dtype() != DType::f64);
    ZT_CHECK(sums && is_floating(a.dtype()) && wider, op_name(op), ": cannot return ", dtype_name(out_dtype),
             " for a ", dtype_name(a.dtype()), " input (expected ", dtype_name(reduce_out_dtype(op, a.dtype())),
             ", or f32/f64 no narrower than the input for the sum, mean or sum_squares of a floating input)");
  }
  const std::vector<int> nd = normalize_dims(dims, a.dim());
  const Shape kept = reduced_shape(a.shape(), nd, true);
  Tensor out = Tensor::empty(kept, {out_dtype, a.device()});
  if (out.numel() > 0) {
    int64_t reduced_count = 1;
    for (int d : nd) reduced_count *= a.size(d);
    const bool sums = op == ReduceOp::sum || op == ReduceOp::sum_squares;
    ZT_CHECK(reduced_count > 0 || sums || op == ReduceOp::mean, op_name(op),
             ": cannot reduce over an empty dim of shape ", shape_str(a.shape()));
    if (reduced_count == 0) {
      fill_(out, sums ? 0.0 : std::nan(""));  // empty mean is NaN, as numpy
    } else {
      backend_for(a.device()).reduce(op, out, a, nd);
    }
  }
  return keepdim ? out : view(out, reduced_shape(a.shape(), nd, false));
}

Tensor sum(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return reduce(ReduceOp::sum, a, std::move(dims), keepdim);
}
Tensor mean(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return reduce(ReduceOp::mean, a, std::move(dims), keepdim);
}
Tensor amax(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return reduce(ReduceOp::max, a, std::move(dims), keepdim);
}
Tensor amin(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return reduce(ReduceOp::min, a, std::move(dims), keepdim);
}

namespace {

Tensor arg_reduce(ArgReduceOp op, const Tensor& a, int64_t dim, bool keepdim) {
  const char* name = op == ArgReduceOp::argmax ? "argmax" : "argmin";
  detail::check_defined(name, {&a});
  if (a.dim() == 0) {  // a scalar: index 0 of itself
    Tensor out = Tensor::empty({}, {DType::i64, a.device()});
    fill_(out, 0.0);
    return out;
  }
  const int d = normalize_dim(dim, a.dim());
  ZT_CHECK(a.size(d) > 0, name, ": dim ", d, " of shape ", shape_str(a.shape()), " is empty");
  const Shape kept = reduced_shape(a.shape(), {d}, true);
  Tensor out = Tensor::empty(kept, {DType::i64, a.device()});
  if (out.numel() > 0) backend_for(a.device()).arg_reduce(op, out, a, d);
  return keepdim ? out : view(out, reduced_shape(a.shape(), {d}, false));
}

}  // namespace

Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) {
  return arg_reduce(ArgReduceOp::argmax, a, dim, keepdim);
}
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim) {
  return arg_reduce(ArgReduceOp::argmin, a, dim, keepdim);
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  detail::check_defined("sum_to", {&a});
  if (a.shape() == shape) return a;
  ZT_CHECK(shape.size() <= a.shape().size(), "sum_to: cannot reduce shape ", shape_str(a.shape()),
           " to the larger rank shape ", shape_str(shape));
  const size_t lead = a.shape().size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t d = 0; d < a.shape().size(); ++d) {
    if (d < lead) {
      dims.push_back(int64_t(d));
      continue;
    }
    const int64_t want = shape[d - lead], have = a.shape()[d];
    ZT_CHECK(want == have || want == 1, "sum_to: shape ", shape_str(shape),
             " does not broadcast to ", shape_str(a.shape()));
    if (want == 1 && have != 1) dims.push_back(int64_t(d));
  }
  if (dims.empty()) return reshape(a, shape);
  return reshape(reduce(ReduceOp::sum, a, dims, true), shape);
}

}  // namespace zt::raw
