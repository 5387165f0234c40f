// Raw elementwise ops: binary (numpy broadcasting), scalar binary, unary and its backward,
// where, and the in-place binary_. Operands must share a dtype; comparisons produce bool.
#include "core/ops.h"
#include "core/ops_util.h"

namespace zt::raw {
namespace {

void check_binary_dtype(BinaryOp op, DType t) {
  const bool arithmetic_on_bool = t == DType::boolean &&
      (op == BinaryOp::sub || op == BinaryOp::div || op == BinaryOp::pow);
  ZT_CHECK(!arithmetic_on_bool, "binary ", op_name(op), ": not defined for bool tensors");
}

bool needs_floating(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg:
    case UnaryOp::abs:
    case UnaryOp::square:
    case UnaryOp::relu:
    case UnaryOp::logical_not: return false;
    default: return true;
  }
}

DType binary_out_dtype(BinaryOp op, DType t) { return is_comparison(op) ? DType::boolean : t; }

// True when writing a in place could clobber elements of b before they are read.
bool may_alias(const Tensor& a, const Tensor& b) {
  return detail::may_overlap(a, b) &&
         !(a.offset() == b.offset() && a.strides() == b.strides() && a.shape() == b.shape());
}

bool has_broadcast_dim(const Tensor& a) {
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.stride(d) == 0 && a.size(d) > 1) return true;
  return false;
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  detail::check_same_device(op_name(op), {&a, &b});
  detail::check_same_dtype(op_name(op), a, b);
  check_binary_dtype(op, a.dtype());
  Shape broadcast;
  const Shape& shape = detail::broadcast_shape_of(a, b, broadcast);
  Tensor out = Tensor::empty(shape, {binary_out_dtype(op, a.dtype()), a.device()});
  if (out.numel() > 0) {
    backend_for(a.device()).binary(op, out, detail::broadcast_operand(a, shape), detail::broadcast_operand(b, shape));
  }
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, double scalar, bool scalar_first) {
  detail::check_defined(op_name(op), {&a});
  check_binary_dtype(op, a.dtype());
  Tensor out = Tensor::empty(a.shape(), {binary_out_dtype(op, a.dtype()), a.device()});
  if (out.numel() > 0) backend_for(a.device()).binary_scalar(op, out, a, scalar, scalar_first);
  return out;
}

Tensor unary(UnaryOp op, const Tensor& a) {
  detail::check_defined(op_name(op), {&a});
  if (needs_floating(op)) detail::check_floating(op_name(op), a);
  ZT_CHECK(a.dtype() != DType::boolean || op == UnaryOp::logical_not, op_name(op),
           ": not defined for bool tensors");
  const DType out_dtype = op == UnaryOp::logical_not ? DType::boolean : a.dtype();
  Tensor out = Tensor::empty(a.shape(), {out_dtype, a.device()});
  if (out.numel() > 0) backend_for(a.device()).unary(op, out, a);
  return out;
}

Tensor unary_backward(UnaryOp op, const Tensor& grad_out, const Tensor& x) {
  const char* name = "unary_backward";
  detail::check_same_device(name, {&grad_out, &x});
  detail::check_same_dtype(name, grad_out, x);
  detail::check_floating(name, x);
  ZT_CHECK(grad_out.shape() == x.shape(), name, " ", op_name(op), ": grad_out shape ",
           shape_str(grad_out.shape()), " differs from input shape ", shape_str(x.shape()));
  Tensor grad_in = Tensor::empty(x.shape(), {x.dtype(), x.device()});
  if (grad_in.numel() > 0) backend_for(x.device()).unary_backward(op, grad_in, grad_out, x);
  return grad_in;
}

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b); }
Tensor add(const Tensor& a, double s) { return binary(BinaryOp::add, a, s); }
Tensor mul(const Tensor& a, double s) { return binary(BinaryOp::mul, a, s); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  detail::check_same_device("where", {&cond, &a, &b});
  detail::check_same_dtype("where", a, b);
  ZT_CHECK(cond.dtype() == DType::boolean || cond.dtype() == DType::u8,
           "where: cond must be bool or u8, found ", dtype_name(cond.dtype()));
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape()), b.shape());
  Tensor out = Tensor::empty(shape, {a.dtype(), a.device()});
  if (out.numel() > 0)
    backend_for(a.device()).where(out, detail::broadcast_operand(cond, shape), detail::broadcast_operand(a, shape),
                                  detail::broadcast_operand(b, shape));
  return out;
}

void binary_(BinaryOp op, const Tensor& a, const Tensor& b) {
  detail::check_same_device(op_name(op), {&a, &b});
  detail::check_same_dtype(op_name(op), a, b);
  check_binary_dtype(op, a.dtype());
  ZT_CHECK(binary_out_dtype(op, a.dtype()) == a.dtype(), "in-place ", op_name(op),
           ": the bool result cannot be written into a ", dtype_name(a.dtype()), " tensor");
  ZT_CHECK(!has_broadcast_dim(a), "in-place ", op_name(op), ": the destination ",
           shape_str(a.shape()), " is a broadcast view (stride 0); clone it first");
  Shape broadcast;
  const Shape& shape = detail::broadcast_shape_of(a, b, broadcast);
  ZT_CHECK(shape == a.shape(), "in-place ", op_name(op), ": operand ", shape_str(b.shape()),
           " would broadcast the destination ", shape_str(a.shape()), " to ", shape_str(shape));
  if (a.numel() == 0) return;
  if (a.is_contiguous() && !may_alias(a, b)) {
    backend_for(a.device()).binary(op, a, a, detail::broadcast_operand(b, shape));
    return;
  }
  copy_(a, binary(op, a, b));
}

void binary_(BinaryOp op, const Tensor& a, double scalar) {
  detail::check_defined(op_name(op), {&a});
  check_binary_dtype(op, a.dtype());
  ZT_CHECK(binary_out_dtype(op, a.dtype()) == a.dtype(), "in-place ", op_name(op),
           ": the bool result cannot be written into a ", dtype_name(a.dtype()), " tensor");
  ZT_CHECK(!has_broadcast_dim(a), "in-place ", op_name(op), ": the destination ",
           shape_str(a.shape()), " is a broadcast view (stride 0); clone it first");
  if (a.numel() == 0) return;
  if (a.is_contiguous()) {
    backend_for(a.device()).binary_scalar(op, a, a, scalar, false);
    return;
  }
  copy_(a, binary(op, a, scalar));
}

}  // namespace zt::raw
