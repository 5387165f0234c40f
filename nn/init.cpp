// Parameter initialisers: draws go through core's factory (Philox, explicit generator) and are
// copied into the target so views and non-f32 dtypes work alike.
#include "nn/init.h"

#include <cmath>

#include "autograd/autograd.h"
#include "core/factory.h"
#include "core/ops.h"

namespace zt::init {

const Tensor& uniform_(const Tensor& t, double low, double high, Generator& gen) {
  ZT_CHECK(low <= high, "init::uniform_: expected low <= high, found low=", low, " high=", high);
  NoGradGuard no_grad;
  raw::copy_(t, rand(t.shape(), TensorOptions(t.dtype(), t.device()), &gen, low, high));
  return t;
}

const Tensor& normal_(const Tensor& t, double mean, double stddev, Generator& gen) {
  ZT_CHECK(stddev >= 0, "init::normal_: expected stddev >= 0, found ", stddev);
  NoGradGuard no_grad;
  raw::copy_(t, randn(t.shape(), TensorOptions(t.dtype(), t.device()), &gen, mean, stddev));
  return t;
}

const Tensor& zeros_(const Tensor& t) {
  NoGradGuard no_grad;
  raw::fill_(t, 0.0);
  return t;
}

const Tensor& ones_(const Tensor& t) {
  NoGradGuard no_grad;
  raw::fill_(t, 1.0);
  return t;
}

Fans compute_fans(const Tensor& t) {
  ZT_CHECK(t.dim() >= 2, "init: fan in/out need a tensor of at least 2 dims, found shape ",
           shape_str(t.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

const Tensor& kaiming_uniform_(const Tensor& t, double a, Generator& gen) {
  Fans fans = compute_fans(t);
  ZT_CHECK(fans.fan_in > 0, "init::kaiming_uniform_: fan_in is 0 for shape ", shape_str(t.shape()));
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = gain * std::sqrt(3.0 / double(fans.fan_in));
  return uniform_(t, -bound, bound, gen);
}

const Tensor& xavier_uniform_(const Tensor& t, double gain, Generator& gen) {
  Fans fans = compute_fans(t);
  double bound = gain * std::sqrt(6.0 / double(fans.fan_in + fans.fan_out));
  return uniform_(t, -bound, bound, gen);
}

}  // namespace zt::init
