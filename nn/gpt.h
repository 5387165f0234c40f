// GPT: a decoder-only Transformer as GPT-2 / nanoGPT build it. Token and position embeddings,
// pre-LayerNorm blocks (causal self-attention and a GELU MLP, each added to the residual),
// a final LayerNorm and an output head tied to the token embedding. GPT-2 initialisation.
#pragma once
#include <memory>
#include <vector>

#include "core/generator.h"
#include "nn/activation.h"
#include "nn/attention.h"
#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/sequential.h"

namespace zt {

struct GPTConfig {
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_embd = 768;
  int64_t block_size = 1024;  // the longest context
  int64_t vocab_size = 50304;
  double dropout = 0.0;
  bool bias = true;  // biases of the Linear layers (LayerNorms always keep their shift)
  // Each block recomputes its activations in backward instead of keeping them
  // (autograd/checkpoint.h); results and gradients are bitwise the same.
  bool checkpoint_activations = false;
  // The MLP as one gelu_mlp (GELU and the biases in the GEMMs' epilogues) where its children carry
  // no hooks; false: module by module (Megatron's --no-bias-gelu-fusion), e.g. to measure the gain.
  bool fused_mlp = true;
  // Each block's residual adds inside the GEMMs of its output projections (the attention's proj
  // and the MLP's second linear), where no dropout is active on that branch and the modules
  // involved carry no hooks; false: separate adds, e.g. to measure the gain.
  bool fused_residual = true;
};

// Linear (4 C) -> GELU (tanh approximation) -> Linear (C) -> dropout.
class MLP : public Module {
 public:
  MLP(const GPTConfig& config, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // (B, T, C) -> (B, T, C)
  // residual + forward(x), residual (B, T, C): added in the second linear's GEMM when no dropout
  // is active and proj has a bias and no hooks, else a separate add. Skips this module's hooks:
  // callers check has_hooks().
  Tensor forward(const Tensor& x, const Tensor& residual);

 private:
  // Whether the MLP runs as one gelu_mlp: fused_mlp, both biases, no hooks on the children.
  bool uses_gelu_mlp() const;

  std::shared_ptr<Linear> fc_, proj_;
  std::shared_ptr<GELU> gelu_;
  bool fused_ = true;
  std::shared_ptr<Dropout> dropout_;
};

// x + attn(ln1(x)), then x + mlp(ln2(x)); the adds fused into the output projections' GEMMs
// where GPTConfig::fused_residual allows.
class Block : public Module {
 public:
  Block(const GPTConfig& config, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // (B, T, C) -> (B, T, C)

 private:
  std::shared_ptr<LayerNorm> ln1_, ln2_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<MLP> mlp_;
  bool fused_residual_ = true;
};

class GPT : public Module {
 public:
  // Weights drawn from gen (default_generator() when null) with GPT-2's init: normal(0, 0.02),
  // output projections ("*.proj.weight") normal(0, 0.02 / sqrt(2 n_layer)), zero biases.
  explicit GPT(const GPTConfig& config, Generator* gen = nullptr);

  // idx (B, T) i64 token ids, T <= block_size -> logits (B, T, vocab_size).
  Tensor forward(const Tensor& idx) override;
  // Mean cross-entropy of the next-token prediction: targets (B, T) i64.
  Tensor loss(const Tensor& idx, const Tensor& targets);
  // Appends max_new_tokens sampled tokens to idx (B, T0) and returns (B, T0 + max_new_tokens).
  // Logits are divided by temperature (<= 0: greedy argmax) and cut to the top_k most likely
  // (0: all). Runs in eval mode under no-grad; draws come from gen only.
  Tensor generate(const Tensor& idx, int64_t max_new_tokens, double temperature, int64_t top_k,
                  Generator& gen);

  const GPTConfig& config() const { return config_; }
  void set_checkpoint_activations(bool on) { config_.checkpoint_activations = on; }
  const Tensor& token_embedding() const { return wte_->weight(); }      // (vocab, C)
  const Tensor& lm_head_weight() const;                                 // the same tensor
  const std::vector<std::shared_ptr<Block>>& blocks() const { return blocks_; }
  // Parameters without the position embedding, as nanoGPT reports (the token embedding counts:
  // it is also the output head).
  int64_t num_parameters_reported() const;
  // Training FLOPs per token at context T (block_size when 0): 6 N + 12 L T C, N as above.
  double flops_per_token(int64_t T = 0) const;

 private:
  GPTConfig config_;
  std::shared_ptr<Embedding> wte_, wpe_;
  std::shared_ptr<Dropout> drop_;
  std::shared_ptr<Sequential> blocks_container_;
  std::vector<std::shared_ptr<Block>> blocks_;
  std::shared_ptr<LayerNorm> ln_f_;
  std::shared_ptr<Module> lm_head_;
};

}  // namespace zt
