// ZeRO stages 1 and 2 through the Engine on W ranks (a world of one when run alone, mpirun -np 2
// and -np 4 under CTest): the same global batch of 16 gives the same losses and final parameters
// as stage 0 in one process, with gradient accumulation 1 and 2 and gradient clipping on; bf16
// agrees with stage 0 on the same ranks; per-rank optimizer state and gradient memory shrink as
// Note [ZeRO flat layout] says. With two optimizer parameter groups (nanoGPT's: weight decay on
// matrices only, and another lr for the rest, under a schedule) stages 1, 2 and 3 match stage 0
// with the same groups, and their checkpoints resume exactly and reshard to one process.
//
// Tolerances. f32: relative 1e-5 (losses relative to the loss, parameters as max |difference|
// over max |parameter| per tensor). The arithmetic is the same except for order: each rank
// averages B/(W*accum) samples and the ranks' means are averaged, and the clipping norm is a sum
// of per-shard sums; each reordering costs about one f32 rounding (6e-8 relative), which Adam's
// normalised lr-sized steps keep far below 1e-5 over 6 steps, while a missing average, a wrong
// shard or a stale all_gather is off by 1e-3 or more. bf16: relative 2e-2 against stage 0 on the
// same ranks. Both reduce bf16 gradients in f32 and round once, but stage 0 steps every master
// from the whole rounded gradient while ZeRO steps shards; a flip of one bf16 rounding in a
// parameter (2^-8 relative) is the largest difference expected.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops.h"
#include "mpi_world.h"
#include "shared_temp_dir.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "optim/adam.h"
#include "runtime/engine.h"
#include "runtime/engine_test_util.h"
#include "zero/zero3_test_util.h"
#include "zero/zero_optimizer.h"

using namespace zt;
using zt::test::world;

namespace {

constexpr int64_t kGlobalBatch = 16;
constexpr int kSteps = 6;

using zt::test::check_same;  // losses relative, weights per tensor (zero/zero3_test_util.h)
using zt::test::Run;
using zt::test::values;

Config zero_config(int stage, int64_t accum, const std::string& precision, int world_size) {
  // reduce_bucket_size 20 elements: several buckets for the 67 parameters of small_mlp.
  return zt::test::json_config(
      R"({"train_batch_size": 16, "gradient_accumulation_steps": )" + std::to_string(accum) +
          R"(, "gradient_clipping": 0.3, )" + precision + R"("zero_optimization": {"stage": )" +
          std::to_string(stage) + R"(, "reduce_bucket_size": 20},
          "optimizer": {"type": "AdamW", "params": {"lr": 0.02, "weight_decay": 0.01}}})",
      world_size);
}

// kSteps steps of small_mlp on batches of 16; comm null: one process.
Run train(int stage, int64_t accum, const std::string& precision, std::shared_ptr<Communicator> comm) {
  const int W = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
  InitOptions o;
  o.monitor = false;
  o.communicator = comm;
  auto e = initialize(zt::test::small_mlp(), zero_config(stage, accum, precision, W), o);
  const int64_t micro = kGlobalBatch / (W * accum);
  Run run;
  for (int s = 0; s < kSteps; ++s) {
    const zt::test::Batch b = zt::test::regression_batch(kGlobalBatch, 100 + uint64_t(s));
    double loss_sum = 0;
    for (int64_t m = 0; m < accum; ++m) {
      const int64_t start = (m * W + rank) * micro;
      Tensor out = e->forward(raw::to(zt::test::rows(b.x, start, micro), e->dtype()));
      Tensor loss = mse_loss(zt::to(out, DType::f32), zt::test::rows(b.y, start, micro));
      loss_sum += loss.item();
      e->backward(loss);
      e->step();
    }
    Tensor mean = full({1}, loss_sum / double(accum), DType::f64);
    if (comm && W > 1) comm->all_reduce(mean, CommReduceOp::avg);
    run.losses.push_back(mean.item());
  }
  CHECK(e->skipped_steps() == 0);
  CHECK(e->global_step() == kSteps);
  for (const auto& [name, p] : e->module().named_parameters()) run.params.emplace_back(name, values(p));
  return run;
}

}  // namespace

