// Engine with fp16 and bf16 on the CPU: the model converted, fp32 masters, the dynamic loss scale
// following DeepSpeed's rules through injected non-finite gradients (scales, skipped steps and
// schedule steps), and training that matches f32 within a stated tolerance.
#include <doctest/doctest.h>

#include <algorithm>
#include <limits>

#include "autograd/ops.h"
#include "runtime/engine.h"
#include "runtime/engine_test_util.h"
#include "zero/zero_optimizer.h"

using namespace zt;
using zt::test::classification_batch;
using zt::test::json_config;
using zt::test::small_mlp;

namespace {

Tensor loss_of(Engine& e, const Tensor& x, const Tensor& y) {
  return cross_entropy(e.forward(raw::to(x, e.dtype())), y);
}

// Final loss after `steps` full-batch Adam steps with the given precision section.
std::pair<double, double> train(const std::string& precision, int steps) {
  const auto data = classification_batch(64);
  InitOptions quiet;
  quiet.monitor = false;
  auto e = initialize(small_mlp(), json_config(R"({"train_batch_size": 64, )" + precision +
                                               R"("optimizer": {"type": "Adam", "params": {"lr": 0.02}}})"),
                      quiet);
  double first = 0, last = 0;
  for (int s = 0; s < steps; ++s) {
    Tensor loss = loss_of(*e, data.x, data.y);
    if (s == 0) first = loss.item();
    last = loss.item();
    e->backward(loss);
    e->step();
  }
  CHECK(e->skipped_steps() == 0);
  return {first, last};
}

}  // namespace

TEST_CASE("engine precision: bf16 and fp16 models train and match f32") {
  const auto f32 = train("", 60);
  const auto bf16 = train(R"("bf16": {"enabled": true}, )", 60);
  const auto fp16 = train(R"("fp16": {"enabled": true, "initial_scale_power": 8}, )", 60);
  MESSAGE("loss 0 -> 60: f32 ", f32.first, " -> ", f32.second, ", bf16 ", bf16.first, " -> ", bf16.second,
          ", fp16 ", fp16.first, " -> ", fp16.second);
  CHECK(f32.second < 0.5 * f32.first);
  CHECK(bf16.second < 0.5 * bf16.first);
  CHECK(fp16.second < 0.5 * fp16.first);
  // bf16 keeps 8 bits of mantissa (relative rounding 2^-9 per value) and fp16 11 bits, in the
  // forward and the gradients; the fp32 masters keep the updates exact. Over 60 steps the losses
  // stay within 5% (bf16) and 1% (fp16) of f32 on this problem.
  CHECK(std::fabs(bf16.second - f32.second) < 0.05 * f32.second);
  CHECK(std::fabs(fp16.second - f32.second) < 0.01 * f32.second);
}

TEST_CASE("engine precision: the model takes the compute dtype and the masters stay f32") {
  auto model = small_mlp();
  const Tensor original = model->parameters().front();
  auto e = initialize(model, json_config(R"({"train_batch_size": 8, "bf16": {"enabled": true},
      "optimizer": {"type": "AdamW", "params": {"lr": 0.01}}})"));
  CHECK(e->dtype() == DType::bf16);
  for (const Tensor& p : model->parameters()) CHECK(p.dtype() == DType::bf16);
  // Stage 0 steps the flat ZeRO optimizer: one f32 master range per parameter group, holding the
  // f32 values the model had before its bf16 rounding.
  auto* zero = dynamic_cast<ZeroOptimizer*>(&e->precision());
  REQUIRE(zero != nullptr);
  CHECK(zero->stage() == 0);
  const auto masters = e->precision().master_parameters();
  int64_t master_numel = 0;
  for (const Tensor& m : masters) {
    CHECK(m.dtype() == DType::f32);
    master_numel += m.numel();
  }
  CHECK(master_numel == zero->padded_numel());
  const auto layout = zero->layout();
  const std::string first = model->named_parameters().front().first;
  const auto it = std::find_if(layout.begin(), layout.end(), [&](const auto& r) { return r.name == first; });
  REQUIRE(it != layout.end());
  CHECK(raw::narrow(zero->master_shard(), 0, it->offset, it->numel).to_vector<double>() ==
        raw::reshape(original, {original.numel()}).to_vector<double>());
  CHECK(e->loss_scale() == 1.0);  // bf16 needs no loss scaling
}

TEST_CASE("engine precision: fp16 dynamic loss scale through injected inf/NaN gradients") {
  // init 2^4, window 2, hysteresis 2, min 1: DeepSpeed's update_scale gives the scales below
  // (Note [Dynamic loss scale rules] in zero/loss_scaler.h); the schedule moves on good steps only.
  const auto data = classification_batch(8);
  auto e = initialize(small_mlp(), json_config(R"({"train_batch_size": 8,
      "fp16": {"enabled": true, "initial_scale_power": 4, "loss_scale_window": 2, "hysteresis": 2,
               "min_loss_scale": 1},
      "optimizer": {"type": "Adam", "params": {"lr": 0.001}},
      "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 100}}})"));
  CHECK(e->dtype() == DType::f16);
  CHECK(e->loss_scale() == 16.0);
  Tensor poisoned_inf = raw::clone(data.x), poisoned_nan = raw::clone(data.x);
  raw::fill_(raw::narrow(poisoned_inf, 0, 2, 1), std::numeric_limits<double>::infinity());
  raw::fill_(raw::narrow(poisoned_nan, 0, 5, 1), std::numeric_limits<double>::quiet_NaN());
  struct Step {
    const Tensor* x;
    double scale_after;
    int64_t skipped_after, schedule_after;
  };
  const Step steps[] = {
      {&data.x, 16, 0, 0},         // i0: stable 0
      {&data.x, 16, 0, 1},         // i1: stable 1
      {&data.x, 32, 0, 2},         // i2: stable 2 = window: doubles
      {&poisoned_inf, 32, 1, 2},   // i3: overflow, hysteresis 2 -> 1
      {&poisoned_nan, 16, 2, 2},   // i4: overflow at hysteresis 1: halves
      {&data.x, 16, 2, 3},         // i5: stable 0
      {&data.x, 16, 2, 4},         // i6: stable 1
      {&data.x, 32, 2, 5},         // i7: stable 2: doubles
  };
  int i = 0;
  for (const Step& s : steps) {
    CAPTURE(i++);
    e->backward(loss_of(*e, *s.x, data.y));
    e->step();
    CHECK(e->loss_scale() == s.scale_after);
    CHECK(e->skipped_steps() == s.skipped_after);
    CHECK(e->scheduler()->last_step() == s.schedule_after);
    CHECK(e->was_step_applied() == (s.x == &data.x));
  }
  CHECK(e->global_step() == 8);
}
