// Raw fused attention ops: argument checks (core/attention_checks.h), output allocation in the
// layout of Note [Attention layout] and dispatch to the backend kernels of core/ops.def.
#include "core/attention_checks.h"
#include "core/ops.h"
#include "core/ops_util.h"

namespace zt::raw {
namespace {

// t itself when its last dim has unit stride (as the kernels need), else a contiguous copy.
Tensor unit_last_stride(const Tensor& t) {
  return t.dim() == 0 || t.size(-1) == 1 || t.stride(-1) == 1 ? t : contiguous(t);
}

// A (B, H, T, D) tensor whose memory is (B, T, H, D): see Note [Attention layout].
Tensor empty_heads(const AttentionDims& d, const Tensor& like) {
  return transpose(Tensor::empty({d.batch, d.seq, d.heads, d.head_dim}, {like.dtype(), like.device()}), 1, 2);
}

bool empty_problem(const AttentionDims& d) { return d.batch * d.heads * d.seq == 0; }

}  // namespace

AttentionResult attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal) {
  const char* op = "attention";
  detail::check_same_device(op, {&q, &k, &v});
  const Tensor qc = unit_last_stride(q), kc = unit_last_stride(k), vc = unit_last_stride(v);
  const AttentionDims d = check_attention_inputs(op, qc, kc, vc, scale);
  AttentionResult r;
  r.out = empty_heads(d, q);
  r.lse = Tensor::empty({d.batch, d.heads, d.seq}, {attention_lse_dtype(q.dtype()), q.device()});
  if (!empty_problem(d)) backend_for(q.device()).attention_forward(r.out, r.lse, qc, kc, vc, scale, causal);
  return r;
}

AttentionGrads attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse, double scale, bool causal) {
  const char* op = "attention_backward";
  detail::check_same_device(op, {&grad_out, &q, &k, &v, &out, &lse});
  const Tensor qc = unit_last_stride(q), kc = unit_last_stride(k), vc = unit_last_stride(v);
  const Tensor oc = unit_last_stride(out), gc = unit_last_stride(grad_out);
  const AttentionDims d = check_attention_inputs(op, qc, kc, vc, scale);
  ZT_CHECK(grad_out.shape() == q.shape() && grad_out.dtype() == q.dtype(), op, ": grad_out must match q ",
           q.str(), ", found ", grad_out.str());
  AttentionGrads g{empty_heads(d, q), empty_heads(d, q), empty_heads(d, q)};
  if (!empty_problem(d))
    backend_for(q.device()).attention_backward(g.q, g.k, g.v, gc, qc, kc, vc, oc, contiguous(lse), scale, causal);
  return g;
}

void attention_backward_into(const AttentionGrads& grads, const Tensor& grad_out, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& out, const Tensor& lse, double scale, bool causal) {
  const char* op = "attention_backward_into";
  detail::check_same_device(op, {&grads.q, &grads.k, &grads.v, &grad_out, &q, &k, &v, &out, &lse});
  const Tensor qc = unit_last_stride(q), kc = unit_last_stride(k), vc = unit_last_stride(v);
  const Tensor oc = unit_last_stride(out), gc = unit_last_stride(grad_out);
  const AttentionDims d = check_attention_inputs(op, qc, kc, vc, scale);
  ZT_CHECK(grad_out.shape() == q.shape() && grad_out.dtype() == q.dtype(), op, ": grad_out must match q ",
           q.str(), ", found ", grad_out.str());
  if (!empty_problem(d))
    backend_for(q.device())
        .attention_backward(grads.q, grads.k, grads.v, gc, qc, kc, vc, oc, contiguous(lse), scale, causal);
}

}  // namespace zt::raw
