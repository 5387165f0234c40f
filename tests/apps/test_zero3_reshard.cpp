// zt-mlp with ZeRO stage 3 (runtime/zero_checkpoint.h): a checkpoint saved at 2 ranks resumes
// bitwise at 2 ranks and, resharded, at 1 and 4 ranks on the loss curve of the uninterrupted
// 2-rank run; zt-consolidate turns it into the full weights.
//
// The config keeps stage3_param_persistence_threshold at its default (100,000 elements), so both
// Linear units of this small MLP (1,056 and 330 elements) stay gathered. Partitioned weights,
// masters and optimizer state are still saved per rank and resharded, which is what this test is
// about; gathering is tested in tests/parallel and by zt-mnist's stage-3 test (tests/apps).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/mlp_runs.h"

namespace fs = std::filesystem;

namespace {

using Row = zt::test::MlpRow;
std::vector<Row> csv_rows(const fs::path& path) { return zt::test::mlp_csv_rows(path); }
fs::path scratch(const std::string& name) { return zt::test::fresh_scratch("zt_zero3_reshard_", name); }
zt::test::AppRun mlp(int ranks, const std::string& flags) { return zt::test::run_mlp(ranks, flags); }

}  // namespace

TEST_CASE("zt-mlp ZeRO-3: saved at 2 ranks, resumed at 2 (bitwise), 1 and 4 ranks; consolidated") {
  const fs::path config = scratch("config.json");
  std::ofstream(config) << R"({"train_batch_size": 32, "gradient_clipping": 1.0,
    "optimizer": {"type": "Adam", "params": {"lr": 0.001}},
    "zero_optimization": {"stage": 3, "reduce_bucket_size": 500, "stage3_param_persistence_threshold": 100000}})";
  const std::string flags = " --print-every 1 --hidden 32 --samples 1024 --config " + config.string();
  const fs::path full = scratch("full.csv"), ck = scratch("ck");
  auto r1 = mlp(2, flags + " --steps 20 --csv " + full.string());
  REQUIRE_MESSAGE(r1.exit_code == 0, r1.output);
  auto r2 = mlp(2, flags + " --steps 10 --save " + ck.string());
  REQUIRE_MESSAGE(r2.exit_code == 0, r2.output);
  CHECK(r2.output.find("saved checkpoint " + ck.string() + "/global_step10") != std::string::npos);
  const auto reference = csv_rows(full);
  REQUIRE(reference.size() == 20);
  // As in test_resume.cpp: another world size changes only the summation order of the gradient
  // average and of the logged mean (about 1e-7 of the loss per step); 2e-5 is far below the
  // step-to-step change of the loss, so resuming with lost optimizer state or weights fails.
  const double tolerance = 2e-5;
  for (size_t i = 11; i < reference.size(); ++i)
    CHECK(std::fabs(std::stod(reference[i].loss) - std::stod(reference[i - 1].loss)) > 10 * tolerance);
  for (int ranks : {2, 1, 4}) {
    CAPTURE(ranks);
    const fs::path resumed = scratch("resumed_np" + std::to_string(ranks) + ".csv");
    auto r = mlp(ranks, flags + " --steps 20 --load " + ck.string() + " --csv " + resumed.string());
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    CHECK(r.output.find("resumed from " + ck.string() + " at global step 10") != std::string::npos);
    const auto rows = csv_rows(resumed);
    REQUIRE(rows.size() == 10);
    for (size_t i = 0; i < rows.size(); ++i) {
      CAPTURE(i);
      CHECK(rows[i].step == reference[10 + i].step);
      if (ranks == 2) CHECK(rows[i].loss == reference[10 + i].loss);
      else CHECK(std::fabs(std::stod(rows[i].loss) - std::stod(reference[10 + i].loss)) <= tolerance);
    }
  }
  // 32 x 32 + 32 + 32 x 10 + 10 = 1,386 weights in 4 tensors, from the per-rank fragments.
  const fs::path weights = scratch("weights.safetensors");
  auto c = zt::test::run_app("zt-consolidate", ck.string() + " --out " + weights.string());
  REQUIRE_MESSAGE(c.exit_code == 0, c.output);
  CHECK(c.output.find("wrote 4 tensors (1386 elements)") != std::string::npos);
  CHECK(fs::file_size(weights) > 1386 * 4);
}
