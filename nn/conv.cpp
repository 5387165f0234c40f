// Conv2d layer: weight kaiming-uniform with a = sqrt(5) and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// fan_in = in / groups * KH * KW, as nn.Conv2d's reset_parameters.
#include "nn/conv.h"

#include <cmath>

#include "autograd/ops.h"
#include "nn/init.h"

namespace zt {

Conv2d::Conv2d(const Conv2dOptions& o)
    : in_channels_(o.in_channels),
      out_channels_(o.out_channels),
      geometry_{o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dil_h, o.dil_w, o.groups} {
  ZT_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.kernel_h > 0 && o.kernel_w > 0, "Conv2d: expected ",
           "positive channels and kernel, found in=", o.in_channels, " out=", o.out_channels, " kernel=(",
           o.kernel_h, ", ", o.kernel_w, ")");
  ZT_CHECK(o.groups >= 1 && o.in_channels % o.groups == 0 && o.out_channels % o.groups == 0,
           "Conv2d: in_channels (", o.in_channels, ") and out_channels (", o.out_channels,
           ") must be divisible by groups (", o.groups, ")");
  ZT_CHECK(o.stride_h >= 1 && o.stride_w >= 1 && o.dil_h >= 1 && o.dil_w >= 1 && o.pad_h >= 0 && o.pad_w >= 0,
           "Conv2d: expected stride >= 1, dilation >= 1 and padding >= 0, found stride (", o.stride_h, ", ",
           o.stride_w, "), dilation (", o.dil_h, ", ", o.dil_w, "), padding (", o.pad_h, ", ", o.pad_w, ")");
  Generator& gen = o.generator ? *o.generator : default_generator();
  const TensorOptions to(o.dtype, o.device);
  Tensor w = empty({o.out_channels, o.in_channels / o.groups, o.kernel_h, o.kernel_w}, to);
  init::kaiming_uniform_(w, std::sqrt(5.0), gen);
  register_parameter("weight", w);
  if (o.bias) {
    const double bound = 1.0 / std::sqrt(double(init::compute_fans(w).fan_in));
    Tensor b = empty({o.out_channels}, to);
    init::uniform_(b, -bound, bound, gen);
    register_parameter("bias", b);
  }
}

Tensor Conv2d::bias() const { return has_parameter("bias") ? parameter("bias") : Tensor(); }

Tensor Conv2d::forward(const Tensor& x) {
  ZT_CHECK(x.dim() == 4 && x.size(1) == in_channels_, "Conv2d: expected input (N, ", in_channels_,
           ", H, W), found ", shape_str(x.shape()));
  return conv2d(x, weight(), bias(), geometry_);
}

}  // namespace zt