TEST_CASE("ZeRO stages 1 and 2 reproduce stage 0 in one process (f32, accumulation 1 and 2, clipping)") {
  for (int64_t accum : {1, 2}) {
    const Run reference = train(0, accum, "", nullptr);
    // Training happened: the loss fell.
    CHECK(reference.losses.back() < reference.losses.front());
    for (int stage : {1, 2}) {
      CAPTURE(accum);
      CAPTURE(stage);
      check_same(train(stage, accum, "", world()), reference, 1e-5);
    }
  }
}

TEST_CASE("ZeRO stages 1 and 2 in bf16 agree with stage 0 on the same ranks") {
  const std::string bf16 = R"("bf16": {"enabled": true}, )";
  const Run stage0 = train(0, 2, bf16, world());
  CHECK(stage0.losses.back() < stage0.losses.front());
  for (int stage : {1, 2}) {
    CAPTURE(stage);
    check_same(train(stage, 2, bf16, world()), stage0, 2e-2);
  }
}

TEST_CASE("ZeRO shards the optimizer state and (stage 2) the gradients: per-rank bytes") {
  const int W = world()->size();
  for (const bool bf16 : {false, true}) {
    for (int stage : {1, 2}) {
      CAPTURE(bf16);
      CAPTURE(stage);
      // Two Linear(1024, 1024): 2,099,200 parameters.
      manual_seed(3);
      auto model = std::make_shared<Sequential>();
      model->push_back(std::make_shared<Linear>(1024, 1024));
      model->push_back(std::make_shared<Linear>(1024, 1024));
      Allocator& alloc = allocator_for(Device::cpu());
      const int64_t state_before = alloc.stats().of(MemoryCategory::optimizer_state).in_use;
      const int64_t grads_before = alloc.stats().of(MemoryCategory::gradients).in_use;
      InitOptions o;
      o.monitor = false;
      o.communicator = world();
      Config c = zt::test::json_config(
          std::string(R"({"train_batch_size": )") + std::to_string(2 * W) + ", " +
              (bf16 ? R"("bf16": {"enabled": true}, )" : "") + R"("zero_optimization": {"stage": )" +
              std::to_string(stage) + R"(}, "optimizer": {"type": "Adam", "params": {"lr": 0.001}}})",
          W);
      auto e = initialize(model, c, o);
      auto& zero = dynamic_cast<ZeroOptimizer&>(e->precision());
      const int64_t np = zero.padded_numel(), s = zero.shard_numel();
      CHECK(zero.numel() == 2 * (1024 * 1024 + 1024));
      CHECK(s * W == np);
      CHECK(np - zero.numel() < 4 * W * kZeroAlign);  // padding: alignment only
      Tensor x = randn({2, 1024});
      if (bf16) x = raw::to(x, DType::bf16);
      Tensor loss = mean(square(zt::to(e->forward(x), DType::f32)));
      e->backward(loss);
      zero.finish_gradient_reduction();
      // After the reduction: the flat gradient buffer (stage 1) or only the shard (stage 2); the
      // f32 master-gradient shard of a bf16 model exists during the step only. The parameters'
      // own gradients are gone.
      const int64_t elem = bf16 ? 2 : 4;
      const int64_t grads = alloc.stats().of(MemoryCategory::gradients).in_use - grads_before;
      const int64_t want_grads = stage == 1 ? np * elem : s * elem;
      CHECK(std::abs(double(grads - want_grads)) <= 0.05 * double(want_grads));
      e->step();
      CHECK(e->was_step_applied());
      // The step's fp32 master gradient is gone again.
      CHECK(alloc.stats().of(MemoryCategory::gradients).in_use - grads_before == want_grads);
      // Adam: m and v for the shard, plus the fp32 master shard of a bf16 model (12 bytes per
      // parameter over W; 8 for f32, whose master is the parameter shard itself).
      const int64_t state = alloc.stats().of(MemoryCategory::optimizer_state).in_use - state_before;
      const double want_state = double((bf16 ? 12 : 8) * np) / W;
      CHECK(std::abs(double(state) - want_state) <= 0.05 * want_state);
      // The full model is back on every rank after the all_gather: rank 0's shard equals the
      // parameter slice that every rank holds.
      const Tensor w0 = e->module().named_parameters().front().second;
      Tensor first = raw::to(raw::reshape(raw::narrow(raw::reshape(w0, {w0.numel()}), 0, 0, 8), {8}), DType::f64);
      Tensor mine = raw::clone(first);
      world()->broadcast(first, 0);
      CHECK(values(first) == values(mine));
    }
  }
}

