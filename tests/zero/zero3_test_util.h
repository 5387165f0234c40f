// Helpers of the ZeRO-3 tests (tests/zero/test_zero_stage3.cpp in one process and
// tests/parallel/test_zero3_mpi.cpp on W ranks): a training run through the engine on a fixed
// global batch that every rank slices alike, the model's final weights (gathered under ZeRO-3),
// and the comparison of two runs with a relative tolerance.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"
#include "core/factory.h"
#include "core/ops.h"
#include "nn/gpt.h"
#include "runtime/engine.h"
#include "runtime/engine_test_util.h"
#include "zero/zero_stage3.h"

namespace zt::test {

inline std::vector<double> values(const Tensor& t) {
  return raw::to(raw::contiguous(t), DType::f64).to_vector<double>();
}

using NamedValues = std::vector<std::pair<std::string, std::vector<double>>>;

struct Run {
  std::vector<double> losses;  // global-batch mean per step
  NamedValues params;          // final weights, every state_dict name
  int64_t skipped = 0;
  double loss_scale = 0;
};

// The engine's model state with ZeRO-3's partitioned parameters gathered (collective then).
inline NamedValues model_values(Engine& e) {
  auto* z3 = dynamic_cast<ZeroStage3Optimizer*>(&e.precision());
  const TensorDict state = z3 ? z3->gathered_state_dict() : e.module().state_dict();
  NamedValues out;
  for (const auto& [name, t] : state) out.emplace_back(name, values(t));
  return out;
}

// Losses relative to the loss; weights as max |difference| over max |weight| per tensor.
inline void check_same(const Run& got, const Run& want, double tol) {
  REQUIRE(got.losses.size() == want.losses.size());
  for (size_t s = 0; s < got.losses.size(); ++s) {
    CAPTURE(s);
    CHECK(std::abs(got.losses[s] - want.losses[s]) <= tol * std::abs(want.losses[s]));
  }
  REQUIRE(got.params.size() == want.params.size());
  for (size_t i = 0; i < got.params.size(); ++i) {
    CAPTURE(got.params[i].first);
    REQUIRE(got.params[i].first == want.params[i].first);
    const auto& g = got.params[i].second;
    const auto& w = want.params[i].second;
    REQUIRE(g.size() == w.size());
    double diff = 0, scale = 0;
    for (size_t k = 0; k < g.size(); ++k) {
      diff = std::max(diff, std::abs(g[k] - w[k]));
      scale = std::max(scale, std::abs(w[k]));
    }
    CHECK(diff <= tol * scale);
  }
}

// A config of `stage` for a global batch of 16 with clipping and AdamW; stage 3 keeps units of at
// most `persistence` elements gathered (0: none) and prefetches up to 64 elements. `extra` (top
// level keys, each followed by a comma) goes in first.
inline Config zero3_test_config(int stage, int64_t accum, int64_t world_size, const std::string& extra = "",
                                int64_t persistence = 0) {
  return json_config(R"({)" + extra + R"("train_batch_size": 16, "gradient_accumulation_steps": )" +
                         std::to_string(accum) + R"(, "gradient_clipping": 0.3,
      "zero_optimization": {"stage": )" + std::to_string(stage) + R"(, "reduce_bucket_size": 20,
        "stage3_param_persistence_threshold": )" + std::to_string(persistence) + R"(,
        "stage3_prefetch_bucket_size": 64},
      "optimizer": {"type": "AdamW", "params": {"lr": 0.02, "weight_decay": 0.01}}})",
                     world_size);
}

// The rows of a global batch that `rank` of `world` uses for micro-batch m (of accum).
inline Tensor share(const Tensor& global, int64_t m, int64_t accum, int world, int rank) {
  const int64_t micro = global.size(0) / (int64_t(world) * accum);
  return rows(global, (m * world + rank) * micro, micro);
}

