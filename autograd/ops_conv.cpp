// Differentiable 2-D convolution and pooling: forward through the raw ops of core/ops_conv.cpp,
// backward through their backward kernels; the bias gradient is grad_out summed over (N, H, W).
#include "autograd/ops_common.h"

namespace zt {

using autograd::Grads;
using autograd::make_node;
using autograd::needs_graph;
using autograd::Needs;
using autograd::save_if;

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dGeometry& geometry) {
  Tensor out = raw::conv2d(x, weight, bias, geometry);
  if (!needs_graph(x, weight, bias)) return out;
  const bool need_w = autograd::tensor_requires_grad(weight);
  const bool need_x = autograd::tensor_requires_grad(x);
  return make_node("conv2d", std::move(out), {&x, &weight, &bias},
                   [xs = save_if(need_w, x), ws = save_if(need_x, weight), x_shape = x.shape(),
                    w_shape = weight.shape(), geometry](const Tensor& g, Needs need) -> Grads {
                     Grads grads(3);
                     if (need[0]) grads[0] = raw::conv2d_backward_input(g, ws, x_shape, geometry);
                     if (need[1]) grads[1] = raw::conv2d_backward_weight(g, xs, w_shape, geometry);
                     if (need[2]) grads[2] = raw::sum(g, {0, 2, 3});
                     return grads;
                   });
}

Tensor max_pool2d(const Tensor& x, const Pool2dGeometry& geometry) {
  raw::MaxPool2dResult r = raw::max_pool2d(x, geometry);
  if (!needs_graph(x)) return r.out;
  return make_node("max_pool2d", std::move(r.out), {&x},
                   [indices = r.indices, x_shape = x.shape(), geometry](const Tensor& g, Needs) -> Grads {
                     return {raw::max_pool2d_backward(g, indices, x_shape, geometry)};
                   });
}

Tensor avg_pool2d(const Tensor& x, const Pool2dGeometry& geometry) {
  Tensor out = raw::avg_pool2d(x, geometry);
  if (!needs_graph(x)) return out;
  return make_node("avg_pool2d", std::move(out), {&x},
                   [x_shape = x.shape(), geometry](const Tensor& g, Needs) -> Grads {
                     return {raw::avg_pool2d_backward(g, x_shape, geometry)};
                   });
}

}  // namespace zt