// Adam and clipping hide a gradient off by a constant factor (both normalise), so the reduced
// gradient itself is checked: after accumulating 2 micro-batches per rank, the rank's gradient
// shard gathered from all ranks is the one-process gradient of the mean loss over the global
// batch, laid out as Note [ZeRO flat layout] says (offsets rounded up to kZeroAlign, zero padding).
TEST_CASE("ZeRO gradient shards hold the global-batch mean gradient") {
  const int W = world()->size(), rank = world()->rank();
  const zt::test::Batch b = zt::test::regression_batch(kGlobalBatch, 5);
  auto reference = zt::test::small_mlp();
  zt::backward(mse_loss((*reference)(b.x), b.y));
  for (int stage : {1, 2}) {
    CAPTURE(stage);
    InitOptions o;
    o.monitor = false;
    o.communicator = world();
    auto e = initialize(zt::test::small_mlp(), zero_config(stage, 2, "", W), o);
    auto& zero = dynamic_cast<ZeroOptimizer&>(e->precision());
    const int64_t micro = kGlobalBatch / (W * 2);
    for (int64_t m = 0; m < 2; ++m) {
      const int64_t start = (m * W + rank) * micro;
      e->backward(mse_loss(e->forward(zt::test::rows(b.x, start, micro)), zt::test::rows(b.y, start, micro)));
      if (m == 0) e->step();  // off the boundary: only counts the micro-step
    }
    zero.finish_gradient_reduction();
    const Tensor shard = zero.gradient_shard();
    REQUIRE(shard.defined());
    const std::vector<double> flat = values(world()->all_gather(raw::contiguous(shard)));
    REQUIRE(int64_t(flat.size()) == zero.padded_numel());
    std::vector<double> want(flat.size(), 0.0);
    int64_t offset = 0;
    for (const Tensor& p : reference->parameters()) {
      const std::vector<double> g = values(grad(p));
      std::copy(g.begin(), g.end(), want.begin() + offset);
      offset = (offset + int64_t(g.size()) + kZeroAlign - 1) / kZeroAlign * kZeroAlign;
    }
    for (size_t k = 0; k < flat.size(); ++k) {
      CAPTURE(k);
      CHECK(flat[k] == doctest::Approx(want[k]).epsilon(1e-5).scale(1e-2));
    }
  }
}

namespace {

// `steps` steps of batch seeds first_seed, first_seed + 1, ... with accumulation 1.
void steps_on(Engine& e, int steps, uint64_t first_seed) {
  const int W = world()->size(), rank = world()->rank();
  const int64_t micro = kGlobalBatch / W;
  for (int s = 0; s < steps; ++s) {
    const zt::test::Batch b = zt::test::regression_batch(kGlobalBatch, first_seed + uint64_t(s));
    Tensor out = e.forward(raw::to(zt::test::rows(b.x, rank * micro, micro), e.dtype()));
    e.backward(mse_loss(zt::to(out, DType::f32), zt::test::rows(b.y, rank * micro, micro)));
    e.step();
  }
}

}  // namespace

