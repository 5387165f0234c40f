// Differentiable fused attention: scaled_dot_product_attention over the raw attention ops
// (core/ops.h). Backward saves q, k, v, the output and the per-row log-sum-exp (B, H, T), from
// which the kernels rebuild the softmax weights tile by tile: O(T) extra memory per head instead of
// the (T, T) weights the unfused composition keeps.
#include <cmath>

#include "autograd/ops_common.h"

namespace zt {

using autograd::Grads;
using autograd::make_node;
using autograd::needs_graph;
using autograd::Needs;

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                    std::optional<double> scale) {
  ZT_CHECK(q.defined() && q.dim() == 4, "scaled_dot_product_attention: q must be 4-D (B, H, T, D), found ",
           q.defined() ? shape_str(q.shape()) : std::string("an undefined tensor"));
  const double s = scale ? *scale : 1.0 / std::sqrt(double(q.size(3)));
  raw::AttentionResult r = raw::attention(q, k, v, s, causal);
  if (!needs_graph(q, k, v)) return r.out;
  return make_node("scaled_dot_product_attention", r.out, {&q, &k, &v},
                   [q = autograd::save_for_backward(q), k = autograd::save_for_backward(k),
                    v = autograd::save_for_backward(v), out = detach(r.out), lse = r.lse, s,
                    causal](const Tensor& g, Needs need) -> Grads {
                     raw::AttentionGrads ag = raw::attention_backward(g, q, k, v, out, lse, s, causal);
                     return {need[0] ? ag.q : Tensor(), need[1] ? ag.k : Tensor(), need[2] ? ag.v : Tensor()};
                   });
}

}  // namespace zt
