// Differentiable neural-network functions: softmax/log_softmax, layer_norm, embedding, dropout
// and the losses (cross_entropy, mse_loss). Backward formulas come from the backend's fused
// kernels (softmax_backward, layer_norm_backward, cross_entropy_backward) where it has them.
#include "autograd/ops_common.h"

namespace zt {

using autograd::Grads;
using autograd::make_node;
using autograd::needs_graph;
using autograd::Needs;

namespace {

Tensor softmax_op(const Tensor& x, int64_t dim, bool log) {
  Tensor out = log ? raw::log_softmax(x, dim) : raw::softmax(x, dim);
  if (!needs_graph(x)) return out;
  Tensor y = detach(out);
  return make_node(log ? "log_softmax" : "softmax", std::move(out), {&x},
                   [y, dim, log](const Tensor& g, Needs) -> Grads {
                     return {raw::softmax_backward(g, y, dim, log)};
                   });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_op(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_op(x, dim, true); }

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t channels = x.size(-1);
  Tensor rows = raw::reshape(x, {-1, channels});  // (N, C)
  raw::LayerNormResult r = raw::layer_norm(rows, weight, bias, eps);
  Tensor out = raw::reshape(r.y, x.shape());
  if (!needs_graph(x, weight, bias)) return out;
  return make_node(
      "layer_norm", std::move(out), {&x, &weight, &bias},
      [rows = autograd::save_for_backward(rows), mean = r.mean, rstd = r.rstd, w = autograd::save_for_backward(weight),
       shape = x.shape()](const Tensor& g, Needs need, Grads& pending) -> Grads {
        Tensor g_rows = raw::reshape(g, {-1, shape.back()});  // (N, C)
        // A gradient already waiting for x (a residual stream's) is added in the same pass
        // (Note [Folded gradients] in autograd/engine.cpp).
        Tensor add;
        if (need[0] && !pending.empty() && pending[0].defined() && pending[0].shape() == shape &&
            pending[0].dtype() == rows.dtype() && pending[0].device() == rows.device() && pending[0].is_contiguous()) {
          add = raw::reshape(pending[0], {-1, shape.back()});
          pending[0] = Tensor();
        }
        raw::LayerNormGrads lg = raw::layer_norm_backward(g_rows, rows, mean, rstd, w, need[1] || need[2], add);
        Grads grads(3);
        if (need[0]) grads[0] = raw::reshape(lg.x, shape);
        if (need[1]) grads[1] = lg.weight;
        if (need[2]) grads[2] = lg.bias;
        return grads;
      });
}

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  Tensor out = raw::embedding(weight, indices);  // (..., C)
  if (!needs_graph(weight)) return out;
  return make_node("embedding", std::move(out), {&weight},
                   [shape = weight.shape(), idx = indices](const Tensor& g, Needs) -> Grads {
                     // Rows gathered several times receive the sum of their gradients.
                     Tensor grad = zeros(shape, TensorOptions(g.dtype(), g.device()));
                     raw::index_add_(grad, 0, raw::reshape(idx, {-1}), raw::reshape(g, {-1, shape.back()}));
                     return {grad};
                   });
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  ZT_CHECK(p >= 0.0 && p <= 1.0, "dropout: expected a probability 0 <= p <= 1, found ", p);
  if (!training || p == 0.0) return x;
  if (p == 1.0) return mul(x, 0.0);  // everything dropped; the mask would divide by zero
  raw::DropoutResult r = raw::dropout(x, p, gen ? *gen : default_generator());
  if (!needs_graph(x)) return r.out;
  return make_node("dropout", std::move(r.out), {&x},
                   [mask = r.mask, scale = 1.0 / (1.0 - p)](const Tensor& g, Needs) -> Grads {
                     return {raw::mul(raw::mul(g, raw::to(mask, g.dtype())), scale)};
                   });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                     Reduction reduction) {
  const int64_t classes = logits.size(-1);
  Tensor rows = raw::reshape(logits, {-1, classes});  // (N, C)
  Tensor targets = raw::reshape(target, {-1});        // (N)
  ZT_CHECK(rows.size(0) == targets.size(0), "cross_entropy: logits ", shape_str(logits.shape()),
           " have ", rows.size(0), " rows but target ", shape_str(target.shape()), " has ",
           targets.size(0), " elements");
  Tensor losses = raw::cross_entropy(rows, targets, ignore_index);  // (N) f32 (f64 for f64)
  // The mean divides by the number of non-ignored targets, counted on the device (no sync).
  Tensor count;
  Tensor out;
  switch (reduction) {
    case Reduction::none: out = raw::reshape(losses, target.shape()); break;
    case Reduction::sum: out = raw::sum(losses); break;
    case Reduction::mean:
      count = raw::sum(raw::to(raw::binary(BinaryOp::ne, targets, double(ignore_index)), losses.dtype()));
      out = raw::div(raw::sum(losses), count);
      break;
  }
  if (!needs_graph(logits)) return out;
  return make_node(
      "cross_entropy", std::move(out), {&logits},
      [rows = autograd::save_for_backward(rows), targets, count, ignore_index, reduction,
       shape = logits.shape()](const Tensor& g, Needs) -> Grads {
        const int64_t n = rows.size(0);
        Tensor grad_loss;  // (N), the loss dtype
        if (reduction == Reduction::none) {
          grad_loss = raw::contiguous(raw::reshape(g, {n}));
        } else {
          Tensor scale = reduction == Reduction::mean ? raw::div(g, count) : g;
          grad_loss = raw::contiguous(raw::expand(raw::reshape(scale, {1}), {n}));
        }
        Tensor grad_rows = raw::cross_entropy_backward(grad_loss, rows, targets, ignore_index);
        return {raw::reshape(grad_rows, shape)};
      });
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  Tensor diff = sub(input, target);
  Tensor squared = mul(diff, diff);
  switch (reduction) {
    case Reduction::none: return squared;
    case Reduction::sum: return sum(squared);
    case Reduction::mean: return mean(squared);
  }
  ZT_FAIL("mse_loss: unknown reduction");
}

}  // namespace zt