// Resuming from a checkpoint written at step 3 gives exactly the parameters of 6 uninterrupted
// steps: masters and Adam moments come back shard by shard (at the same data-parallel size).
TEST_CASE("ZeRO checkpoints: save at step 3, resume in a fresh engine, match 6 straight steps") {
  const int W = world()->size();
  for (const std::string& precision : {std::string(), std::string(R"("bf16": {"enabled": true}, )")}) {
    for (int stage : {1, 2}) {
      CAPTURE(precision);
      CAPTURE(stage);
      InitOptions o;
      o.monitor = false;
      o.communicator = world();
      const Config c = zero_config(stage, 1, precision, W);
      auto straight = initialize(zt::test::small_mlp(), c, o);
      steps_on(*straight, 3, 40);
      const std::string dir = zt::test::shared_temp_dir(*world(), "zt_zero_ckpt");
      straight->save_checkpoint(dir, "step3");
      steps_on(*straight, 3, 43);

      auto resumed = initialize(zt::test::small_mlp(99), c, o);  // other initial weights
      resumed->load_checkpoint(dir);
      CHECK(resumed->global_step() == 3);
      steps_on(*resumed, 3, 43);
      const auto want = straight->module().named_parameters();
      const auto got = resumed->module().named_parameters();
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        CAPTURE(got[i].first);
        CHECK(values(got[i].second) == values(want[i].second));
      }
      world()->barrier();  // every rank has read it
      if (world()->rank() == 0) std::filesystem::remove_all(dir);
    }
  }
}

// fp16 with a dynamic loss scale that starts far too high (2^24, hysteresis 1): the first steps
// overflow in the f16 gradients on some rank and must be skipped on every rank alike while the
// scale halves; ZeRO skips the same steps, ends at the same scale and the same parameters as
// stage 0 on the same ranks (f16 tolerance: relative 2e-2, as bf16 above).
TEST_CASE("ZeRO fp16: overflow skips and the dynamic loss scale match stage 0") {
  const std::string fp16 = R"("fp16": {"enabled": true, "initial_scale_power": 24, "hysteresis": 1}, )";
  const int W = world()->size();
  std::FILE* quiet = std::fopen("/dev/null", "w");  // the skipped-step lines
  REQUIRE(quiet != nullptr);
  auto run = [&](int stage, int64_t& skipped, double& scale) {
    InitOptions o;
    o.monitor = false;
    o.communicator = world();
    o.log = quiet;
    auto e = initialize(zt::test::small_mlp(), zero_config(stage, 1, fp16, W), o);
    steps_on(*e, 10, 70);
    skipped = e->skipped_steps();
    scale = e->loss_scale();
    Run r;
    for (const auto& [name, p] : e->module().named_parameters()) r.params.emplace_back(name, values(p));
    return r;
  };
  int64_t skipped0 = 0;
  double scale0 = 0;
  const Run stage0 = run(0, skipped0, scale0);
  CHECK(skipped0 > 0);
  CHECK(skipped0 < 10);
  for (int stage : {1, 2}) {
    CAPTURE(stage);
    int64_t skipped = 0;
    double scale = 0;
    const Run got = run(stage, skipped, scale);
    CHECK(skipped == skipped0);
    CHECK(scale == scale0);
    check_same(got, stage0, 2e-2);
  }
  std::fclose(quiet);
}

// Note [ZeRO parameter groups]: each rank's shard meets each group in one range, 0 elements on some
// ranks (at 4 ranks small_mlp's bias group lies on ranks 2 and 3 only, rank 3's all padding), which
// AdamW and SGD step as empty tensors. Tolerance as the first test case: only the order of sums
// differs from stage 0 in one process.
namespace {

// The program passes its optimizer (the task's) under a WarmupCosineLR schedule.
Config grouped_config(int stage, int64_t accum, int world_size) {
  return zt::test::zero_test_config(stage, accum, world_size, "", "", zt::test::kProgramOptimizerSchedule);
}

}  // namespace

