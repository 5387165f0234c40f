// Linear: y = x W^T + b with W (out, in), PyTorch's default initialisation.
#pragma once
#include "core/generator.h"
#include "nn/module.h"

namespace zt {

struct LinearOptions {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool bias = true;
  DType dtype = DType::f32;
  Device device = Device::cpu();
  Generator* generator = nullptr;  // default_generator() when null
};

class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& options);
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;  // (..., in) -> (..., out)

  const Tensor& weight() const { return parameter("weight"); }  // (out, in)
  Tensor bias() const;                                          // (out) or undefined
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

 private:
  int64_t in_features_, out_features_;
};

}  // namespace zt
