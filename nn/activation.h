// Elementwise activation modules: ReLU, GELU (exact or tanh approximation), Tanh.
#pragma once
#include "nn/module.h"

namespace zt {

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

class GELU : public Module {
 public:
  // tanh_approximation: GPT-2's form, as torch.nn.GELU(approximate="tanh").
  explicit GELU(bool tanh_approximation = false) : tanh_approximation_(tanh_approximation) {}
  Tensor forward(const Tensor& x) override;

 private:
  bool tanh_approximation_;
};

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

}  // namespace zt
