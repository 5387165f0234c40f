// ZeRO-Offload through the engine in one process (Note [ZeRO-Offload] in zero/sharded_optimizer.h):
// where the bytes go (the store's host memory under optimizer_state, the NVMe file, the host
// gradient buffer, offload_param's host parameter shard), the Optimizer object still following
// the schedule and counting steps, and the errors for bad settings. The equivalence with runs
// without offload, on 1, 2 and 4 ranks, is in tests/parallel/test_offload_mpi.cpp.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "core/allocator.h"
#include "optim/sgd.h"
#include "tests/error_of.h"
#include "tests/temp_dir.h"
#include "zero/zero3_test_util.h"
#include "zero/zero_optimizer.h"

using namespace zt;
using zt::test::error_of;

namespace {

// Two Linear(256, 256): Psi = 131,584 parameters.
std::shared_ptr<Module> two_linears() {
  manual_seed(3);
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<Linear>(256, 256));
  model->push_back(std::make_shared<Linear>(256, 256));
  return model;
}

Config offload_config(int stage, const std::string& zero_extra, const std::string& optimizer = zt::test::kConfigAdamW) {
  return zt::test::json_config(R"({"train_batch_size": 4, "zero_optimization": {)" + zero_extra +
                               R"("stage": )" + std::to_string(stage) + "}, " + optimizer + "}");
}

std::unique_ptr<Engine> engine_for(std::shared_ptr<Module> model, const Config& c,
                                   std::shared_ptr<Optimizer> optimizer = nullptr) {
  InitOptions o;
  o.monitor = false;
  o.optimizer = std::move(optimizer);
  return initialize(std::move(model), c, o);
}

void one_step(Engine& e) {
  const Tensor x = randn({4, 256});
  e.backward(mean(square(e.forward(x))));
  e.step();
  REQUIRE(e.was_step_applied());
}

}  // namespace

TEST_CASE("ZeRO-Offload memory: the state is host optimizer_state (cpu) or an NVMe file with buffers (nvme)") {
  Allocator& cpu = allocator_for(Device::cpu());
  auto in_use = [&](MemoryCategory c) { return cpu.stats().of(c).in_use; };
  zt::test::TempDir dir("zt_offload_mem");
  const int64_t sub_group = 4096;
  for (int stage : {1, 2, 3}) {
    for (const std::string device : {"cpu", "nvme"}) {
      CAPTURE(stage);
      CAPTURE(device);
      const int64_t state0 = in_use(MemoryCategory::optimizer_state), grads0 = in_use(MemoryCategory::gradients),
                    params0 = in_use(MemoryCategory::parameters);
      std::string keys = R"("sub_group_size": 4096, "offload_optimizer": {"device": ")" + device +
                         R"(", "nvme_path": ")" + dir.path + R"(", "buffer_count": 3}, )";
      if (stage == 3) keys += R"("offload_param": {"device": "cpu"}, "stage3_param_persistence_threshold": 0, )";
      auto e = engine_for(two_linears(), offload_config(stage, keys));
      auto& zero = dynamic_cast<ShardedOptimizer&>(e->precision());
      REQUIRE(zero.offloaded());
      const OffloadedAdamState& store = *zero.offloaded_state();
      const int64_t S = zero.shard_numel();
      one_step(*e);
      // The store's host bytes are all the optimizer state there is: no device master, no moments.
      CHECK(in_use(MemoryCategory::optimizer_state) - state0 == store.host_bytes());
      if (device == "cpu") {
        CHECK(std::abs(double(store.host_bytes()) / double(12 * S) - 1) < 1e-3);  // master, m, v
        CHECK(store.disk_bytes() == 0);
      } else {
        // Three swap buffers of one sub-group each ([master | m | v], 4 KiB aligned) in memory,
        // every sub-group in the file.
        const int64_t slot = zero_round_up(3 * sub_group * 4, 4096);
        CHECK(store.sub_group_count() == (S + sub_group - 1) / sub_group);
        CHECK(store.host_bytes() == 3 * (slot + 4096));
        CHECK(store.disk_bytes() == store.sub_group_count() * slot);
        CHECK(store.host_bytes() < 12 * S);
      }
      // Gradients: the host f32 shard the CPU Adam reads, plus the device's reduced shard (stage
      // 1: the whole flat buffer) at stages 1 and 3; stage 2 streams every micro-step's gradient to
      // the host and keeps none on the device (Note [ZeRO-Offload gradient streaming]).
      const int64_t grads = in_use(MemoryCategory::gradients) - grads0;
      CHECK(grads == (stage == 1 ? zero.padded_numel() : stage == 2 ? 0 : S) * 4 + 4 * S);
      // Stage 3 with offload_param keeps only the host shard of the parameters (no unit stays gathered).
      const int64_t params = in_use(MemoryCategory::parameters) - params0;
      CHECK(params == (stage == 3 ? S : zero.padded_numel()) * 4);
    }
  }
}

