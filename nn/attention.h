// CausalSelfAttention: GPT's multi-head self-attention with a causal mask. It runs the fused
// attention op (scaled_dot_product_attention: no (T, T) matrix) whenever the attention weights see
// no dropout (eval mode or p = 0); otherwise, or when asked to, the unfused composition (matmul,
// mask, softmax, dropout, matmul), which is also the reference the fused path is tested against.
#pragma once
#include <memory>

#include "core/generator.h"
#include "nn/dropout.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace zt {

struct CausalSelfAttentionOptions {
  int64_t n_embd = 0;
  int64_t n_head = 0;
  double dropout = 0.0;  // on the attention weights and on the output
  bool bias = true;      // biases of the qkv and output projections
  Generator* generator = nullptr;  // for the Linear inits (default_generator() when null)
  bool fused = true;  // false: always the unfused path (to compare the two)
};

class CausalSelfAttention : public Module {
 public:
  explicit CausalSelfAttention(const CausalSelfAttentionOptions& options);
  CausalSelfAttention(int64_t n_embd, int64_t n_head, double dropout = 0.0, bool bias = true);
  // x (B, T, C) -> (B, T, C); position t attends to positions <= t only.
  Tensor forward(const Tensor& x) override;
  // residual + forward(x), residual (B, T, C): added in the output projection's GEMM when no
  // output dropout is active and proj has a bias and no hooks, else a separate add. Skips this
  // module's hooks: callers check has_hooks().
  Tensor forward(const Tensor& x, const Tensor& residual);
  int64_t n_embd() const { return n_embd_; }
  int64_t n_head() const { return n_head_; }
  void set_fused(bool on) { fused_ = on; }
  // Whether the next forward takes the fused path: allowed, no attention-weight dropout active,
  // and a head size the fused kernels take (<= kMaxAttentionHeadDim).
  bool uses_fused() const;

 private:
  // (T, T) with 0 on and below the diagonal and -inf above; rebuilt only when T, the dtype or
  // the device changes. Not a buffer: it is derived, so it stays out of state dicts.
  const Tensor& causal_mask(int64_t T, DType dtype, Device device);
  // (B, nh, T, hs) each -> (B, nh, T, hs): softmax(q k^T / sqrt(hs) + mask), dropout, @ v.
  Tensor unfused_attention(const Tensor& q, const Tensor& k, const Tensor& v);
  // x (B, T, C) -> the heads' outputs merged, (B, T, C): the output projection's input.
  Tensor attend(const Tensor& x);

  int64_t n_embd_, n_head_;
  bool fused_;
  std::shared_ptr<Linear> qkv_, proj_;
  std::shared_ptr<Dropout> attn_dropout_, resid_dropout_;
  Tensor mask_;
};

}  // namespace zt
