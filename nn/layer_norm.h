// LayerNorm over the last dim, with optional learnable scale (ones) and shift (zeros).
#pragma once
#include "nn/module.h"

namespace zt {

struct LayerNormOptions {
  int64_t dim = 0;
  double eps = 1e-5;
  bool elementwise_affine = true;
  DType dtype = DType::f32;
  Device device = Device::cpu();
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(const LayerNormOptions& options);
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override;  // (..., dim) -> (..., dim)

  Tensor weight() const;  // (dim) or undefined without elementwise_affine
  Tensor bias() const;
  int64_t dim() const { return dim_; }
  double eps() const { return eps_; }

 private:
  int64_t dim_;
  double eps_;
};

}  // namespace zt
