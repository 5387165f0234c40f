// GPT pieces: f64 gradchecks of CausalSelfAttention and Block (input and parameters),
// causality, activation checkpointing (bitwise equal results and gradients with dropout, less
// memory held), the tied output head, parameter/FLOP counts and sampling. The models run on the
// device under test (tests/test_device.h), except where gradcheck perturbs their parameters.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/checkpoint.h"
#include "autograd/gradcheck.h"
#include "autograd/meta.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "nn/attention.h"
#include "nn/gpt.h"
#include "tests/test_device.h"

using namespace zt;

namespace {

Tensor f64_leaf(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  Tensor t = randn(shape, DType::f64, &gen);
  set_requires_grad(t);
  return t;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.shape() == b.shape() &&
         a.to_vector<double>() == b.to_vector<double>();
}

// gradcheck of module(x) over x and every parameter of the module (in f64), on the CPU: gradcheck
// perturbs the module's own parameters in host memory.
void check_module_gradients(Module& m, const Shape& x_shape) {
  m.to(DType::f64);
  std::vector<Tensor> inputs{f64_leaf(x_shape, 99)};
  for (const Tensor& p : m.parameters()) inputs.push_back(p);
  // Parameters start near their init; nudge them so no gradient is trivially zero.
  for (size_t i = 1; i < inputs.size(); ++i) {
    Generator gen(i);
    NoGradGuard ng;
    raw::binary_(BinaryOp::add, inputs[i], randn(inputs[i].shape(), DType::f64, &gen, 0.0, 0.3));
  }
  GradcheckResult r = gradcheck([&m](const std::vector<Tensor>& in) { return m(in[0]); }, inputs);
  CHECK_MESSAGE(r.ok, r.message);
  MESSAGE("max abs error ", r.max_abs_error, " over ", inputs.size(), " tensors");
}

GPTConfig tiny_config(double dropout = 0.0) {
  GPTConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.block_size = 8;
  c.vocab_size = 11;
  c.dropout = dropout;
  return c;
}

Tensor tokens(const Shape& shape, int64_t vocab, uint64_t seed, Device on = test::device()) {
  Generator gen(seed);
  return randint(0, vocab, shape, {DType::i64, on}, &gen);
}

// Whether the fused path's value equals the module-by-module one: bitwise on the CPU. On CUDA the
// fused MLP's GELU and bias run in cuBLASLt's epilogue, which rounds otherwise than the GELU
// kernel: equal there to one rounding of dt.
bool fused_equals_plain(const Tensor& fused, const Tensor& plain, DType dt) {
  const double diff = raw::max_abs_diff(fused, plain);
  if (!test::on_cuda()) return diff == 0.0;
  const double scale = raw::max_abs_diff(plain, zeros_like(plain));
  return diff <= (dt == DType::f32 ? 1e-5 : 1e-2) * (1.0 + scale);
}

}  // namespace

TEST_CASE("CausalSelfAttention: gradcheck of input and parameters (f64, B=2 T=3 C=4, 2 heads)") {
  CausalSelfAttention attn(4, 2);
  check_module_gradients(attn, {2, 3, 4});
}

TEST_CASE("Block: gradcheck of input and parameters (f64, B=2 T=3 C=4, 2 heads)") {
  GPTConfig c = tiny_config();
  c.n_embd = 4;
  Block block(c);
  check_module_gradients(block, {2, 3, 4});
}

TEST_CASE("CausalSelfAttention: with T = 1 the output is proj(v), the softmax weight being 1") {
  // With T = 1 the softmax weight is 1, so y = proj(v) with v the third third of qkv(x).
  CausalSelfAttention attn(4, 2, 0.0, true);
  attn.to(DType::f64);
  attn.to(test::device());
  Tensor x = test::on_device(f64_leaf({1, 1, 4}, 5));
  NoGradGuard ng;
  Tensor qkv = attn.child("qkv")->operator()(x);                 // (1, 1, 12)
  Tensor v = raw::narrow(qkv, 2, 8, 4);                          // (1, 1, 4)
  Tensor expected = attn.child("proj")->operator()(v);
  CHECK(raw::max_abs_diff(attn(x), expected) < 1e-12);
}