// Stage 2 reduces every micro-step (Note [ZeRO gradient reduction]): between micro-steps no
// parameter holds a gradient, only the S-element shard exists (on the device, or streamed to the
// host buffer under offload: Note [ZeRO-Offload gradient streaming]), and the accumulated step
// gives the same weights bit for bit with and without offload.
TEST_CASE("ZeRO-2 accumulation: every micro-step reduced, no full gradient between micro-steps, offload the same") {
  Allocator& cpu = allocator_for(Device::cpu());
  auto grads_in_use = [&] { return cpu.stats().of(MemoryCategory::gradients).in_use; };
  std::vector<zt::test::NamedValues> weights;
  for (const std::string offload : {"", R"("offload_optimizer": {"device": "cpu"}, "reduce_bucket_size": 50000, )"}) {
    CAPTURE(offload);
    const int64_t grads0 = grads_in_use();
    auto e = engine_for(two_linears(),
                        zt::test::json_config(R"({"train_batch_size": 8, "gradient_accumulation_steps": 2, )"
                                              R"("zero_optimization": {)" + offload + R"("stage": 2}, )" +
                                              zt::test::kConfigAdamW + "}"));
    auto& zero = dynamic_cast<ZeroOptimizer&>(e->precision());
    CHECK(zero.streams_gradients() == !offload.empty());
    if (!offload.empty()) {
      CHECK(zero.num_buckets() == 3);  // 131,584 elements in buckets of 50,000
      CHECK(zero.stream_staging_bytes() == 3 * 50000 * 4);  // a staging slot per bucket, f32
    } else {
      CHECK(zero.stream_staging_bytes() == 0);
    }
    const int64_t S = zero.shard_numel();
    manual_seed(5);
    for (int step = 0; step < 2; ++step) {
      for (int micro = 0; micro < 2; ++micro) {
        const Tensor x = randn({4, 256});
        e->backward(mean(square(e->forward(x))));
        for (const Tensor& p : e->module().parameters()) CHECK_FALSE(grad(p).defined());
        CHECK(grads_in_use() - grads0 == 4 * S);  // the shard alone, device or host
        e->step();
      }
      REQUIRE(e->was_step_applied());
    }
    weights.push_back(zt::test::model_values(*e));
  }
  CHECK(weights[0] == weights[1]);
}

// offload_param on nvme: between steps the host holds only the parameter file's swap buffers
// (buffer_count chunks of 1 MiB at most) instead of the shard, and the file holds the shard.
TEST_CASE("ZeRO-Offload memory: offload_param nvme keeps swap buffers on the host, the shard in a file") {
  Allocator& cpu = allocator_for(Device::cpu());
  auto params_in_use = [&] { return cpu.stats().of(MemoryCategory::parameters).in_use; };
  zt::test::TempDir dir("zt_offload_param_mem");
  const int64_t params0 = params_in_use();
  const std::string keys = R"("offload_optimizer": {"device": "cpu"}, "stage3_param_persistence_threshold": 0, )"
                           R"("offload_param": {"device": "nvme", "nvme_path": ")" + dir.path +
                           R"(", "buffer_count": 2, "buffer_size": 8192}, )";
  auto e = engine_for(two_linears(), offload_config(3, keys));
  auto& zero = dynamic_cast<ZeroStage3Optimizer&>(e->precision());
  CHECK_FALSE(zero.parameter_shard_resident());
  one_step(*e);
  one_step(*e);
  const int64_t S = zero.shard_numel();
  // Two 8192-element f32 chunks (32 KiB, 4 KiB aligned) plus one alignment's slack each.
  CHECK(params_in_use() - params0 == 2 * (8192 * 4 + 4096));
  CHECK(params_in_use() - params0 < 4 * S);
  int64_t file_bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path))
    if (entry.is_regular_file()) file_bytes += int64_t(entry.file_size());
  CHECK(file_bytes >= 4 * S);
  // The file holds the weights: the module's gathered values equal the shard read back.
  CHECK(zero.parameter_shard().numel() == S);
}

