// Raw 2-D convolution and pooling ops (NCHW): argument checks with PyTorch's rules, output
// allocation, contiguous operands and dispatch to the backend kernels of core/ops.def.
#include "core/ops.h"
#include "core/ops_util.h"

namespace zt::raw {
namespace {

void check_4d(const char* op, const char* what, const Tensor& t) {
  ZT_CHECK(t.dim() == 4, op, ": ", what, " must be 4-D (N, C, H, W), found shape ", shape_str(t.shape()));
}

void check_geometry(const char* op, const Conv2dGeometry& g) {
  ZT_CHECK(g.stride_h >= 1 && g.stride_w >= 1, op, ": stride must be positive, found (", g.stride_h,
           ", ", g.stride_w, ")");
  ZT_CHECK(g.pad_h >= 0 && g.pad_w >= 0, op, ": padding must be non-negative, found (", g.pad_h, ", ",
           g.pad_w, ")");
  ZT_CHECK(g.dil_h >= 1 && g.dil_w >= 1, op, ": dilation must be positive, found (", g.dil_h, ", ",
           g.dil_w, ")");
  ZT_CHECK(g.groups >= 1, op, ": groups must be positive, found ", g.groups);
}

// The output shape of conv2d for x (N, C, H, W) and weight (O, C / groups, KH, KW).
Shape conv_output_shape(const char* op, const Shape& x, const Shape& w, const Conv2dGeometry& g) {
  check_geometry(op, g);
  ZT_CHECK(x[1] % g.groups == 0 && w[0] % g.groups == 0, op, ": input channels ", x[1],
           " and output channels ", w[0], " must both be divisible by groups=", g.groups);
  ZT_CHECK(w[1] * g.groups == x[1], op, ": weight ", shape_str(w), " expects ", w[1] * g.groups,
           " input channels (C / groups = ", w[1], ", groups = ", g.groups, "), but the input ",
           shape_str(x), " has ", x[1]);
  const int64_t oh = conv_output_size(x[2], w[2], g.stride_h, g.pad_h, g.dil_h);
  const int64_t ow = conv_output_size(x[3], w[3], g.stride_w, g.pad_w, g.dil_w);
  ZT_CHECK(w[2] >= 1 && w[3] >= 1 && oh >= 1 && ow >= 1, op, ": kernel (", w[2], ", ", w[3],
           ") with dilation (", g.dil_h, ", ", g.dil_w, ") does not fit the padded input (",
           x[2] + 2 * g.pad_h, ", ", x[3] + 2 * g.pad_w, ")");
  return {x[0], w[0], oh, ow};
}

void check_conv_operands(const char* op, const Tensor& a, const Tensor& b) {
  detail::check_same_device(op, {&a, &b});
  detail::check_floating(op, a);
  detail::check_same_dtype(op, a, b);
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dGeometry& g) {
  const char* op = "conv2d";
  check_conv_operands(op, x, weight);
  check_4d(op, "input", x);
  check_4d(op, "weight", weight);
  const Shape out_shape = conv_output_shape(op, x.shape(), weight.shape(), g);
  Tensor b;
  if (bias.defined()) {
    check_conv_operands(op, x, bias);
    ZT_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), op, ": bias must have shape (",
             weight.size(0), ",), found ", shape_str(bias.shape()));
    b = contiguous(bias);
  }
  Tensor out = Tensor::empty(out_shape, {x.dtype(), x.device()});
  if (out.numel() > 0) backend_for(x.device()).conv2d_forward(out, contiguous(x), contiguous(weight), b, g);
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& x_shape,
                             const Conv2dGeometry& g) {
  const char* op = "conv2d_backward_input";
  check_conv_operands(op, grad_out, weight);
  check_4d(op, "weight", weight);
  ZT_CHECK(x_shape.size() == 4, op, ": the input shape must be 4-D, found ", shape_str(x_shape));
  const Shape out_shape = conv_output_shape(op, x_shape, weight.shape(), g);
  ZT_CHECK(grad_out.shape() == out_shape, op, ": grad_out must have shape ", shape_str(out_shape),
           ", found ", shape_str(grad_out.shape()));
  Tensor grad_x = Tensor::empty(x_shape, {grad_out.dtype(), grad_out.device()});
  if (grad_x.numel() == 0) return grad_x;
  if (grad_out.numel() == 0) {  // no output channels: the input does not reach the loss
    fill_(grad_x, 0.0);
    return grad_x;
  }
  backend_for(grad_out.device()).conv2d_backward_input(grad_x, contiguous(grad_out), contiguous(weight), g);
  return grad_x;
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dGeometry& g) {
  const char* op = "conv2d_backward_weight";
  check_conv_operands(op, grad_out, x);
  check_4d(op, "input", x);
  ZT_CHECK(weight_shape.size() == 4, op, ": the weight shape must be 4-D, found ", shape_str(weight_shape));
  const Shape out_shape = conv_output_shape(op, x.shape(), weight_shape, g);
  ZT_CHECK(grad_out.shape() == out_shape, op, ": grad_out must have shape ", shape_str(out_shape),
           ", found ", shape_str(grad_out.shape()));
  Tensor grad_w = Tensor::empty(weight_shape, {x.dtype(), x.device()});
  if (grad_w.numel() == 0) return grad_w;
  if (grad_out.numel() == 0) {  // an empty batch contributes nothing
    fill_(grad_w, 0.0);
    return grad_w;
  }
  backend_for(x.device()).conv2d_backward_weight(grad_w, contiguous(grad_out), contiguous(x), g);
  return grad_w;
}

