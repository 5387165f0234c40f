// GPT model: blocks, embeddings, tied head, GPT-2 init, loss and sampling.
#include "nn/gpt.h"

#include <algorithm>
#include <functional>
#include <cmath>
#include <limits>
#include <string>

#include "autograd/checkpoint.h"
#include "autograd/ops.h"
#include "nn/init.h"

namespace zt {
namespace {

// The output head: logits = x @ W^T with W the token embedding itself. Registering the same
// tensor here keeps "lm_head.weight" in state dicts (as nanoGPT's) while named_parameters()
// lists it once, and to(DType/Device) converts it once, so the tie survives moves.
class TiedHead : public Module {
 public:
  explicit TiedHead(const Tensor& weight) { register_parameter("weight", weight); }
  Tensor forward(const Tensor& x) override { return linear(x, parameter("weight")); }
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// One token from a row of V logits: argmax when temperature <= 0, else softmax(row / temperature)
// over the top_k largest (all when 0), sampled by inverse CDF at u in [0, 1).
int64_t sample_token(const double* row, int64_t V, double temperature, int64_t top_k, double u,
                     std::vector<double>& probs) {
  if (temperature <= 0) return int64_t(std::max_element(row, row + V) - row);
  double cutoff = -std::numeric_limits<double>::infinity();
  if (top_k > 0 && top_k < V) {
    std::vector<double> sorted(row, row + V);
    std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(), std::greater<>());
    cutoff = sorted[size_t(top_k - 1)];  // the k-th largest: anything below is dropped
  }
  const double top = *std::max_element(row, row + V);
  double total = 0;
  for (int64_t v = 0; v < V; ++v) {
    probs[size_t(v)] = row[v] < cutoff ? 0.0 : std::exp((row[v] - top) / temperature);
    total += probs[size_t(v)];
  }
  // The last kept token absorbs rounding at the top end of the CDF.
  const double target = u * total;
  double acc = 0;
  int64_t pick = 0;
  for (int64_t v = 0; v < V; ++v) {
    if (probs[size_t(v)] == 0.0) continue;
    pick = v;
    acc += probs[size_t(v)];
    if (acc > target) break;
  }
  return pick;
}

}  // namespace

// ---- MLP and Block ----

MLP::MLP(const GPTConfig& c, Generator* gen) : fused_(c.fused_mlp) {
  const int64_t C = c.n_embd;
  fc_ = register_module("fc", std::make_shared<Linear>(
                                  LinearOptions{C, 4 * C, c.bias, DType::f32, Device::cpu(), gen}));
  gelu_ = register_module("gelu", std::make_shared<GELU>(true));
  proj_ = register_module("proj", std::make_shared<Linear>(
                                      LinearOptions{4 * C, C, c.bias, DType::f32, Device::cpu(), gen}));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(c.dropout));
}

// One fused op (GELU, its gradient and both biases in the GEMMs' epilogues), unless a child has
// hooks its own forward must run (ZeRO-3 gathers parameters there).
bool MLP::uses_gelu_mlp() const {
  return fused_ && fc_->bias().defined() && proj_->bias().defined() && !fc_->has_hooks() && !gelu_->has_hooks() &&
         !proj_->has_hooks();
}

Tensor MLP::forward(const Tensor& x) {
  if (uses_gelu_mlp()) return (*dropout_)(gelu_mlp(x, fc_->weight(), fc_->bias(), proj_->weight(), proj_->bias()));
  return (*dropout_)((*proj_)((*gelu_)((*fc_)(x))));  // (B, T, 4C) inside, (B, T, C) out
}

Tensor MLP::forward(const Tensor& x, const Tensor& residual) {
  // The dropout sits between proj and the add, and proj's own forward must run its hooks.
  if (dropout_->active() || dropout_->has_hooks() || !proj_->bias().defined() || proj_->has_hooks())
    return add(residual, forward(x));
  if (uses_gelu_mlp()) return gelu_mlp(x, fc_->weight(), fc_->bias(), proj_->weight(), proj_->bias(), residual);
  return linear((*gelu_)((*fc_)(x)), proj_->weight(), proj_->bias(), residual);
}

