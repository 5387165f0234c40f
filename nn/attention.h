// CausalSelfAttention: GPT's multi-head self-attention with a causal mask, unfused (matmul,
// mask, softmax, matmul). It is the reference the fused CUDA attention is checked against.
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
};

class CausalSelfAttention : public Module {
 public:
  explicit CausalSelfAttention(const CausalSelfAttentionOptions& options);
  CausalSelfAttention(int64_t n_embd, int64_t n_head, double dropout = 0.0, bool bias = true);
  // x (B, T, C) -> (B, T, C); position t attends to positions <= t only.
  Tensor forward(const Tensor& x) override;
  int64_t n_embd() const { return n_embd_; }
  int64_t n_head() const { return n_head_; }

 private:
  // (T, T) with 0 on and below the diagonal and -inf above; rebuilt only when T, the dtype or
  // the device changes. Not a buffer: it is derived, so it stays out of state dicts.
  const Tensor& causal_mask(int64_t T, DType dtype, Device device);

  int64_t n_embd_, n_head_;
  std::shared_ptr<Linear> qkv_, proj_;
  std::shared_ptr<Dropout> attn_dropout_, resid_dropout_;
  Tensor mask_;
};

}  // namespace zt