TEST_CASE("ZeRO stages 1-3 with two parameter groups (weight decay, lr) reproduce stage 0 with the same groups") {
  const int W = world()->size();
  zt::test::Task task = zt::test::grouped(zt::test::mlp_task());
  for (int64_t accum : {1, 2}) {
    CAPTURE(accum);
    const zt::test::Run reference = zt::test::train_task(task, grouped_config(0, accum, 1), nullptr);
    CHECK(reference.losses.back() < reference.losses.front());
    // The groups matter: one group with group 0's settings ends far from the reference.
    zt::test::Task one_group = zt::test::mlp_task();
    one_group.optimizer = [](Module& m) {
      AdamWOptions o;
      o.lr = 0.02;
      o.weight_decay = 0.1;
      return std::make_shared<AdamW>(m.parameters(), o);
    };
    const zt::test::Run single = zt::test::train_task(one_group, grouped_config(0, accum, 1), nullptr);
    CHECK(zt::test::max_relative_difference(single.params, reference.params) > 1e-2);
    for (int stage : {1, 2, 3}) {
      CAPTURE(stage);
      zt::test::check_same(zt::test::train_task(task, grouped_config(stage, accum, W), world()), reference, 1e-5);
    }
  }
  // SGD with momentum: its buffers are per group tensors too, empty on the ranks a group misses.
  task.optimizer = zt::test::grouped_sgd;
  const zt::test::Run reference = zt::test::train_task(task, grouped_config(0, 2, 1), nullptr);
  CHECK(reference.losses.back() < reference.losses.front());
  for (int stage : {1, 2, 3}) {
    CAPTURE(stage);
    zt::test::check_same(zt::test::train_task(task, grouped_config(stage, 2, W), world()), reference, 1e-5);
  }
}

// Resuming a grouped run from step 3 gives exactly the weights of 6 straight steps at the same size;
// the checkpoint (per-parameter fragments of each group's state) also loads into a world of one at
// another stage, which continues like the W-rank run.
TEST_CASE("ZeRO checkpoints with two parameter groups resume exactly and reshard to one process") {
  const int W = world()->size();
  const zt::test::Task task = zt::test::grouped(zt::test::mlp_task());
  for (int stage : {1, 2, 3}) {
    CAPTURE(stage);
    auto straight = zt::test::make_engine(task, grouped_config(stage, 1, W), world());
    zt::test::steps_on(*straight, task, 40, 3, world());
    const auto at_step3 = zt::test::model_values(*straight);
    const std::string dir = zt::test::shared_temp_dir(*world(), "zt_zero_ckpt");
    straight->save_checkpoint(dir, "step3");
    zt::test::Run want;
    want.losses = zt::test::steps_on(*straight, task, 43, 3, world());
    want.params = zt::test::model_values(*straight);

    manual_seed(99);
    auto resumed = zt::test::make_engine(task, grouped_config(stage, 1, W), world());
    resumed->load_checkpoint(dir);
    CHECK(resumed->global_step() == 3);
    CHECK(resumed->optimizer().lr(1) / resumed->optimizer().lr(0) == doctest::Approx(0.05 / 0.02));
    CHECK(zt::test::steps_on(*resumed, task, 43, 3, world()) == want.losses);
    CHECK(zt::test::model_values(*resumed) == want.params);

    const int load_stage = stage % 3 + 1;  // another stage
    CAPTURE(load_stage);
    auto alone = zt::test::make_engine(task, grouped_config(load_stage, 1, 1), nullptr);
    alone->load_checkpoint(dir);
    CHECK(zt::test::model_values(*alone) == at_step3);
    zt::test::Run got;
    got.losses = zt::test::steps_on(*alone, task, 43, 3, nullptr);
    got.params = zt::test::model_values(*alone);
    zt::test::check_same(got, want, 1e-5);
    world()->barrier();
    if (world()->rank() == 0) std::filesystem::remove_all(dir);
  }
}
