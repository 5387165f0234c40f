// Adam and AdamW (PyTorch's torch.optim.Adam / AdamW, without amsgrad). At step t:
//   Adam:  g += wd * p                      (L2 decay folded into the gradient)
//   AdamW: p *= 1 - lr * wd                 (decoupled decay, before the update)
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#pragma once
#include <map>

#include "optim/optimizer.h"

namespace zt {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// AdamW's defaults differ from Adam's only in weight decay (0.01, as PyTorch).
struct AdamWOptions : AdamOptions {
  AdamWOptions() { weight_decay = 0.01; }
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options);
  Adam(const std::vector<Tensor>& params, const AdamOptions& options);
  const AdamOptions& options() const { return options_; }
  // Betas may change between steps (a momentum schedule drives them this way).
  void set_betas(double beta1, double beta2);
  bool set_model_copy(const Tensor& param, const Tensor& copy) override;
  bool supports_scaled_gradients() const override { return true; }

 protected:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options, bool decoupled_weight_decay);
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              ParamState& state) override;

 private:
  AdamOptions options_;
  bool decoupled_weight_decay_;
  std::map<const TensorImpl*, Tensor> model_copies_;  // param -> copy (set_model_copy)
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options = {});
  AdamW(const std::vector<Tensor>& params, const AdamWOptions& options = {});
};

}  // namespace zt