TEST_CASE("GPT: changing token t+1 leaves the outputs at positions <= t unchanged") {
  GPT model(tiny_config());
  model.to(test::device());
  Tensor idx = tokens({2, 8}, 11, 1);
  NoGradGuard ng;
  Tensor before = model(idx);  // (2, 8, 11)
  for (int64_t t = 0; t + 1 < 8; ++t) {
    std::vector<int64_t> ids = idx.to_vector<int64_t>();
    ids[size_t(t + 1)] = (ids[size_t(t + 1)] + 1) % 11;        // row 0, position t+1
    ids[size_t(8 + t + 1)] = (ids[size_t(8 + t + 1)] + 3) % 11;  // row 1
    Tensor after = model(from_vector<int64_t>(ids, {2, 8}, test::opts(DType::i64)));
    CHECK(bitwise_equal(raw::narrow(before, 1, 0, t + 1), raw::narrow(after, 1, 0, t + 1)));
    CHECK(raw::max_abs_diff(raw::narrow(before, 1, t + 1, 1), raw::narrow(after, 1, t + 1, 1)) > 0);
  }
}

TEST_CASE("Block: activation checkpointing gives bitwise equal output and gradients, less memory") {
  GPTConfig c;
  c.n_head = 4;
  c.n_embd = 64;
  c.dropout = 0.2;  // masks must match between forward and recompute
  Generator init(3);
  auto block = std::make_shared<Block>(c, &init);
  block->to(test::device());
  const Shape shape{4, 32, 64};
  Generator wgen(4);
  Tensor out_weights = randn(shape, test::opts(), &wgen);
  Allocator& alloc = allocator_for(test::device());

  struct Run {
    Tensor out, gx;
    std::vector<Tensor> grads;
    int64_t held = 0;
  };
  auto run = [&](bool use_checkpoint) {
    block->zero_grad();
    Generator xgen(5);
    Tensor x = randn(shape, test::opts(), &xgen);
    set_requires_grad(x);
    manual_seed(77);
    Run r;
    const int64_t before = alloc.stats().total.in_use;
    Tensor out = use_checkpoint
                     ? checkpoint([&](const Tensor& h) { return (*block)(h); }, x)
                     : (*block)(x);
    r.held = alloc.stats().total.in_use - before;
    backward(sum(mul(out, out_weights)));
    r.out = detach(out);
    r.gx = grad(x);
    for (const Tensor& p : block->parameters()) r.grads.push_back(grad(p));
    return r;
  };
  Run plain = run(false), ckpt = run(true);
  CHECK(bitwise_equal(plain.out, ckpt.out));
  CHECK(bitwise_equal(plain.gx, ckpt.gx));
  REQUIRE(plain.grads.size() == ckpt.grads.size());
  REQUIRE(plain.grads.size() == 12);  // ln1 2, qkv 2, proj 2, ln2 2, fc 2, proj 2
  for (size_t i = 0; i < plain.grads.size(); ++i) CHECK(bitwise_equal(plain.grads[i], ckpt.grads[i]));
  // Dropout was active: a different seed gives a different output.
  manual_seed(78);
  {
    NoGradGuard ng;
    Generator xgen(5);
    CHECK(raw::max_abs_diff((*block)(randn(shape, test::opts(), &xgen)), plain.out) > 0);
  }
  MESSAGE("activation bytes held between forward and backward: plain ", plain.held,
          ", checkpointed ", ckpt.held);
  const int64_t one = 4 * 32 * 64 * 4;  // one (B, T, C) f32 tensor
  CHECK(plain.held > 10 * one);
  CHECK(ckpt.held <= one);
}