// A host that cannot hold the offloaded state: the error names the bytes, what they were for and
// what to change, and nothing is left half-built (the next engine works).
TEST_CASE("ZeRO-Offload: a host out of memory is a clear error at initialize") {
  Allocator& cpu = allocator_for(Device::cpu());
  auto model = two_linears();  // built before the limit: only the engine's allocations are capped
  const int64_t before = cpu.memory_limit();
  cpu.set_memory_limit(cpu.stats().total.in_use + 600'000);  // less than the 12 x 131,584 bytes of state
  const std::string error = error_of([&] { engine_for(model, offload_config(2, R"("offload_optimizer": {"device": "cpu"}, )")); });
  cpu.set_memory_limit(before);
  CHECK(error.find("out of host memory: cannot allocate") != std::string::npos);
  CHECK(error.find("host bytes in use (") != std::string::npos);
  CHECK(error.find("and a host memory limit of") != std::string::npos);
  auto e = engine_for(two_linears(), offload_config(2, R"("offload_optimizer": {"device": "cpu"}, )"));
  one_step(*e);
}

TEST_CASE("ZeRO-Offload: the optimizer object follows the schedule and counts steps as without offload") {
  const std::string schedule =
      R"("optimizer": {"type": "AdamW", "params": {"lr": 0.02}},
         "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 4, "warmup_max_lr": 0.02}})";
  auto plain = engine_for(two_linears(), offload_config(2, "", schedule));
  auto offloaded =
      engine_for(two_linears(), offload_config(2, R"("offload_optimizer": {"device": "cpu"}, )", schedule));
  for (int step = 1; step <= 3; ++step) {
    CAPTURE(step);
    manual_seed(uint64_t(step));
    one_step(*plain);
    manual_seed(uint64_t(step));
    one_step(*offloaded);
    CHECK(offloaded->lr() == plain->lr());
    CHECK(offloaded->optimizer().step_count() == step);
  }
  CHECK(offloaded->lr() > 0);
  CHECK(zt::test::model_values(*offloaded) == zt::test::model_values(*plain));
}

TEST_CASE("ZeRO-Offload errors: nvme_path missing or not a directory, non-Adam optimizers") {
  zt::test::TempDir dir("zt_offload_err");
  const std::string file = dir.path + "/file";
  { std::ofstream(file) << "x"; }
  auto nvme = [](const std::string& path) {
    return R"("offload_optimizer": {"device": "nvme", "nvme_path": ")" + path + R"("}, )";
  };
  for (int stage : {1, 3}) {
    CAPTURE(stage);
    CHECK(error_of([&] { engine_for(two_linears(), offload_config(stage, nvme(dir.path + "/missing"))); })
              .find("nvme_path '" + dir.path + "/missing' does not exist") != std::string::npos);
    CHECK(error_of([&] { engine_for(two_linears(), offload_config(stage, nvme(file + "/sub"))); })
              .find("nvme_path '" + file + "/sub' cannot be used: Not a directory") != std::string::npos);
  }
  // The config's SGD is refused when the config is read; a program's SGD when it is bound.
  const std::string sgd = R"("optimizer": {"type": "SGD", "params": {"lr": 0.1}})";
  CHECK(error_of([&] { offload_config(2, nvme(dir.path), sgd); })
            .find("zero_optimization.offload_optimizer.device \"nvme\" steps the offloaded state with the CPU Adam, "
                  "so it needs optimizer.type Adam or AdamW") != std::string::npos);
  const Config no_optimizer = zt::test::json_config(
      R"({"train_batch_size": 4, "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}})");
  auto model = two_linears();
  auto program_sgd = std::make_shared<SGD>(model->parameters(), SGDOptions{.lr = 0.1});
  CHECK(error_of([&] { engine_for(model, no_optimizer, program_sgd); })
            .find("the optimizer must be Adam or AdamW; this one is another kind") != std::string::npos);
  // offload_param on nvme checks its folder the same way.
  CHECK(error_of([&] {
          engine_for(two_linears(), offload_config(3, R"("offload_param": {"device": "nvme", "nvme_path": ")" + dir.path +
                                                          R"(/missing"}, )"));
        }).find("nvme_path '" + dir.path + "/missing' does not exist") != std::string::npos);
  CHECK(std::filesystem::is_empty(dir.path) == false);  // only the file: no swap folder was left behind
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path), std::filesystem::directory_iterator()) == 1);
}
