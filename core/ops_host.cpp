// Host-side comparison helpers for tests and checks: allclose, max_abs_diff, all_finite.
// allclose and max_abs_diff read the values back to the host as f64.
#include <cmath>

#include "core/ops.h"
#include "core/ops_util.h"

namespace zt::raw {
namespace {

void check_comparable(const char* op, const Tensor& a, const Tensor& b) {
  detail::check_defined(op, {&a, &b});
  ZT_CHECK(a.shape() == b.shape(), op, ": shapes differ: ", shape_str(a.shape()), " vs ",
           shape_str(b.shape()));
}

}  // namespace

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  check_comparable("allclose", a, b);
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == y[i]) continue;  // equal infinities
    if (!(std::abs(x[i] - y[i]) <= atol + rtol * std::abs(y[i]))) return false;  // NaN fails
  }
  return true;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  check_comparable("max_abs_diff", a, b);
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == y[i]) continue;
    const double d = std::abs(x[i] - y[i]);
    if (std::isnan(d)) return d;
    worst = std::max(worst, d);
  }
  return worst;
}

// x * 0 is 0 for finite x and NaN for inf or NaN, and a sum keeps NaN: one device reduction
// and a single value read back, whatever the tensor's size.
bool all_finite(const Tensor& a) {
  detail::check_defined("all_finite", {&a});
  if (!is_floating(a.dtype()) || a.numel() == 0) return true;
  return !std::isnan(sum(mul(a, 0.0)).item());
}

}  // namespace zt::raw
