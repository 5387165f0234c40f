// CausalSelfAttention, composed of differentiable ops so its backward comes from theirs.
#include "nn/attention.h"

#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "core/attention_checks.h"

namespace zt {

CausalSelfAttention::CausalSelfAttention(const CausalSelfAttentionOptions& o)
    : n_embd_(o.n_embd), n_head_(o.n_head), fused_(o.fused) {
  ZT_CHECK(o.n_embd > 0 && o.n_head > 0 && o.n_embd % o.n_head == 0,
           "CausalSelfAttention: expected n_embd divisible by n_head (both positive), found n_embd=",
           o.n_embd, " n_head=", o.n_head);
  qkv_ = register_module("qkv", std::make_shared<Linear>(
                                    LinearOptions{o.n_embd, 3 * o.n_embd, o.bias, DType::f32,
                                                  Device::cpu(), o.generator}));
  proj_ = register_module("proj", std::make_shared<Linear>(
                                      LinearOptions{o.n_embd, o.n_embd, o.bias, DType::f32,
                                                    Device::cpu(), o.generator}));
  attn_dropout_ = register_module("attn_dropout", std::make_shared<Dropout>(o.dropout));
  resid_dropout_ = register_module("resid_dropout", std::make_shared<Dropout>(o.dropout));
}

CausalSelfAttention::CausalSelfAttention(int64_t n_embd, int64_t n_head, double dropout, bool bias)
    : CausalSelfAttention(CausalSelfAttentionOptions{n_embd, n_head, dropout, bias, nullptr}) {}

const Tensor& CausalSelfAttention::causal_mask(int64_t T, DType dtype, Device device) {
  if (mask_.defined() && mask_.size(0) == T && mask_.dtype() == dtype && mask_.device() == device)
    return mask_;
  std::vector<double> values(size_t(T * T), 0.0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = i + 1; j < T; ++j) values[size_t(i * T + j)] = -std::numeric_limits<double>::infinity();
  mask_ = raw::to(from_vector<double>(values, {T, T}, dtype), device);
  return mask_;
}

bool CausalSelfAttention::uses_fused() const {
  const bool dropout_active = is_training() && attn_dropout_->p() > 0.0;
  return fused_ && !dropout_active && n_embd_ / n_head_ <= kMaxAttentionHeadDim;
}

Tensor CausalSelfAttention::unfused_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int64_t T = q.size(2), hs = q.size(3);
  Tensor att = mul(matmul(q, k, false, true), 1.0 / std::sqrt(double(hs)));  // (B, nh, T, T)
  att = add(att, causal_mask(T, att.dtype(), att.device()));                  // broadcast (T, T)
  att = (*attn_dropout_)(softmax(att, -1));
  return matmul(att, v);  // (B, nh, T, hs)
}

Tensor CausalSelfAttention::attend(const Tensor& x) {
  ZT_CHECK(x.dim() == 3 && x.size(2) == n_embd_, "CausalSelfAttention: expected input (B, T, ",
           n_embd_, "), found ", shape_str(x.shape()));
  const int64_t B = x.size(0), T = x.size(1), C = n_embd_, nh = n_head_, hs = C / nh;
  // Fused: q, k and v stay views of the projection, and their gradients land in one buffer.
  if (uses_fused()) return packed_qkv_attention((*qkv_)(x), nh, true);
  std::vector<Tensor> qkv = split((*qkv_)(x), C, 2);  // 3 x (B, T, C)
  auto heads = [&](const Tensor& t) {                  // (B, T, C) -> (B, nh, T, hs), a view
    return transpose(reshape(t, {B, T, nh, hs}), 1, 2);
  };
  Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);
  return reshape(contiguous(transpose(unfused_attention(q, k, v), 1, 2)), {B, T, C});  // merge heads
}

Tensor CausalSelfAttention::forward(const Tensor& x) { return (*resid_dropout_)((*proj_)(attend(x))); }

Tensor CausalSelfAttention::forward(const Tensor& x, const Tensor& residual) {
  // The dropout sits between proj and the add, and proj's own forward must run its hooks.
  if (resid_dropout_->active() || resid_dropout_->has_hooks() || !proj_->bias().defined() || proj_->has_hooks())
    return add(residual, forward(x));
  return linear(attend(x), proj_->weight(), proj_->bias(), residual);
}

}  // namespace zt
