// Helpers shared by the differentiable op files (autograd/ops_*.cpp). Internal.
#pragma once
#include <vector>

#include "autograd/meta.h"
#include "autograd/ops.h"

namespace zt::autograd {

// The gradient of a broadcast operand: g summed back to the operand's shape.
inline Tensor reduce_grad(const Tensor& g, const Shape& shape) {
  return g.shape() == shape ? g : raw::sum_to(g, shape);
}

// Saves t for backward only when cond holds (the gradient that needs it is wanted).
inline Tensor save_if(bool cond, const Tensor& t) { return cond ? save_for_backward(t) : Tensor(); }

// `shape` with the reduced dims set to 1 ({} = every dim), as a keepdim reduction returns.
Shape keepdim_shape(const Shape& shape, const std::vector<int64_t>& dims);

// The number of elements a reduction over dims ({} = all) folds into each output element.
int64_t reduced_count(const Shape& shape, const std::vector<int64_t>& dims);

// g (the gradient of a reduction's output) reshaped to keepdim form and broadcast to `shape`.
Tensor expand_reduced_grad(const Tensor& g, const Shape& shape, const std::vector<int64_t>& dims);

}  // namespace zt::autograd
