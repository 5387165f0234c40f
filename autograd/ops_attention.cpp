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

namespace {

// Slice `part` (0: q, 1: k, 2: v) of a packed (B, T, 3C) tensor as (B, H, T, D) heads: a view.
Tensor packed_heads(const Tensor& packed, int64_t part, int64_t n_head) {
  const int64_t B = packed.size(0), T = packed.size(1), C = packed.size(2) / 3;
  return raw::transpose(raw::reshape(raw::narrow(packed, 2, part * C, C), {B, T, n_head, C / n_head}), 1, 2);
}

}  // namespace

Tensor packed_qkv_attention(const Tensor& qkv, int64_t n_head, bool causal, std::optional<double> scale) {
  ZT_CHECK(qkv.defined() && qkv.dim() == 3, "packed_qkv_attention: qkv must be 3-D (B, T, 3C), found ",
           qkv.defined() ? shape_str(qkv.shape()) : std::string("an undefined tensor"));
  ZT_CHECK(n_head > 0 && qkv.size(2) % (3 * n_head) == 0, "packed_qkv_attention: the last dim of qkv ",
           shape_str(qkv.shape()), " must be 3 * n_head * head_dim with n_head = ", n_head);
  const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
  const double s = scale ? *scale : 1.0 / std::sqrt(double(C / n_head));
  raw::AttentionResult r = raw::attention(packed_heads(qkv, 0, n_head), packed_heads(qkv, 1, n_head),
                                          packed_heads(qkv, 2, n_head), s, causal);
  // r.out is (B, T, H, D) memory: merging the heads is a view.
  Tensor merged = raw::reshape(raw::transpose(r.out, 1, 2), {B, T, C});
  if (!needs_graph(qkv)) return merged;
  return make_node(
      "packed_qkv_attention", merged, {&qkv},
      [qkv = autograd::save_for_backward(qkv), out = detach(r.out), lse = r.lse, n_head, s, causal](
          const Tensor& g, Needs) -> Grads {
        const int64_t B = g.size(0), T = g.size(1), C = g.size(2);
        const Tensor g_heads = raw::transpose(raw::reshape(g, {B, T, n_head, C / n_head}), 1, 2);
        Tensor grad = Tensor::empty(qkv.shape(), TensorOptions(g.dtype(), g.device()));
        raw::attention_backward_into(
            {packed_heads(grad, 0, n_head), packed_heads(grad, 1, n_head), packed_heads(grad, 2, n_head)}, g_heads,
            packed_heads(qkv, 0, n_head), packed_heads(qkv, 1, n_head), packed_heads(qkv, 2, n_head), out, lse, s,
            causal);
        return {grad};
      });
}

}  // namespace zt
