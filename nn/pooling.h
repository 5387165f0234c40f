// Pooling modules over NCHW input: MaxPool2d and AvgPool2d (PyTorch's geometry; the stride
// defaults to the kernel size).
#pragma once
#include "core/conv_geometry.h"
#include "nn/module.h"

namespace zt {

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Pool2dGeometry& geometry) : geometry_(geometry) {}
  // Square window; stride 0 means stride = kernel.
  explicit MaxPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0)
      : geometry_(Pool2dGeometry::square(kernel, stride, padding)) {}
  Tensor forward(const Tensor& x) override;
  const Pool2dGeometry& geometry() const { return geometry_; }

 private:
  Pool2dGeometry geometry_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const Pool2dGeometry& geometry) : geometry_(geometry) {}
  explicit AvgPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0, bool count_include_pad = true)
      : geometry_(Pool2dGeometry::square(kernel, stride, padding)) {
    geometry_.count_include_pad = count_include_pad;
  }
  Tensor forward(const Tensor& x) override;
  const Pool2dGeometry& geometry() const { return geometry_; }

 private:
  Pool2dGeometry geometry_;
};

}  // namespace zt