namespace {

Shape pool_output_shape(const char* op, const Shape& x, const Pool2dGeometry& g) {
  ZT_CHECK(x.size() == 4, op, ": input must be 4-D (N, C, H, W), found shape ", shape_str(x));
  ZT_CHECK(g.kernel_h >= 1 && g.kernel_w >= 1 && g.stride_h >= 1 && g.stride_w >= 1 && g.dil_h >= 1 &&
               g.dil_w >= 1,
           op, ": kernel, stride and dilation must be positive, found kernel (", g.kernel_h, ", ",
           g.kernel_w, "), stride (", g.stride_h, ", ", g.stride_w, "), dilation (", g.dil_h, ", ",
           g.dil_w, ")");
  // PyTorch's rule: every window then holds at least one input element.
  ZT_CHECK(g.pad_h >= 0 && g.pad_w >= 0 && g.pad_h <= g.kernel_h / 2 && g.pad_w <= g.kernel_w / 2, op,
           ": padding must be between 0 and half the kernel size, found padding (", g.pad_h, ", ",
           g.pad_w, ") for kernel (", g.kernel_h, ", ", g.kernel_w, ")");
  const int64_t oh = conv_output_size(x[2], g.kernel_h, g.stride_h, g.pad_h, g.dil_h);
  const int64_t ow = conv_output_size(x[3], g.kernel_w, g.stride_w, g.pad_w, g.dil_w);
  ZT_CHECK(oh >= 1 && ow >= 1, op, ": kernel (", g.kernel_h, ", ", g.kernel_w,
           ") does not fit the padded input (", x[2] + 2 * g.pad_h, ", ", x[3] + 2 * g.pad_w, ")");
  return {x[0], x[1], oh, ow};
}

void check_avg_dilation(const char* op, const Pool2dGeometry& g) {
  ZT_CHECK(g.dil_h == 1 && g.dil_w == 1, op, ": average pooling has no dilation, found (", g.dil_h,
           ", ", g.dil_w, ")");
}

void check_grad_out(const char* op, const Tensor& grad_out, const Shape& expected) {
  detail::check_defined(op, {&grad_out});
  detail::check_floating(op, grad_out);
  ZT_CHECK(grad_out.shape() == expected, op, ": grad_out must have shape ", shape_str(expected),
           ", found ", shape_str(grad_out.shape()));
}

}  // namespace

MaxPool2dResult max_pool2d(const Tensor& x, const Pool2dGeometry& g) {
  const char* op = "max_pool2d";
  detail::check_defined(op, {&x});
  detail::check_floating(op, x);
  const Shape out_shape = pool_output_shape(op, x.shape(), g);
  MaxPool2dResult r;
  r.out = Tensor::empty(out_shape, {x.dtype(), x.device()});
  r.indices = Tensor::empty(out_shape, {DType::i64, x.device()});
  if (r.out.numel() > 0) backend_for(x.device()).max_pool2d(r.out, r.indices, contiguous(x), g);
  return r;
}

Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& x_shape,
                           const Pool2dGeometry& g) {
  const char* op = "max_pool2d_backward";
  check_grad_out(op, grad_out, pool_output_shape(op, x_shape, g));
  detail::check_same_device(op, {&grad_out, &indices});
  ZT_CHECK(indices.dtype() == DType::i64 && indices.shape() == grad_out.shape(), op,
           ": indices must be i64 of shape ", shape_str(grad_out.shape()), ", found ", indices.str());
  Tensor grad_x = Tensor::empty(x_shape, {grad_out.dtype(), grad_out.device()});
  if (grad_x.numel() > 0)
    backend_for(grad_out.device()).max_pool2d_backward(grad_x, contiguous(grad_out), contiguous(indices), g);
  return grad_x;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dGeometry& g) {
  const char* op = "avg_pool2d";
  detail::check_defined(op, {&x});
  detail::check_floating(op, x);
  check_avg_dilation(op, g);
  const Shape out_shape = pool_output_shape(op, x.shape(), g);
  Tensor out = Tensor::empty(out_shape, {x.dtype(), x.device()});
  if (out.numel() > 0) backend_for(x.device()).avg_pool2d(out, contiguous(x), g);
  return out;
}

Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& x_shape, const Pool2dGeometry& g) {
  const char* op = "avg_pool2d_backward";
  check_avg_dilation(op, g);
  check_grad_out(op, grad_out, pool_output_shape(op, x_shape, g));
  Tensor grad_x = Tensor::empty(x_shape, {grad_out.dtype(), grad_out.device()});
  if (grad_x.numel() > 0) backend_for(grad_out.device()).avg_pool2d_backward(grad_x, contiguous(grad_out), g);
  return grad_x;
}

}  // namespace zt::raw
