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
#include "optim/adam.h"
#include "optim/sgd.h"
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
  const TensorDict state = e.module_state_dict();
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

// The optimizer section of most test configs.
inline const std::string kConfigAdamW =
    R"("optimizer": {"type": "AdamW", "params": {"lr": 0.02, "weight_decay": 0.01}})";
// For runs whose program passes its optimizer (Task::optimizer): no optimizer section, and a
// WarmupCosineLR schedule, which scales each group's own lr.
inline const std::string kProgramOptimizerSchedule =
    R"("scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 8, "warmup_num_steps": 2}})";

// A config of `stage` for a global batch of 16 with clipping; stage 3 keeps units of at most
// `persistence` elements gathered (0: none) and prefetches up to 64 elements. `extra` (top level
// keys, each followed by a comma) goes in first, `zero_extra` (keys of zero_optimization, each
// followed by a comma) too; `optimizer` is the optimizer (and scheduler) section.
inline Config zero_test_config(int stage, int64_t accum, int64_t world_size, const std::string& extra,
                               const std::string& zero_extra, const std::string& optimizer = kConfigAdamW,
                               int64_t persistence = 0) {
  return json_config(R"({)" + extra + R"("train_batch_size": 16, "gradient_accumulation_steps": )" +
                         std::to_string(accum) + R"(, "gradient_clipping": 0.3,
      "zero_optimization": {)" + zero_extra + R"("stage": )" + std::to_string(stage) + R"(, "reduce_bucket_size": 20,
        "stage3_param_persistence_threshold": )" + std::to_string(persistence) + R"(,
        "stage3_prefetch_bucket_size": 64}, )" + optimizer + "}",
                     world_size);
}

// zero_test_config with the config's AdamW and no zero_optimization extras.
inline Config zero3_test_config(int stage, int64_t accum, int64_t world_size, const std::string& extra = "",
                                int64_t persistence = 0) {
  return zero_test_config(stage, accum, world_size, extra, "", kConfigAdamW, persistence);
}

// nanoGPT's two groups (make_param_groups): weight matrices decay 0.1 at lr 0.02; biases and
// other 1-D parameters do not decay and take lr 0.05.
inline std::shared_ptr<Optimizer> grouped_adamw(Module& model) {
  std::vector<ParamGroup> groups = make_param_groups(model, 0.1);
  groups[1].lr = 0.05;
  AdamWOptions options;
  options.lr = 0.02;
  return std::make_shared<AdamW>(std::move(groups), options);
}

// The same groups for SGD with momentum: its momentum buffers are per group tensors too.
inline std::shared_ptr<Optimizer> grouped_sgd(Module& model) {
  std::vector<ParamGroup> groups = make_param_groups(model, 0.1);
  groups[1].lr = 0.1;
  return std::make_shared<SGD>(std::move(groups), SGDOptions{.lr = 0.05, .momentum = 0.9});
}

// The largest max |difference| / max |weight| over the tensors of two runs' final weights.
inline double max_relative_difference(const NamedValues& a, const NamedValues& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    double diff = 0, scale = 0;
    for (size_t k = 0; k < a[i].second.size() && k < b[i].second.size(); ++k) {
      diff = std::max(diff, std::abs(a[i].second[k] - b[i].second[k]));
      scale = std::max(scale, std::abs(b[i].second[k]));
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
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
  // The program's optimizer over the fresh model; null: the config's "optimizer" section.
  std::function<std::shared_ptr<Optimizer>(Module& model)> optimizer = nullptr;
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

// The task trained by the program's grouped_adamw instead of the config's optimizer.
inline Task grouped(Task task) {
  task.optimizer = grouped_adamw;
  return task;
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
  std::shared_ptr<Module> model = task.model();
  if (task.optimizer) o.optimizer = task.optimizer(*model);
  return initialize(model, config, o);
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
