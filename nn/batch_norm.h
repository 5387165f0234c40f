// BatchNorm2d: per-channel normalisation of NCHW input with batch statistics in training and
// running statistics in eval, affine weight/bias, as torch.nn.BatchNorm2d (running_var keeps
// the unbiased batch variance; momentum weighs the new batch).
#pragma once
#include "nn/module.h"

namespace zt {

struct BatchNorm2dOptions {
  int64_t num_features = 0;
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = true;
  DType dtype = DType::f32;
  Device device = Device::cpu();
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(const BatchNorm2dOptions& options);
  explicit BatchNorm2d(int64_t num_features) : BatchNorm2d(BatchNorm2dOptions{num_features}) {}
  Tensor forward(const Tensor& x) override;  // (N, C, H, W) -> same shape

  const Tensor& running_mean() const { return buffer("running_mean"); }  // (C)
  const Tensor& running_var() const { return buffer("running_var"); }    // (C)
  int64_t num_batches_tracked() const;

 private:
  BatchNorm2dOptions options_;
};

}  // namespace zt
