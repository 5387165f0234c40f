// Differentiable reductions: sum, mean and amax with their backward closures; var and norm are
// composed from other ops and get their gradients by composition.
#include "autograd/ops_common.h"

namespace zt {
namespace autograd {

Shape keepdim_shape(const Shape& shape, const std::vector<int64_t>& dims) {
  Shape out = shape;
  if (dims.empty()) {
    for (auto& s : out) s = 1;
  } else {
    for (int64_t d : dims) out[size_t(normalize_dim(d, int64_t(shape.size())))] = 1;
  }
  return out;
}

int64_t reduced_count(const Shape& shape, const std::vector<int64_t>& dims) {
  return shape_numel(shape) / shape_numel(keepdim_shape(shape, dims));
}

Tensor expand_reduced_grad(const Tensor& g, const Shape& shape, const std::vector<int64_t>& dims) {
  return raw::expand(raw::reshape(g, keepdim_shape(shape, dims)), shape);
}

}  // namespace autograd

using autograd::Grads;
using autograd::Needs;

Tensor sum(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  Tensor out = raw::sum(a, dims, keepdim);
  if (!autograd::needs_graph(a)) return out;
  return autograd::make_node("sum", std::move(out), {&a},
                             [shape = a.shape(), dims = std::move(dims)](const Tensor& g, Needs) -> Grads {
                               return {autograd::expand_reduced_grad(g, shape, dims)};
                             });
}

Tensor mean(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  Tensor out = raw::mean(a, dims, keepdim);
  if (!autograd::needs_graph(a)) return out;
  return autograd::make_node("mean", std::move(out), {&a},
                             [shape = a.shape(), dims = std::move(dims)](const Tensor& g, Needs) -> Grads {
                               double scale = 1.0 / double(autograd::reduced_count(shape, dims));
                               return {autograd::expand_reduced_grad(raw::mul(g, scale), shape, dims)};
                             });
}

Tensor amax(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  Tensor out = raw::amax(a, dims, keepdim);
  if (!autograd::needs_graph(a)) return out;
  Tensor y = detach(out);
  return autograd::make_node(
      "amax", std::move(out), {&a},
      [x = autograd::save_for_backward(a), y, dims = std::move(dims)](const Tensor& g, Needs) -> Grads {
        // The gradient is split equally among the elements equal to the maximum.
        Shape keep = autograd::keepdim_shape(x.shape(), dims);
        Tensor is_max = raw::to(raw::binary(BinaryOp::eq, x, raw::reshape(y, keep)), x.dtype());
        Tensor share = raw::div(raw::reshape(g, keep), raw::sum(is_max, dims, /*keepdim=*/true));
        return {raw::mul(is_max, share)};
      });
}

Tensor var(const Tensor& a, std::vector<int64_t> dims, bool unbiased, bool keepdim) {
  int64_t n = autograd::reduced_count(a.shape(), dims);
  ZT_CHECK(n > (unbiased ? 1 : 0), "var: expected more than ", unbiased ? 1 : 0,
           " elements per reduction, found ", n, " for shape ", shape_str(a.shape()));
  Tensor centered = sub(a, mean(a, dims, /*keepdim=*/true));
  return div(sum(mul(centered, centered), dims, keepdim), double(n - (unbiased ? 1 : 0)));
}

Tensor norm(const Tensor& a) { return sqrt(sum(square(a))); }

}  // namespace zt