TEST_CASE("GPT: checkpoint_activations changes neither the loss nor any gradient") {
  GPTConfig c = tiny_config(0.1);
  Tensor idx = tokens({2, 8}, 11, 2), targets = tokens({2, 8}, 11, 3);
  auto run = [&](bool on) {
    GPTConfig cc = c;
    cc.checkpoint_activations = on;
    Generator gen(11);
    GPT model(cc, &gen);
    model.to(test::device());
    manual_seed(5);
    Tensor loss = model.loss(idx, targets);
    backward(loss);
    std::vector<std::pair<std::string, Tensor>> out{{"loss", detach(loss)}};
    for (const auto& [name, p] : model.named_parameters()) out.emplace_back(name, grad(p));
    return out;
  };
  const auto plain = run(false), ckpt = run(true);
  REQUIRE(plain.size() == ckpt.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    INFO(plain[i].first);
    // On CUDA the embeddings' backward (index_add) adds repeated tokens with atomics, in no fixed
    // order (cuda/kernels_index.cu): equal to rounding there; everything else bitwise.
    if (test::on_cuda() && (plain[i].first == "wte.weight" || plain[i].first == "wpe.weight")) {
      CHECK(raw::max_abs_diff(plain[i].second, ckpt[i].second) <= 1e-6);
    } else {
      CHECK(bitwise_equal(plain[i].second, ckpt[i].second));
    }
  }
}

// On the CPU: gradcheck perturbs the shared tensor in host memory.
TEST_CASE("GPT: the output head is the token embedding, and its gradient has both uses") {
  GPT model(tiny_config());
  CHECK(model.lm_head_weight().same_impl(model.token_embedding()));
  // Listed once among the parameters, under both names in the state dict.
  int64_t listed = 0;
  for (const auto& [name, p] : model.named_parameters()) listed += p.same_impl(model.token_embedding());
  CHECK(listed == 1);
  CHECK(model.state_dict().contains("lm_head.weight"));
  CHECK(model.state_dict().contains("wte.weight"));
  model.to(DType::f64);  // the tie survives a dtype move
  CHECK(model.lm_head_weight().same_impl(model.token_embedding()));
  CHECK(model.token_embedding().dtype() == DType::f64);
  // Finite differences through both the lookup and the head agree with backward.
  Tensor idx = tokens({2, 4}, 11, 4, Device::cpu()), targets = tokens({2, 4}, 11, 5, Device::cpu());
  GradcheckResult r = gradcheck(
      [&](const std::vector<Tensor>&) { return model.loss(idx, targets); }, {model.token_embedding()});
  CHECK_MESSAGE(r.ok, r.message);
  // A vocabulary row absent from idx gets nothing from the lookup, only from the head: the
  // gradient there is nonzero, so the head's contribution reaches the shared tensor.
  backward(model.loss(idx, targets));
  std::vector<int64_t> ids = idx.to_vector<int64_t>();
  int64_t unused = -1;
  for (int64_t v = 0; v < 11 && unused < 0; ++v)
    if (std::find(ids.begin(), ids.end(), v) == ids.end()) unused = v;
  REQUIRE(unused >= 0);
  CHECK(raw::amax(raw::unary(UnaryOp::abs, raw::select(grad(model.token_embedding()), 0, unused))).item() > 0);
}

TEST_CASE("GPT: parameter count, GPT-2 init and FLOPs per token") {
  GPTConfig c = tiny_config();
  GPT model(c);
  model.to(test::device());
  const int64_t C = c.n_embd, L = c.n_layer, V = c.vocab_size, P = c.block_size;
  const int64_t per_block = 12 * C * C + 13 * C;
  CHECK(model.num_parameters() == V * C + P * C + L * per_block + 2 * C);
  CHECK(model.num_parameters_reported() == V * C + L * per_block + 2 * C);
  CHECK(model.flops_per_token() ==
        doctest::Approx(6.0 * double(model.num_parameters_reported()) + 12.0 * L * P * C));
  for (const auto& [name, p] : model.named_parameters()) {
    if (name.size() > 5 && name.substr(name.size() - 5) == ".bias")
      CHECK_MESSAGE(raw::amax(raw::unary(UnaryOp::abs, p)).item() == 0, name);
  }
  // GPT-2 scale on a larger layer: std 0.02, and 0.02 / sqrt(2 L) on the output projections.
  GPTConfig big;
  big.n_layer = 8;
  big.n_head = 4;
  big.n_embd = 128;
  big.block_size = 16;
  big.vocab_size = 64;
  GPT wide(big);
  wide.to(test::device());
  auto stddev = [](const Tensor& t) { return std::sqrt(raw::mean(raw::mul(t, t)).item()); };
  CHECK(stddev(wide.blocks()[0]->child("mlp")->child("fc")->parameter("weight")) ==
        doctest::Approx(0.02).epsilon(0.05));
  CHECK(stddev(wide.blocks()[0]->child("attn")->child("proj")->parameter("weight")) ==
        doctest::Approx(0.02 / 4.0).epsilon(0.05));
  CHECK(stddev(wide.token_embedding()) == doctest::Approx(0.02).epsilon(0.05));
}

