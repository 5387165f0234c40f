// ZeRO-Offload through the Engine on W ranks (a world of one when run alone, mpirun -np 2 and
// -np 4 under CTest): offload_optimizer on cpu and on nvme (several sub-groups, two swap buffers)
// gives the losses and final weights of the same run without offload at stages 1, 2 and 3, in f32
// and bf16, with two parameter groups under a schedule, gradient accumulation 2 and clipping;
// stage 3 also with offload_param; Adam with L2 decay from the config; fp16 overflow skips;
// checkpoints written with offload resume exactly with and without offload, and the other way
// round; ZeRO-2 holds only its gradient shard between micro-steps (on the host under offload).
//
// Tolerance: bitwise (Note [ZeRO-Offload] in zero/sharded_optimizer.h). On the CPU backend both
// runs reduce the same gradients, unscale and clip them with the same ops in the same order (the
// offloaded copy into the host buffer is exact: f32 to f32, or bf16 widened to f32), and step
// with the same kernel (raw::adam_step_, whose result per element does not depend on where a
// sub-group starts), whose bf16 model copy rounds as raw::copy_ does. Any difference is a bug: a
// wrong group's hyperparameters, a stale sub-group, a missed write-back.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "mpi_world.h"
#include "shared_temp_dir.h"
#include "core/allocator.h"
#include "tests/temp_dir.h"
#include "zero/zero3_test_util.h"
#include "zero/zero_optimizer.h"

using namespace zt;
using zt::test::world;

namespace {

const std::string kBf16 = R"("bf16": {"enabled": true}, )";

// zero_optimization keys for offload_optimizer on `device` ("" none): sub-groups of 8 elements,
// so a shard of the small MLP (96 elements in one process) is stepped in 12; nvme with two swap
// buffers (reads overlap the step) under a folder of this rank's own.
std::string offload_keys(const std::string& device, const std::string& nvme_path) {
  if (device.empty()) return "";
  std::string keys = R"("sub_group_size": 8, "offload_optimizer": {"device": ")" + device + R"(", "pin_memory": true)";
  if (device == "nvme") keys += R"(, "nvme_path": ")" + nvme_path + R"(", "buffer_count": 2)";
  return keys + "}, ";
}

}  // namespace

TEST_CASE("ZeRO-Offload cpu and nvme reproduce no offload bitwise: stages 1-3, f32 and bf16, two groups") {
  const int W = world()->size();
  zt::test::TempDir nvme("zt_offload_nvme");
  const zt::test::Task task = zt::test::grouped(zt::test::mlp_task());
  for (const std::string& precision : {std::string(), kBf16}) {
    for (int stage : {1, 2, 3}) {
      CAPTURE(precision);
      CAPTURE(stage);
      auto config = [&](const std::string& device) {
        return zt::test::zero_test_config(stage, 2, W, precision, offload_keys(device, nvme.path),
                                          zt::test::kProgramOptimizerSchedule);
      };
      const zt::test::Run plain = zt::test::train_task(task, config(""), world());
      CHECK(plain.losses.back() < plain.losses.front());
      for (const std::string device : {"cpu", "nvme"}) {
        CAPTURE(device);
        zt::test::check_same(zt::test::train_task(task, config(device), world()), plain, 0.0);
      }
    }
  }
}

// ZeRO-2 reduces every micro-step on W ranks too (Note [ZeRO gradient reduction]): after a
// micro-step's backward no parameter holds a gradient and the gradients in use are the S-element
// shard, on the device or (offload, Note [ZeRO-Offload gradient streaming]) on the host. Buckets
// of 20 elements: many reduce_scatters per micro-step, and under offload four staging slots for
// many buckets, so receive() waits for the host thread's additions.
TEST_CASE("ZeRO-2 on W ranks: no full gradient between micro-steps, the shard alone, with and without offload") {
  const int W = world()->size();
  Allocator& cpu = allocator_for(Device::cpu());
  auto grads_in_use = [&] { return cpu.stats().of(MemoryCategory::gradients).in_use; };
  const zt::test::Task task = zt::test::mlp_task();
  for (const std::string device : {"", "cpu"}) {
    CAPTURE(device);
    const int64_t grads0 = grads_in_use();
    auto e = zt::test::make_engine(task, zt::test::zero_test_config(2, 2, W, "", offload_keys(device, "")), world());
    auto& zero = dynamic_cast<ZeroOptimizer&>(e->precision());
    CHECK(zero.streams_gradients() == !device.empty());
    const int64_t S = zero.shard_numel();
    const auto b = task.batch(7);
    for (int64_t m = 0; m < 2; ++m) {
      e->backward(task.loss(e->forward(zt::test::share(b.x, m, 2, W, world()->rank())),
                            zt::test::share(b.y, m, 2, W, world()->rank())));
      for (const Tensor& p : e->module().parameters()) CHECK_FALSE(grad(p).defined());
      CHECK(grads_in_use() - grads0 == 4 * S);
      e->step();
    }
    CHECK(e->was_step_applied());
  }
}

