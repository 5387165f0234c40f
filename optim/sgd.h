// SGD with momentum, dampening, Nesterov momentum and L2 weight decay (PyTorch's torch.optim.SGD):
//   d = g + wd * p
//   buf = d (first step), else momentum * buf + (1 - dampening) * d
//   d = nesterov ? d + momentum * buf : buf          (when momentum != 0)
//   p -= lr * d
#pragma once
#include "optim/optimizer.h"

namespace zt {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, const SGDOptions& options);
  SGD(const std::vector<Tensor>& params, const SGDOptions& options);
  const SGDOptions& options() const { return options_; }

 protected:
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              ParamState& state) override;

 private:
  SGDOptions options_;
};

}  // namespace zt