TEST_CASE("GPT: generate appends in-range tokens, reproducibly under a seed") {
  GPT model(tiny_config(0.1));
  model.to(test::device());
  Tensor prompt = tokens({2, 3}, 11, 6);
  Generator a(1), b(1), c(2);
  Tensor x = model.generate(prompt, 12, 1.0, 0, a);  // longer than block_size: the context slides
  CHECK(x.shape() == Shape{2, 15});
  std::vector<int64_t> ids = x.to_vector<int64_t>();
  for (int64_t id : ids) CHECK((id >= 0 && id < 11));
  std::vector<int64_t> p = prompt.to_vector<int64_t>();
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t t = 0; t < 3; ++t) CHECK(ids[size_t(r * 15 + t)] == p[size_t(r * 3 + t)]);
  CHECK(model.generate(prompt, 12, 1.0, 0, b).to_vector<int64_t>() == ids);
  CHECK(model.generate(prompt, 12, 1.0, 0, c).to_vector<int64_t>() != ids);
  CHECK(model.is_training());  // the mode is restored
  // top_k = 1 and temperature 0 both pick the argmax.
  Generator d(3), e(4);
  CHECK(model.generate(prompt, 5, 0.7, 1, d).to_vector<int64_t>() ==
        model.generate(prompt, 5, 0.0, 0, e).to_vector<int64_t>());
  CHECK_THROWS_AS(model.generate(from_vector<int64_t>({1}, {1}, test::opts(DType::i64)), 1, 1.0, 0, d), Error);
  CHECK_THROWS_AS(model(tokens({1, 9}, 11, 7)), Error);  // longer than block_size
}

TEST_CASE("MLP: fused_mlp off runs module by module, with the fused path's values (f32)") {
  GPTConfig c;
  c.n_embd = 8;
  GPTConfig off = c;
  off.fused_mlp = false;
  Generator g1(3), g2(3);
  MLP fused(c, &g1), plain(off, &g2);
  fused.to(test::device());
  plain.to(test::device());
  Generator xg(4);
  const Tensor x = randn({2, 3, c.n_embd}, test::opts(), &xg);
  const Tensor yf = fused(x), yp = plain(x);
  CHECK(fused_equals_plain(yf, yp, DType::f32));
  // The fused path records one gelu_mlp node; the plain one ends in the proj linear's.
  const Tensor xr = set_requires_grad(raw::clone(x));
  auto last_op = [](const Tensor& t) { return std::string(autograd::meta_of(t)->grad_fn->name); };
  CHECK(last_op(fused(xr)) == "gelu_mlp");
  CHECK(last_op(plain(xr)) == "linear");
}

TEST_CASE("MLP: the fused gelu_mlp path equals the module-by-module path a hook forces (f32 and bf16)") {
  GPTConfig c;
  c.n_embd = 16;
  for (DType dt : {DType::f32, DType::bf16}) {
    INFO(dtype_name(dt));
    Generator g1(5), g2(5);
    MLP fused(c, &g1), hooked(c, &g2);
    fused.to(dt);
    hooked.to(dt);
    fused.to(test::device());
    hooked.to(test::device());
    int calls = 0;
    // A hook on a child (as ZeRO-3 registers) must run, so that MLP goes module by module.
    auto named = hooked.named_modules();
    auto fc = std::find_if(named.begin(), named.end(), [](const auto& nm) { return nm.first == "fc"; });
    REQUIRE(fc != named.end());
    fc->second->register_forward_hook([&](Module&, const Tensor&, const Tensor&) { ++calls; });
    REQUIRE(fc->second->has_hooks());
    Generator xg(6);
    const Tensor x = raw::to(randn({2, 5, c.n_embd}, test::opts(), &xg), dt);
    const Tensor w = raw::to(randn({2, 5, c.n_embd}, test::opts(), &xg), dt);
    Tensor xf = set_requires_grad(raw::clone(x)), xh = set_requires_grad(raw::clone(x));
    const Tensor yf = fused(xf), yh = hooked(xh);
    CHECK(calls == 1);
    // Forward values are the same ops' values; bias gradients may sum in another order.
    CHECK(fused_equals_plain(yf, yh, dt));
    backward(sum(mul(yf, w)));
    backward(sum(mul(yh, w)));
    const double tol = dt == DType::f32 ? 1e-5 : 2e-2;
    CHECK(raw::max_abs_diff(grad(xf), grad(xh)) <= tol);
    const auto pf = fused.named_parameters(), ph = hooked.named_parameters();
    REQUIRE(pf.size() == ph.size());
    for (size_t i = 0; i < pf.size(); ++i) {
      INFO(pf[i].first);
      const double scale = raw::max_abs_diff(grad(ph[i].second), zeros_like(grad(ph[i].second)));
      CHECK(raw::max_abs_diff(grad(pf[i].second), grad(ph[i].second)) <= tol * (1 + scale));
    }
  }
}

