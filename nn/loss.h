// Loss functors: CrossEntropyLoss (logits, class ids) and MSELoss (input, target).
#pragma once
#include "autograd/ops.h"

namespace zt {

class CrossEntropyLoss {
 public:
  explicit CrossEntropyLoss(int64_t ignore_index = -100, Reduction reduction = Reduction::mean)
      : ignore_index_(ignore_index), reduction_(reduction) {}
  // logits (N, C) or (..., C), target (N) or (...) integer class ids.
  Tensor operator()(const Tensor& logits, const Tensor& target) const;

 private:
  int64_t ignore_index_;
  Reduction reduction_;
};

class MSELoss {
 public:
  explicit MSELoss(Reduction reduction = Reduction::mean) : reduction_(reduction) {}
  Tensor operator()(const Tensor& input, const Tensor& target) const;

 private:
  Reduction reduction_;
};

}  // namespace zt
