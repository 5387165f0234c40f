// Note [ZeRO gradient scaling] (zero/sharded_optimizer.h): with separate masters and Adam/AdamW
// the unscale by the loss scale and the clipping are folded into the optimizer's pass over the
// 16-bit gradient shard. A folded run is compared here with the same run forced onto the fp32
// master-gradient path (an AdamW that declines scaled gradients), through the engine at stages
// 0-3: bf16 with clipping and fp16 with a dynamic loss scale and clipping give the same losses,
// weights and fp32 masters bit for bit, and the folded step allocates no fp32 master gradient (the
// step's peak of gradient memory is 4 bytes per shard element lower). A static loss scale that is
// no power of two takes the fp32 path. Under offload_optimizer (cpu, nvme) the CPU Adam folds the
// same factors: the host gradient is the 16-bit shard copied as it is, and the runs match the
// unfolded ones without offload bit for bit.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/ops.h"
#include "optim/adam.h"
#include "runtime/engine.h"
#include "runtime/engine_test_util.h"
#include "tests/temp_dir.h"
#include "zero/sharded_optimizer.h"

using namespace zt;

namespace {

// AdamW on the fp32 master-gradient path: what every optimizer took before the folding.
class UnfoldedAdamW : public AdamW {
 public:
  using AdamW::AdamW;
  bool supports_scaled_gradients() const override { return false; }
};

constexpr int kSteps = 6;

struct Run {
  std::vector<double> losses;
  std::vector<std::vector<double>> weights;  // the compute-dtype parameters, widened exactly
  std::vector<double> masters;
  double loss_scale = 0;
  int64_t skipped = 0;
  int64_t shard = 0;             // S
  int64_t step_grad_peak = 0;    // the most bytes of gradients a step allocated after the reduction
  bool folded_after = false;     // folds_gradient_scaling() after one more unscale
  bool master_grad_after = false;
};

std::vector<double> values(const Tensor& t) { return raw::to(raw::contiguous(t), DType::f64).to_vector<double>(); }

// kSteps steps of small_mlp (two AdamW groups: weight decay on the matrices) on batches of 8.
// zero_extra: more zero_optimization keys ("key": value, ...).
Run train(int stage, const std::string& precision, bool fold, const std::string& zero_extra = "") {
  auto model = zt::test::small_mlp();
  AdamWOptions adam;
  adam.lr = 0.02;
  const std::vector<ParamGroup> groups = make_param_groups(*model, 0.01);
  InitOptions o;
  o.monitor = false;
  o.optimizer = fold ? std::make_shared<AdamW>(groups, adam) : std::make_shared<UnfoldedAdamW>(groups, adam);
  const Config config = zt::test::json_config(R"({"train_batch_size": 8, "gradient_clipping": 0.05, )" + precision +
                                              R"("zero_optimization": {)" + zero_extra + R"("stage": )" +
                                              std::to_string(stage) + "}}");
  auto e = initialize(model, config, o);
  auto& zero = dynamic_cast<ShardedOptimizer&>(e->precision());
  Allocator& alloc = allocator_for(Device::cpu());
  Run run;
  auto backward = [&](int s) {
    const zt::test::Batch b = zt::test::regression_batch(8, 100 + uint64_t(s));
    Tensor loss = mse_loss(zt::to(e->forward(raw::to(b.x, e->dtype())), DType::f32), b.y);
    run.losses.push_back(loss.item());
    e->backward(loss);
  };
  for (int s = 0; s < kSteps; ++s) {
    backward(s);
    // The step would finish it first (and drop the parameters' gradients): measured from there.
    zero.finish_gradient_reduction();
    const int64_t before = alloc.stats().of(MemoryCategory::gradients).in_use;
    alloc.reset_peak();
    e->step();
    run.step_grad_peak = std::max(run.step_grad_peak, alloc.stats().of(MemoryCategory::gradients).peak - before);
  }
  run.loss_scale = e->precision().loss_scale();
  run.skipped = e->skipped_steps();
  run.shard = zero.shard_numel();
  for (const auto& [name, p] : e->module().named_parameters()) run.weights.push_back(values(p));
  run.masters = values(zero.master_values());
  // One more backward, unscaled by hand: which path the step would take.
  backward(kSteps);
  REQUIRE(zero.unscale_gradients());
  run.folded_after = zero.folds_gradient_scaling();
  run.master_grad_after = zero.master_gradient().defined();
  zero.zero_grad();
  return run;
}

void check_same_bits(const Run& folded, const Run& unfolded) {
  CHECK(folded.losses == unfolded.losses);
  CHECK(folded.weights == unfolded.weights);
  CHECK(folded.masters == unfolded.masters);
  CHECK(folded.loss_scale == unfolded.loss_scale);
  CHECK(folded.skipped == unfolded.skipped);
}

}  // namespace

