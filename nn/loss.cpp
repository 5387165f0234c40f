// Loss functors over the differentiable loss ops, with the shape checks users hit first.
#include "nn/loss.h"

namespace zt {

Tensor CrossEntropyLoss::operator()(const Tensor& logits, const Tensor& target) const {
  ZT_CHECK(logits.dim() >= 1 && target.dim() == logits.dim() - 1,
           "CrossEntropyLoss: expected logits (..., C) and target (...), found logits ",
           shape_str(logits.shape()), " and target ", shape_str(target.shape()));
  ZT_CHECK(is_integral(target.dtype()), "CrossEntropyLoss: expected integer targets, found ",
           dtype_name(target.dtype()));
  return cross_entropy(logits, target, ignore_index_, reduction_);
}

Tensor MSELoss::operator()(const Tensor& input, const Tensor& target) const {
  ZT_CHECK(input.shape() == target.shape(), "MSELoss: expected input and target of one shape, found ",
           shape_str(input.shape()), " and ", shape_str(target.shape()));
  return mse_loss(input, target, reduction_);
}

}  // namespace zt