// A tiny GPT with a tied output head: 2 blocks, 2 heads, width 16, context 8, vocabulary 24. Its
// Linear layers have no bias: the key part of an attention input bias has an analytically zero
// gradient (softmax is shift-invariant), so its computed gradient is pure rounding noise that
// Adam normalises into lr-sized steps, and any change of summation order (a clipping norm summed
// in f64 instead of f32) would move it far beyond a rounding-level tolerance.
inline std::shared_ptr<GPT> tiny_gpt(bool checkpoint_activations, uint64_t seed = 5) {
  GPTConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 16;
  c.block_size = 8;
  c.vocab_size = 24;
  c.bias = false;
  c.checkpoint_activations = checkpoint_activations;
  Generator gen(seed);
  return std::make_shared<GPT>(c, &gen);
}

// Tokens (16, 8) and their targets (the next token of a fixed rule, so the loss can fall).
inline Batch token_batch(uint64_t seed) {
  Generator gen(seed);
  Tensor x = randint(0, 24, {16, 8}, DType::i64, &gen);
  std::vector<int64_t> v = x.to_vector<int64_t>();
  for (int64_t& t : v) t = (5 * t + 3) % 24;
  return {x, from_vector<int64_t>(v, {16, 8})};
}

struct Task {
  std::function<std::shared_ptr<Module>()> model;
  std::function<Batch(uint64_t seed)> batch;                           // a global batch of 16
  std::function<Tensor(const Tensor& out, const Tensor& y)> loss;       // out from engine.forward
};

inline Task mlp_task() {
  return {[] { return std::static_pointer_cast<Module>(small_mlp()); },
          [](uint64_t seed) { return regression_batch(16, seed); },
          [](const Tensor& out, const Tensor& y) { return mse_loss(zt::to(out, DType::f32), y); }};
}

inline Task gpt_task(bool checkpoint_activations) {
  return {[checkpoint_activations] { return std::static_pointer_cast<Module>(tiny_gpt(checkpoint_activations)); },
          token_batch, [](const Tensor& out, const Tensor& y) { return cross_entropy(zt::to(out, DType::f32), y); }};
}

// `steps` optimizer steps of `task` on e with batch seeds first_seed, first_seed + 1, ...; returns
// each step's loss averaged over the global batch.
inline std::vector<double> steps_on(Engine& e, const Task& task, uint64_t first_seed, int steps,
                                    const std::shared_ptr<Communicator>& comm) {
  const int W = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
  const int64_t accum = e.gradient_accumulation_steps();
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    const Batch b = task.batch(first_seed + uint64_t(s));
    double loss_sum = 0;
    for (int64_t m = 0; m < accum; ++m) {
      Tensor x = share(b.x, m, accum, W, rank);
      if (is_floating(x.dtype())) x = raw::to(x, e.dtype());
      Tensor loss = task.loss(e.forward(x), share(b.y, m, accum, W, rank));
      loss_sum += loss.item();
      e.backward(loss);
      e.step();
    }
    Tensor mean = full({1}, loss_sum / double(accum), DType::f64);
    if (W > 1) comm->all_reduce(mean, CommReduceOp::avg);
    losses.push_back(mean.item());
  }
  return losses;
}

inline std::unique_ptr<Engine> make_engine(const Task& task, const Config& config,
                                           const std::shared_ptr<Communicator>& comm, std::FILE* log = stdout) {
  InitOptions o;
  o.monitor = false;
  o.communicator = comm;
  o.log = log;
  return initialize(task.model(), config, o);
}

// `steps` steps of `task` through a fresh engine (comm null: one process), batch seeds 100, 101, ...
inline Run train_task(const Task& task, const Config& config, const std::shared_ptr<Communicator>& comm,
                      int steps = 6, std::FILE* log = stdout) {
  auto e = make_engine(task, config, comm, log);
  Run run;
  run.losses = steps_on(*e, task, 100, steps, comm);
  CHECK(e->global_step() == steps);
  run.skipped = e->skipped_steps();
  run.loss_scale = e->loss_scale();
  run.params = model_values(*e);
  return run;
}

}  // namespace zt::test