TEST_CASE("ZeRO gradient scaling folded into AdamW: bit for bit the fp32 master-gradient path, 4 S bytes less") {
  const std::string bf16 = R"("bf16": {"enabled": true}, )";
  // Dynamic: 2^12 at first, doubled after every 2 good steps, so the unscale changes mid-run.
  const std::string fp16 = R"("fp16": {"enabled": true, "initial_scale_power": 12, "loss_scale_window": 2}, )";
  for (int stage = 0; stage <= 3; ++stage)
    for (const std::string& precision : {bf16, fp16}) {
      CAPTURE(stage);
      CAPTURE(precision);
      const Run folded = train(stage, precision, true), unfolded = train(stage, precision, false);
      check_same_bits(folded, unfolded);
      // Training happened, with clipping (max norm 0.05) and, for fp16, a growing loss scale.
      CHECK(folded.losses.back() < folded.losses.front());
      CHECK(folded.skipped == 0);
      if (precision == fp16) CHECK(folded.loss_scale > 4096);
      CHECK(folded.folded_after);
      CHECK_FALSE(folded.master_grad_after);
      CHECK_FALSE(unfolded.folded_after);
      CHECK(unfolded.master_grad_after);
      // The fp32 master gradient (4 bytes per shard element) is the unfolded step's only
      // gradient allocation; the folded step makes none.
      CHECK(unfolded.step_grad_peak == 4 * folded.shard);
      CHECK(folded.step_grad_peak == 0);
    }
}

TEST_CASE("ZeRO gradient scaling: a loss scale that is no power of two takes the fp32 path, bit for bit alike") {
  // 1 / 1000 times a gradient rounds, so the shard's sum of squares could not be rescaled
  // exactly: the step unscales into the fp32 master gradient, whichever optimizer steps it.
  const std::string fp16 = R"("fp16": {"enabled": true, "loss_scale": 1000}, )";
  const Run folded = train(1, fp16, true), unfolded = train(1, fp16, false);
  check_same_bits(folded, unfolded);
  CHECK(folded.loss_scale == 1000);
  CHECK_FALSE(folded.folded_after);
  CHECK(folded.master_grad_after);
  CHECK(folded.step_grad_peak == 4 * folded.shard);
}

TEST_CASE("ZeRO-Offload folds the gradient scaling into the CPU Adam: bit for bit the run without offload") {
  zt::test::TempDir dir("zt_offload_fold");
  const std::string bf16 = R"("bf16": {"enabled": true}, )";
  const std::string fp16 = R"("fp16": {"enabled": true, "initial_scale_power": 12, "loss_scale_window": 2}, )";
  const std::string fp16_static = R"("fp16": {"enabled": true, "loss_scale": 1000}, )";
  for (const std::string device : {"cpu", "nvme"})
    for (int stage = 1; stage <= 3; ++stage)
      for (const std::string& precision : {bf16, fp16, fp16_static}) {
        CAPTURE(device);
        CAPTURE(stage);
        CAPTURE(precision);
        // Sub-groups (and the offload pipeline's chunks) of 16 of the 67 elements: the two
        // groups' ranges are cut across chunks.
        const std::string offload = R"("sub_group_size": 16, "offload_optimizer": {"device": ")" + device +
                                    R"(", "nvme_path": ")" + dir.path + R"("}, )";
        const Run offloaded = train(stage, precision, true, offload), reference = train(stage, precision, false);
        check_same_bits(offloaded, reference);
        CHECK(offloaded.losses.back() < offloaded.losses.front());
        if (precision == fp16_static) {
          // No power of two: the step unscales into an fp32 host gradient of its own (4 S bytes).
          CHECK_FALSE(offloaded.folded_after);
          CHECK(offloaded.step_grad_peak == 4 * offloaded.shard);
        } else {
          // The host gradient buffer, in the compute dtype, was allocated at initialize; the step
          // allocates no gradient memory (on the CPU backend it steps the shard where it is).
          CHECK(offloaded.folded_after);
          CHECK_FALSE(offloaded.master_grad_after);
          CHECK(offloaded.step_grad_peak == 0);
        }
      }
}
