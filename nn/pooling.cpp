// MaxPool2d and AvgPool2d: thin modules over the differentiable pooling ops.
#include "nn/pooling.h"

#include "autograd/ops.h"

namespace zt {

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, geometry_); }

Tensor AvgPool2d::forward(const Tensor& x) { return avg_pool2d(x, geometry_); }

}  // namespace zt
