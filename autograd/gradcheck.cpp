// gradcheck: compares backward against central finite differences in f64. The scalar checked is
// sum(fn(inputs) * w) with fixed random weights w, so every output element is exercised.
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/autograd.h"
#include "autograd/ops.h"

namespace zt {
namespace {

double weighted_sum(const Tensor& out, const Tensor& w) {
  return raw::sum(raw::mul(raw::to(out, DType::f64), w)).item();
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, GradcheckOptions options) {
  bool any_checked = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!requires_grad(inputs[i])) continue;
    any_checked = true;
    ZT_CHECK(inputs[i].dtype() == DType::f64 && inputs[i].is_contiguous() && inputs[i].device().is_cpu(),
             "gradcheck: input ", i, " must be a contiguous f64 CPU tensor, found ", inputs[i].str());
    ZT_CHECK(is_leaf(inputs[i]), "gradcheck: input ", i, " must be a leaf tensor");
  }
  ZT_CHECK(any_checked, "gradcheck: no input requires grad, so there is nothing to check");

  // Analytic gradients: backward of sum(out * w).
  Tensor out = fn(inputs);
  ZT_CHECK(requires_grad(out), "gradcheck: the output does not require grad");
  Generator gen(20240229);
  Tensor w = randn(out.shape(), DType::f64, &gen);
  for (const Tensor& t : inputs) {
    if (requires_grad(t)) set_grad(t, Tensor());
  }
  backward(sum(mul(to(out, DType::f64), w)));

  NoGradGuard no_grad;  // the finite-difference evaluations record no graph
  GradcheckResult result;
  double worst_ratio = 0;  // error / tolerance of the worst element
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!requires_grad(x)) continue;
    Tensor analytic = grad(x);
    std::vector<double> a = analytic.defined() ? analytic.to_vector<double>()
                                               : std::vector<double>(size_t(x.numel()), 0.0);
    set_grad(x, Tensor());
    double* data = x.data<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double saved = data[j];
      data[j] = saved + options.eps;
      const double plus = weighted_sum(fn(inputs), w);
      data[j] = saved - options.eps;
      const double minus = weighted_sum(fn(inputs), w);
      data[j] = saved;
      const double numeric = (plus - minus) / (2 * options.eps);
      const double error = std::abs(a[size_t(j)] - numeric);
      const double tolerance = options.atol + options.rtol * std::abs(numeric);
      result.max_abs_error = std::max(result.max_abs_error, error);
      if (!(error <= tolerance) && (result.ok || error / tolerance > worst_ratio)) {
        worst_ratio = error / tolerance;
        std::ostringstream os;
        os << "input " << i << " " << shape_str(x.shape()) << " element " << j << ": analytic "
           << a[size_t(j)] << " vs numeric " << numeric << " (error " << error << ", tolerance "
           << tolerance << ")";
        result.message = os.str();
        result.ok = false;
      }
    }
  }
  return result;
}

}  // namespace zt
