// Geometry of 2-D convolution and pooling (NCHW): stride, padding, dilation, groups and window
// sizes as PyTorch's conv2d / max_pool2d / avg_pool2d take them, plus the output-size rule.
// Kept in one small struct per op family so kernel signatures stay short.
#pragma once
#include <cstdint>

namespace zt {

struct Conv2dGeometry {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;
};

struct Pool2dGeometry {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;  // PyTorch's default stride is the kernel size
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;        // max pooling only; avg pooling requires 1
  bool count_include_pad = true;       // avg pooling: padded zeros count in the divisor

  // A square window with stride = kernel when stride <= 0 (PyTorch's default).
  static Pool2dGeometry square(int64_t kernel, int64_t stride = 0, int64_t pad = 0) {
    Pool2dGeometry g;
    g.kernel_h = g.kernel_w = kernel;
    g.stride_h = g.stride_w = stride > 0 ? stride : kernel;
    g.pad_h = g.pad_w = pad;
    return g;
  }
};

// Output length of a window of `kernel` taps spaced `dilation` apart, sliding by `stride` over
// `in` elements padded by `pad` on both sides (floor mode, as PyTorch's default).
inline int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                                int64_t dilation) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;  // 0: the window does not fit
}

}  // namespace zt