Block::Block(const GPTConfig& c, Generator* gen) : fused_residual_(c.fused_residual) {
  ln1_ = register_module("ln1", std::make_shared<LayerNorm>(c.n_embd));
  attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(
                                      CausalSelfAttentionOptions{c.n_embd, c.n_head, c.dropout,
                                                                 c.bias, gen}));
  ln2_ = register_module("ln2", std::make_shared<LayerNorm>(c.n_embd));
  mlp_ = register_module("mlp", std::make_shared<MLP>(c, gen));
}

Tensor Block::forward(const Tensor& x) {
  // forward(x, residual) skips the child's operator(): a child with hooks (ZeRO-3 gathers there)
  // runs through it, with a separate add.
  Tensor h = fused_residual_ && !attn_->has_hooks() ? attn_->forward((*ln1_)(x), x)
                                                      : add(x, (*attn_)((*ln1_)(x)));  // (B, T, C)
  return fused_residual_ && !mlp_->has_hooks() ? mlp_->forward((*ln2_)(h), h) : add(h, (*mlp_)((*ln2_)(h)));
}

// ---- GPT ----

GPT::GPT(const GPTConfig& c, Generator* gen_ptr) : config_(c) {
  ZT_CHECK(c.n_layer > 0 && c.n_head > 0 && c.n_embd > 0 && c.block_size > 0 && c.vocab_size > 0,
           "GPT: expected positive n_layer, n_head, n_embd, block_size, vocab_size, found ",
           c.n_layer, ", ", c.n_head, ", ", c.n_embd, ", ", c.block_size, ", ", c.vocab_size);
  ZT_CHECK(c.dropout >= 0.0 && c.dropout < 1.0, "GPT: expected 0 <= dropout < 1, found ", c.dropout);
  Generator& gen = gen_ptr ? *gen_ptr : default_generator();
  wte_ = register_module("wte", std::make_shared<Embedding>(EmbeddingOptions{
                                    c.vocab_size, c.n_embd, DType::f32, Device::cpu(), &gen}));
  wpe_ = register_module("wpe", std::make_shared<Embedding>(EmbeddingOptions{
                                    c.block_size, c.n_embd, DType::f32, Device::cpu(), &gen}));
  drop_ = register_module("drop", std::make_shared<Dropout>(c.dropout));
  blocks_container_ = register_module("blocks", std::make_shared<Sequential>());
  for (int64_t i = 0; i < c.n_layer; ++i)
    blocks_.push_back(blocks_container_->push_back(std::make_shared<Block>(c, &gen)));
  ln_f_ = register_module("ln_f", std::make_shared<LayerNorm>(c.n_embd));
  lm_head_ = register_module("lm_head", std::make_shared<TiedHead>(wte_->weight()));

  // GPT-2 init over every parameter by name (lm_head.weight is wte.weight, listed once).
  const double proj_std = 0.02 / std::sqrt(2.0 * double(c.n_layer));
  for (const auto& [name, p] : named_parameters()) {
    if (ends_with(name, ".bias")) {
      init::zeros_(p);  // LayerNorm shifts start at zero too
    } else if (p.dim() == 2) {
      init::normal_(p, 0.0, ends_with(name, ".proj.weight") ? proj_std : 0.02, gen);
    }
  }
}

const Tensor& GPT::lm_head_weight() const { return lm_head_->parameter("weight"); }

