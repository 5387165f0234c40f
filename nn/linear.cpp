// Linear layer: weight and bias drawn as nn.Linear does (kaiming-uniform with a = sqrt(5), i.e.
// U(-1/sqrt(in), 1/sqrt(in)) for both).
#include "nn/linear.h"

#include <cmath>

#include "autograd/ops.h"
#include "nn/init.h"

namespace zt {

Linear::Linear(const LinearOptions& o) : in_features_(o.in_features), out_features_(o.out_features) {
  ZT_CHECK(o.in_features > 0 && o.out_features > 0, "Linear: expected positive sizes, found in=",
           o.in_features, " out=", o.out_features);
  Generator& gen = o.generator ? *o.generator : default_generator();
  TensorOptions to(o.dtype, o.device);
  Tensor w = empty({o.out_features, o.in_features}, to);
  init::kaiming_uniform_(w, std::sqrt(5.0), gen);
  register_parameter("weight", w);
  if (o.bias) {
    double bound = 1.0 / std::sqrt(double(o.in_features));
    Tensor b = empty({o.out_features}, to);
    init::uniform_(b, -bound, bound, gen);
    register_parameter("bias", b);
  }
}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : Linear(LinearOptions{in_features, out_features, bias}) {}

Tensor Linear::bias() const { return has_parameter("bias") ? parameter("bias") : Tensor(); }

Tensor Linear::forward(const Tensor& x) {
  ZT_CHECK(x.dim() >= 1 && x.size(-1) == in_features_, "Linear: expected input (..., ",
           in_features_, "), found ", shape_str(x.shape()));
  return linear(x, weight(), bias());
}

}  // namespace zt