// offload_param keeps the stage-3 parameter shard in host memory (cpu) or in a file (nvme: chunks
// of 7 elements through two buffers, so slices straddle chunks); gathers copy slices from it. The
// GPT has a tied head and activation checkpointing (a recomputed forward gathers inside backward).
// f32 and bf16 take the step's three paths: the master is the shard (f32 on the CPU), a separate
// master copied into the weights (bf16), the offloaded store writing them.
TEST_CASE("ZeRO-Offload stage 3 with offload_param cpu and nvme: MLP and GPT reproduce no offload bitwise") {
  const int W = world()->size();
  zt::test::TempDir nvme("zt_offload_nvme");
  for (const std::string param_device : {"cpu", "nvme"}) {
    const std::string param =
        param_device == "cpu"
            ? R"("offload_param": {"device": "cpu", "pin_memory": true}, )"
            : R"("offload_param": {"device": "nvme", "nvme_path": ")" + nvme.path + R"(", "buffer_count": 2, "buffer_size": 7}, )";
    for (const std::string& precision : {std::string(), kBf16})
      for (const bool gpt : {false, true}) {
        CAPTURE(param_device);
        CAPTURE(precision);
        CAPTURE(gpt);
        const zt::test::Task task = gpt ? zt::test::gpt_task(true) : zt::test::mlp_task();
        const zt::test::Run plain =
            zt::test::train_task(task, zt::test::zero_test_config(3, 2, W, precision, ""), world());
        for (const std::string device : {"", "cpu", "nvme"}) {
          CAPTURE(device);
          const Config c = zt::test::zero_test_config(3, 2, W, precision, param + offload_keys(device, nvme.path));
          zt::test::check_same(zt::test::train_task(task, c, world()), plain, 0.0);
        }
      }
  }
  CHECK(std::filesystem::is_empty(nvme.path));  // every swap folder was removed with its engine
}

// DeepSpeed's "Adam" with adam_w_mode false folds the decay into the gradient (L2): the store
// steps it as Adam, not AdamW.
TEST_CASE("ZeRO-Offload steps Adam with L2 weight decay as Adam") {
  const int W = world()->size();
  const std::string adam =
      R"("optimizer": {"type": "Adam", "params": {"lr": 0.02, "weight_decay": 0.05, "adam_w_mode": false}})";
  const zt::test::Task task = zt::test::mlp_task();
  for (int stage : {1, 3}) {
    CAPTURE(stage);
    auto config = [&](const std::string& device) {
      return zt::test::zero_test_config(stage, 1, W, "", offload_keys(device, ""), adam);
    };
    const zt::test::Run plain = zt::test::train_task(task, config(""), world());
    zt::test::check_same(zt::test::train_task(task, config("cpu"), world()), plain, 0.0);
  }
}

// fp16 with a loss scale far too high at first: the host copy of the gradients is where the
// overflow is found, and every rank must skip the same steps as without offload. No clipping
// here: clipping a gradient scaled by a power of two gives exactly the clipped unscaled one, which
// would hide a missing unscale.
TEST_CASE("ZeRO-Offload fp16: overflow skips and the dynamic loss scale match no offload, bitwise") {
  const int W = world()->size();
  std::FILE* quiet = std::fopen("/dev/null", "w");  // the skipped-step lines
  REQUIRE(quiet != nullptr);
  const zt::test::Task task = zt::test::mlp_task();
  auto config = [&](int stage, const std::string& offload) {
    return zt::test::json_config(R"({"train_batch_size": 16, "fp16": {"enabled": true, "initial_scale_power": 24,
        "hysteresis": 1}, "zero_optimization": {)" + offload + R"("stage": )" + std::to_string(stage) + R"(},
        "optimizer": {"type": "AdamW", "params": {"lr": 0.02}}})", W);
  };
  for (int stage : {2, 3}) {
    CAPTURE(stage);
    const zt::test::Run plain = zt::test::train_task(task, config(stage, ""), world(), 10, quiet);
    const zt::test::Run offloaded =
        zt::test::train_task(task, config(stage, offload_keys("cpu", "")), world(), 10, quiet);
    CHECK(plain.skipped > 0);
    CHECK(offloaded.skipped == plain.skipped);
    CHECK(offloaded.loss_scale == plain.loss_scale);
    zt::test::check_same(offloaded, plain, 0.0);
  }
  std::fclose(quiet);
}

// A checkpoint written with offload (per-parameter fragments read from the store) resumes exactly
// with offload and without it; one written without offload resumes exactly with it.
TEST_CASE("ZeRO-Offload checkpoints resume exactly with and without offload, and the other way round") {
  const int W = world()->size();
  zt::test::TempDir nvme("zt_offload_nvme");
  const zt::test::Task task = zt::test::grouped(zt::test::mlp_task());
  for (int stage : {1, 2, 3}) {
    CAPTURE(stage);
    const std::string device = stage == 2 ? "cpu" : "nvme";
    auto config = [&](const std::string& d) {
      return zt::test::zero_test_config(stage, 1, W, kBf16, offload_keys(d, nvme.path),
                                        zt::test::kProgramOptimizerSchedule);
    };
    for (const bool save_offloaded : {true, false}) {
      CAPTURE(save_offloaded);
      auto straight = zt::test::make_engine(task, config(save_offloaded ? device : ""), world());
      zt::test::steps_on(*straight, task, 40, 3, world());
      const auto at_step3 = zt::test::model_values(*straight);
      const std::string dir = zt::test::shared_temp_dir(*world(), "zt_offload_ckpt");
      straight->save_checkpoint(dir, "step3");
      const std::vector<double> losses = zt::test::steps_on(*straight, task, 43, 3, world());
      const auto want = zt::test::model_values(*straight);
      for (const std::string& load : {device, std::string()}) {
        CAPTURE(load);
        manual_seed(99);  // other initial weights
        auto resumed = zt::test::make_engine(task, config(load), world());
        resumed->load_checkpoint(dir);
        CHECK(resumed->global_step() == 3);
        CHECK(resumed->optimizer().step_count() == 3);
        CHECK(zt::test::model_values(*resumed) == at_step3);
        CHECK(zt::test::steps_on(*resumed, task, 43, 3, world()) == losses);
        CHECK(zt::test::model_values(*resumed) == want);
      }
      zt::test::remove_shared_temp_dir(*world(), dir);
    }
  }
}
