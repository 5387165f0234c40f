// Engine checkpoints: 6 steps uninterrupted equal 3 steps, save, a fresh engine loads, 3 steps,
// bitwise (f32 with a schedule; fp16 with its dynamic loss scale and fp32 masters).
#include <doctest/doctest.h>

#include <filesystem>

#include "autograd/ops.h"
#include "runtime/engine.h"
#include "runtime/engine_test_util.h"

using namespace zt;
namespace fs = std::filesystem;

namespace {

const char* kConfigs[] = {
    R"({"train_batch_size": 8, "gradient_accumulation_steps": 2,
        "optimizer": {"type": "AdamW", "params": {"lr": 0.01, "weight_decay": 0.1}},
        "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 2, "total_num_steps": 10,
                      "warmup_max_lr": 0.01}}})",
    R"({"train_batch_size": 8, "fp16": {"enabled": true, "initial_scale_power": 5, "loss_scale_window": 2},
        "optimizer": {"type": "Adam", "params": {"lr": 0.01}}})",
};

std::unique_ptr<Engine> make_engine(const char* config, uint64_t init_seed) {
  InitOptions quiet;
  quiet.monitor = false;
  return initialize(zt::test::small_mlp(init_seed), zt::test::json_config(config), quiet);
}

// Runs global steps [first, last) on fixed data; returns the loss of each micro-step.
std::vector<double> train(Engine& e, int first, int last) {
  const auto data = zt::test::classification_batch(64);
  const int64_t micro = e.train_micro_batch_size_per_gpu();
  std::vector<double> losses;
  for (int s = first; s < last; ++s) {
    for (int64_t m = 0; m < e.gradient_accumulation_steps(); ++m) {
      const int64_t start = (s * 8 + m * micro) % 64;
      Tensor x = raw::to(zt::test::rows(data.x, start, micro), e.dtype());
      Tensor loss = cross_entropy(e.forward(x), zt::test::rows(data.y, start, micro));
      losses.push_back(loss.item());
      e.backward(loss);
      e.step();
    }
  }
  return losses;
}

}  // namespace

TEST_CASE("engine checkpoint: save, load in a fresh engine, continue bitwise") {
  for (const char* config : kConfigs) {
    CAPTURE(config);
    const fs::path dir = fs::temp_directory_path() / "zt_engine_ckpt";
    fs::remove_all(dir);
    auto straight = make_engine(config, 7);
    train(*straight, 0, 3);
    const auto expected = train(*straight, 3, 6);

    auto first = make_engine(config, 7);
    train(*first, 0, 3);
    first->save_checkpoint(dir.string(), "step3", {{"loader_position", 24}});
    first.reset();

    auto resumed = make_engine(config, 99);  // other initial weights: all must come from the file
    const nlohmann::json client = resumed->load_checkpoint(dir.string());
    CHECK(client.at("loader_position") == 24);
    CHECK(resumed->global_step() == 3);
    const auto got = train(*resumed, 3, 6);
    CHECK(got == expected);
    const auto a = straight->module().parameters(), b = resumed->module().parameters();
    for (size_t i = 0; i < a.size(); ++i) CHECK(raw::max_abs_diff(a[i], b[i]) == 0.0);
    CHECK(resumed->global_step() == straight->global_step());
    CHECK(resumed->loss_scale() == straight->loss_scale());
    if (resumed->scheduler()) CHECK(resumed->scheduler()->last_step() == straight->scheduler()->last_step());
    fs::remove_all(dir);
  }
}