namespace {

// The op that recorded t, and the one that recorded its i-th input.
std::string op_of(const Tensor& t) { return autograd::meta_of(t)->grad_fn->name; }
std::string input_op(const Tensor& t, size_t i) {
  const auto& next = autograd::meta_of(t)->grad_fn->next;
  REQUIRE(i < next.size());
  REQUIRE(next[i].node);
  return next[i].node->name;
}

// A block's output and gradients for x0, with which op recorded the output (gelu_mlp or linear
// when the MLP's residual add was fused, add otherwise) and which op recorded the residual h it
// added (the attention's proj linear when that add was fused).
struct BlockRun {
  Tensor out, gx;
  std::vector<std::pair<std::string, Tensor>> grads;
  std::string last, residual;
};

BlockRun run_block(Block& block, const Tensor& x0, const Tensor& w) {
  block.zero_grad();
  const Tensor x = set_requires_grad(raw::clone(x0));
  const Tensor out = block(x);
  BlockRun r;
  r.last = op_of(out);
  r.residual = input_op(out, r.last == "gelu_mlp" ? 5 : r.last == "linear" ? 3 : 0);
  backward(sum(mul(out, w)));
  r.out = detach(out);
  r.gx = grad(x);
  for (const auto& [name, p] : block.named_parameters()) r.grads.emplace_back(name, grad(p));
  return r;
}

// Output and every gradient equal to f32 rounding (the fused add rounds in another order).
void check_close_runs(const BlockRun& a, const BlockRun& b) {
  auto close = [](const Tensor& x, const Tensor& y) {
    const double scale = raw::max_abs_diff(y, zeros_like(y));
    INFO("max abs difference ", raw::max_abs_diff(x, y), " against max magnitude ", scale);
    return raw::max_abs_diff(x, y) <= 1e-5 * (1 + scale);
  };
  CHECK(close(a.out, b.out));
  CHECK(close(a.gx, b.gx));
  REQUIRE(a.grads.size() == b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    INFO(a.grads[i].first);
    CHECK(close(a.grads[i].second, b.grads[i].second));
  }
}

Module* find_module(Module& root, const std::string& name) {
  for (const auto& [n, m] : root.named_modules())
    if (n == name) return m;
  FAIL("no module ", name);
  return nullptr;
}

GPTConfig block_config(double dropout = 0.0) {
  GPTConfig c = tiny_config(dropout);
  c.n_embd = 16;
  return c;
}

}  // namespace

TEST_CASE("Block: residual adds in the output projections' GEMMs equal separate adds, forward and backward") {
  for (bool fused_mlp : {true, false}) {
    INFO("fused_mlp ", fused_mlp);
    GPTConfig c = block_config();
    c.fused_mlp = fused_mlp;
    GPTConfig off = c;
    off.fused_residual = false;
    Generator g1(7), g2(7);
    Block fused(c, &g1), plain(off, &g2);
    fused.to(test::device());
    plain.to(test::device());
    Generator xg(8);
    const Tensor x = randn({2, 5, c.n_embd}, test::opts(), &xg), w = randn({2, 5, c.n_embd}, test::opts(), &xg);
    const BlockRun rf = run_block(fused, x, w), rp = run_block(plain, x, w);
    CHECK(rf.last == (fused_mlp ? "gelu_mlp" : "linear"));
    CHECK(rf.residual == "linear");
    CHECK(rp.last == "add");
    CHECK(rp.residual == "add");
    check_close_runs(rf, rp);
  }
}

