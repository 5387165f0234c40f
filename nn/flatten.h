// Flatten: merges dims start_dim..end_dim into one (default: all but the batch dim), as
// torch.nn.Flatten; a view when the layout allows.
#pragma once
#include "nn/module.h"

namespace zt {

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim_(start_dim), end_dim_(end_dim) {}
  Tensor forward(const Tensor& x) override;

 private:
  int64_t start_dim_, end_dim_;
};

}  // namespace zt
