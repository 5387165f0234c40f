// BatchNorm2d from differentiable ops (mean, var, rsqrt): the gradient through the batch
// statistics comes from autograd; running statistics are updated under no-grad in training.
#include "nn/batch_norm.h"

#include "autograd/ops.h"

namespace zt {

BatchNorm2d::BatchNorm2d(const BatchNorm2dOptions& o) : options_(o) {
  ZT_CHECK(o.num_features > 0, "BatchNorm2d: expected num_features > 0, found ", o.num_features);
  ZT_CHECK(o.eps > 0 && o.momentum >= 0 && o.momentum <= 1, "BatchNorm2d: expected eps > 0 and momentum in ",
           "[0, 1], found eps=", o.eps, " momentum=", o.momentum);
  const TensorOptions to(o.dtype, o.device);
  if (o.affine) {
    register_parameter("weight", ones({o.num_features}, to));
    register_parameter("bias", zeros({o.num_features}, to));
  }
  register_buffer("running_mean", zeros({o.num_features}, to));
  register_buffer("running_var", ones({o.num_features}, to));
  register_buffer("num_batches_tracked", zeros({}, TensorOptions(DType::i64, o.device)));
}

int64_t BatchNorm2d::num_batches_tracked() const { return int64_t(buffer("num_batches_tracked").item()); }

Tensor BatchNorm2d::forward(const Tensor& x) {
  const int64_t c = options_.num_features;
  ZT_CHECK(x.dim() == 4 && x.size(1) == c, "BatchNorm2d: expected input (N, ", c, ", H, W), found ",
           shape_str(x.shape()));
  const Shape channel{1, c, 1, 1};
  Tensor mean_c, var_c;  // (1, C, 1, 1)
  if (is_training()) {
    const int64_t count = x.size(0) * x.size(2) * x.size(3);
    ZT_CHECK(count > 1, "BatchNorm2d: training needs more than one value per channel, found input ",
             shape_str(x.shape()));
    mean_c = mean(x, {0, 2, 3}, true);
    var_c = var(x, {0, 2, 3}, false, true);
    NoGradGuard no_grad;
    const double m = options_.momentum;
    const Tensor& rm = running_mean();
    const Tensor& rv = running_var();
    const Tensor batch_var = raw::mul(raw::reshape(detach(var_c), {c}), double(count) / double(count - 1));
    raw::copy_(rm, raw::add(raw::mul(rm, 1.0 - m), raw::mul(raw::reshape(detach(mean_c), {c}), m)));
    raw::copy_(rv, raw::add(raw::mul(rv, 1.0 - m), raw::mul(batch_var, m)));
    const Tensor& tracked = buffer("num_batches_tracked");
    raw::copy_(tracked, raw::add(tracked, 1.0));
  } else {
    mean_c = raw::reshape(running_mean(), channel);
    var_c = raw::reshape(running_var(), channel);
  }
  Tensor y = mul(sub(x, mean_c), rsqrt(add(var_c, options_.eps)));
  if (options_.affine) y = add(mul(y, reshape(parameter("weight"), channel)), reshape(parameter("bias"), channel));
  return y;
}

}  // namespace zt