TEST_CASE("Block: active dropout, or a hook on an output projection or a branch, keeps the separate add") {
  Generator xg(10);
  const GPTConfig c = block_config(0.2);
  const Tensor x = randn({2, 5, c.n_embd}, test::opts(), &xg), w = randn({2, 5, c.n_embd}, test::opts(), &xg);
  {
    Generator g(9);
    Block block(c, &g);
    block.to(test::device());
    const BlockRun train = run_block(block, x, w);  // dropout between each proj and its add
    CHECK(train.last == "add");
    CHECK(train.residual == "add");
    block.eval();  // dropout is the identity: fused, and equal to an eval block with separate adds
    GPTConfig off = c;
    off.fused_residual = false;
    Generator g2(9);
    Block plain(off, &g2);
    plain.to(test::device());
    plain.eval();
    const BlockRun fused = run_block(block, x, w), separate = run_block(plain, x, w);
    CHECK(fused.last == "gelu_mlp");
    CHECK(fused.residual == "linear");
    CHECK(separate.last == "add");
    check_close_runs(fused, separate);
  }
  // A hook must run (ZeRO-3 gathers parameters there): that branch keeps its add, the other fuses.
  struct Case {
    std::string module, last, residual;
  };
  const GPTConfig c0 = block_config();
  Generator g0(11);
  Block reference(c0, &g0);
  reference.to(test::device());
  const BlockRun want = run_block(reference, x, w);
  for (const Case& k : {Case{"attn.proj", "gelu_mlp", "add"}, Case{"attn", "gelu_mlp", "add"},
                        Case{"mlp.proj", "add", "linear"}, Case{"mlp", "add", "linear"},
                        Case{"mlp.dropout", "add", "linear"}}) {
    INFO("hook on ", k.module);
    Generator g(11);
    Block block(c0, &g);
    block.to(test::device());
    int calls = 0;
    find_module(block, k.module)->register_forward_hook([&](Module&, const Tensor&, const Tensor&) { ++calls; });
    const BlockRun got = run_block(block, x, w);
    CHECK(calls == 1);
    CHECK(got.last == k.last);
    CHECK(got.residual == k.residual);
    check_close_runs(got, want);
  }
}

TEST_CASE("GPT: fused residual adds give the separate adds' loss and gradients; checkpointing them is bitwise") {
  const GPTConfig c = tiny_config();
  Tensor idx = tokens({2, 8}, 11, 2), targets = tokens({2, 8}, 11, 3);
  auto run = [&](bool fused, bool checkpointed) {
    GPTConfig cc = c;
    cc.fused_residual = fused;
    cc.checkpoint_activations = checkpointed;
    Generator gen(11);
    GPT model(cc, &gen);
    model.to(test::device());
    Tensor loss = model.loss(idx, targets);
    backward(loss);
    std::vector<std::pair<std::string, Tensor>> out{{"loss", detach(loss)}};
    for (const auto& [name, p] : model.named_parameters()) out.emplace_back(name, grad(p));
    return out;
  };
  const auto fused = run(true, false), separate = run(false, false), ckpt = run(true, true);
  REQUIRE(fused.size() == separate.size());
  REQUIRE(fused.size() == ckpt.size());
  for (size_t i = 0; i < fused.size(); ++i) {
    INFO(fused[i].first);
    const double scale = raw::max_abs_diff(separate[i].second, zeros_like(separate[i].second));
    CHECK(raw::max_abs_diff(fused[i].second, separate[i].second) <= 1e-5 * (1 + scale));
    // As in the checkpoint test above: the embeddings' CUDA backward adds with atomics.
    if (test::on_cuda() && (fused[i].first == "wte.weight" || fused[i].first == "wpe.weight")) {
      CHECK(raw::max_abs_diff(fused[i].second, ckpt[i].second) <= 1e-6);
    } else {
      CHECK(bitwise_equal(fused[i].second, ckpt[i].second));
    }
  }
}
