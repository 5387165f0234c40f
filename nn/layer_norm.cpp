// LayerNorm module: parameters initialised as torch.nn.LayerNorm (weight 1, bias 0).
#include "nn/layer_norm.h"

#include "autograd/ops.h"

namespace zt {

LayerNorm::LayerNorm(const LayerNormOptions& o) : dim_(o.dim), eps_(o.eps) {
  ZT_CHECK(o.dim > 0, "LayerNorm: expected a positive dim, found ", o.dim);
  ZT_CHECK(o.eps > 0, "LayerNorm: expected eps > 0, found ", o.eps);
  if (o.elementwise_affine) {
    register_parameter("weight", ones({o.dim}, TensorOptions(o.dtype, o.device)));
    register_parameter("bias", zeros({o.dim}, TensorOptions(o.dtype, o.device)));
  }
}

LayerNorm::LayerNorm(int64_t dim, double eps, bool elementwise_affine)
    : LayerNorm(LayerNormOptions{dim, eps, elementwise_affine}) {}

Tensor LayerNorm::weight() const { return has_parameter("weight") ? parameter("weight") : Tensor(); }
Tensor LayerNorm::bias() const { return has_parameter("bias") ? parameter("bias") : Tensor(); }

Tensor LayerNorm::forward(const Tensor& x) {
  ZT_CHECK(x.dim() >= 1 && x.size(-1) == dim_, "LayerNorm: expected input (..., ", dim_,
           "), found ", shape_str(x.shape()));
  return layer_norm(x, weight(), bias(), eps_);
}

}  // namespace zt
