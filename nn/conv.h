// Conv2d: 2-D convolution over NCHW input with weight (out, in / groups, KH, KW) and bias (out),
// initialised as PyTorch's nn.Conv2d; stride, padding, dilation and groups as PyTorch.
#pragma once
#include "core/conv_geometry.h"
#include "core/generator.h"
#include "nn/module.h"

namespace zt {

struct Conv2dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;
  bool bias = true;
  DType dtype = DType::f32;
  Device device = Device::cpu();
  Generator* generator = nullptr;  // default_generator() when null

  // Square kernel, stride, padding and dilation: Conv2dOptions::square(1, 32, 5, 1, 2).
  static Conv2dOptions square(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1,
                              int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1) {
    Conv2dOptions o;
    o.in_channels = in;
    o.out_channels = out;
    o.kernel_h = o.kernel_w = kernel;
    o.stride_h = o.stride_w = stride;
    o.pad_h = o.pad_w = padding;
    o.dil_h = o.dil_w = dilation;
    o.groups = groups;
    return o;
  }
};

class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dOptions& options);
  Tensor forward(const Tensor& x) override;  // (N, in, H, W) -> (N, out, OH, OW)

  const Tensor& weight() const { return parameter("weight"); }  // (out, in / groups, KH, KW)
  Tensor bias() const;                                          // (out) or undefined
  const Conv2dGeometry& geometry() const { return geometry_; }
  int64_t in_channels() const { return in_channels_; }
  int64_t out_channels() const { return out_channels_; }

 private:
  int64_t in_channels_, out_channels_;
  Conv2dGeometry geometry_;
};

}  // namespace zt
