// Flatten module over the differentiable flatten op.
#include "nn/flatten.h"

#include "autograd/ops.h"

namespace zt {

Tensor Flatten::forward(const Tensor& x) { return flatten(x, start_dim_, end_dim_); }

}  // namespace zt
