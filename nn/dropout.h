// Dropout: zeroes elements with probability p while training (scaling the rest by 1/(1-p));
// the identity in eval mode.
#pragma once
#include "core/generator.h"
#include "nn/module.h"

namespace zt {

class Dropout : public Module {
 public:
  // gen: the generator masks are drawn from (default_generator() when null); not owned.
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  double p() const { return p_; }
  // Whether forward changes its input: training with p > 0 (else it is the identity).
  bool active() const { return is_training() && p_ > 0.0; }

 private:
  double p_;
  Generator* generator_;
};

}  // namespace zt