Tensor GPT::forward(const Tensor& idx) {
  ZT_CHECK(idx.dim() == 2 && (idx.dtype() == DType::i64 || idx.dtype() == DType::i32),
           "GPT: expected token ids (B, T) of i64 or i32, found ", idx.str());
  const int64_t T = idx.size(1);
  ZT_CHECK(T >= 1 && T <= config_.block_size, "GPT: sequence length ", T,
           " must be between 1 and block_size ", config_.block_size);
  Tensor pos = arange(0, double(T), 1.0, TensorOptions(DType::i64, idx.device()));  // (T)
  Tensor x = (*drop_)(add((*wte_)(idx), (*wpe_)(pos)));  // (B, T, C) + (T, C)
  const bool recompute = config_.checkpoint_activations && grad_mode_enabled();
  for (const auto& block : blocks_) {
    if (recompute) {
      x = checkpoint([block](const Tensor& h) { return (*block)(h); }, x);
    } else {
      x = (*block)(x);
    }
  }
  return (*lm_head_)((*ln_f_)(x));  // (B, T, vocab)
}

Tensor GPT::loss(const Tensor& idx, const Tensor& targets) {
  ZT_CHECK(targets.shape() == idx.shape(), "GPT::loss: expected targets of the shape of idx ",
           shape_str(idx.shape()), ", found ", shape_str(targets.shape()));
  return cross_entropy((*this)(idx), targets);  // through operator(): hooks run
}

Tensor GPT::generate(const Tensor& idx, int64_t max_new_tokens, double temperature, int64_t top_k,
                     Generator& gen) {
  ZT_CHECK(idx.dim() == 2 && idx.dtype() == DType::i64 && idx.size(1) >= 1,
           "GPT::generate: expected a prompt (B, T0) of i64 with T0 >= 1, found ", idx.str());
  ZT_CHECK(max_new_tokens >= 0 && top_k >= 0, "GPT::generate: expected max_new_tokens >= 0 and "
           "top_k >= 0, found ", max_new_tokens, " and ", top_k);
  NoGradGuard no_grad;
  const bool was_training = is_training();
  eval();
  const int64_t B = idx.size(0), V = config_.vocab_size;
  std::vector<int64_t> tokens = idx.to_vector<int64_t>();  // (B, T) row-major on the host
  int64_t T = idx.size(1);
  std::vector<double> probs(static_cast<size_t>(V));
  for (int64_t n = 0; n < max_new_tokens; ++n) {
    const int64_t ctx = std::min(T, config_.block_size);
    std::vector<int64_t> window(size_t(B * ctx));  // the last ctx tokens of each row
    for (int64_t b = 0; b < B; ++b)
      std::copy_n(tokens.begin() + b * T + (T - ctx), ctx, window.begin() + b * ctx);
    Tensor cond = raw::to(from_vector<int64_t>(window, {B, ctx}), idx.device());
    Tensor last = raw::to(raw::select((*this)(cond), 1, ctx - 1), DType::f64);  // (B, V)
    std::vector<double> logits = last.to_vector<double>();
    std::vector<double> u = rand({B}, DType::f64, &gen).to_vector<double>();
    std::vector<int64_t> next(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b)
      next[size_t(b)] = sample_token(logits.data() + b * V, V, temperature, top_k, u[size_t(b)], probs);
    std::vector<int64_t> grown(size_t(B * (T + 1)));
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(tokens.begin() + b * T, T, grown.begin() + b * (T + 1));
      grown[size_t(b * (T + 1) + T)] = next[size_t(b)];
    }
    tokens = std::move(grown);
    ++T;
  }
  train(was_training);
  return raw::to(from_vector<int64_t>(tokens, {B, T}), idx.device());
}

int64_t GPT::num_parameters_reported() const { return num_parameters() - wpe_->weight().numel(); }

double GPT::flops_per_token(int64_t T) const {
  const double N = double(num_parameters_reported());
  const double L = double(config_.n_layer), C = double(config_.n_embd);
  const double ctx = double(T > 0 ? T : config_.block_size);
  return 6.0 * N + 12.0 * L * ctx * C;
}

}  // namespace zt
