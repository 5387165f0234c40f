// zt-mlp --save/--load (Note [zt-mlp checkpoints] in apps/zt-mlp/main.cpp): a run stopped at step
// 10 and resumed by a new process logs, for steps 11-20, bitwise the losses of the uninterrupted
// run (f32, bf16, 2 MPI ranks); a checkpoint saved at 2 ranks resumes at 1 and at 4 ranks on the
// same loss curve.
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
fs::path scratch(const std::string& name) { return zt::test::fresh_scratch("zt_resume_", name); }
zt::test::AppRun mlp(int ranks, const std::string& flags) { return zt::test::run_mlp(ranks, flags); }

const char* kFlags = " --print-every 1 --hidden 32 --samples 1024";

// Runs 20 steps uninterrupted, and 10 + save then load + 10 in a new process; returns both CSVs'
// rows (the resumed run logs only steps 11-20).
std::pair<std::vector<Row>, std::vector<Row>> straight_and_resumed(const std::string& name, int ranks,
                                                                   const std::string& extra) {
  const fs::path full = scratch(name + "_full.csv"), resumed = scratch(name + "_resumed.csv"), ck = scratch(name + "_ck");
  const std::string flags = std::string(kFlags) + extra;
  auto r1 = mlp(ranks, flags + " --steps 20 --csv " + full.string());
  REQUIRE_MESSAGE(r1.exit_code == 0, r1.output);
  auto r2 = mlp(ranks, flags + " --steps 10 --save " + ck.string());
  REQUIRE_MESSAGE(r2.exit_code == 0, r2.output);
  CHECK(r2.output.find("saved checkpoint " + ck.string() + "/global_step10") != std::string::npos);
  auto r3 = mlp(ranks, flags + " --steps 20 --load " + ck.string() + " --csv " + resumed.string());
  REQUIRE_MESSAGE(r3.exit_code == 0, r3.output);
  CHECK(r3.output.find("resumed from " + ck.string() + " at global step 10") != std::string::npos);
  CHECK(r3.output.find("done: 20 steps") != std::string::npos);
  return {csv_rows(full), csv_rows(resumed)};
}

void check_bitwise_resume(const std::string& name, int ranks, const std::string& extra) {
  const auto [full, resumed] = straight_and_resumed(name, ranks, extra);
  REQUIRE(full.size() == 20);
  REQUIRE(resumed.size() == 10);
  for (size_t i = 0; i < resumed.size(); ++i) {
    CAPTURE(i);
    CHECK(resumed[i].step == full[10 + i].step);
    CHECK(resumed[i].loss == full[10 + i].loss);
  }
}

}  // namespace

TEST_CASE("zt-mlp resumes exactly from a checkpoint (f32)") { check_bitwise_resume("f32", 1, ""); }

TEST_CASE("zt-mlp resumes exactly from a checkpoint (bf16 with fp32 masters)") {
  const fs::path config = scratch("bf16.json");
  std::ofstream(config) << R"({"train_batch_size": 32, "optimizer": {"type": "Adam", "params": {"lr": 0.001}},
                               "bf16": {"enabled": true}})";
  check_bitwise_resume("bf16", 1, " --config " + config.string());
}

TEST_CASE("zt-mlp resumes exactly from a checkpoint under mpirun -np 2") { check_bitwise_resume("np2", 2, ""); }

TEST_CASE("a checkpoint saved at 2 ranks resumes at 1 and 4 ranks on the same loss curve") {
  // The global batch stays 32 and the loader position is saved as global samples read, so
  // step k reads the same 32 samples at every world size (the sampler interleaves one epoch
  // order). What changes is the summation order of the gradient average and of the logged mean
  // (per-rank means over 32/M samples, then averaged over M): f32 rounding, about 1e-7 of the
  // loss per step, compounded over 10 Adam steps. 2e-5 on a loss near 2.3 leaves a margin of
  // about 100x over the differences seen, and is far below the step-to-step change of the loss
  // (checked below), so resuming on the wrong samples or with lost optimizer state fails.
  const double tolerance = 2e-5;
  const fs::path full = scratch("dp_full.csv"), ck = scratch("dp_ck");
  const std::string flags = std::string(kFlags);
  auto r1 = mlp(2, flags + " --steps 20 --csv " + full.string());
  REQUIRE_MESSAGE(r1.exit_code == 0, r1.output);
  auto r2 = mlp(2, flags + " --steps 10 --save " + ck.string());
  REQUIRE_MESSAGE(r2.exit_code == 0, r2.output);
  const auto reference = csv_rows(full);
  REQUIRE(reference.size() == 20);
  for (size_t i = 11; i < reference.size(); ++i)
    CHECK(std::fabs(std::stod(reference[i].loss) - std::stod(reference[i - 1].loss)) > 10 * tolerance);
  for (int ranks : {1, 4}) {
    CAPTURE(ranks);
    const fs::path resumed = scratch("dp_resumed_np" + std::to_string(ranks) + ".csv");
    auto r = mlp(ranks, flags + " --steps 20 --load " + ck.string() + " --csv " + resumed.string());
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    const auto rows = csv_rows(resumed);
    REQUIRE(rows.size() == 10);
    for (size_t i = 0; i < rows.size(); ++i) {
      CAPTURE(i);
      CHECK(rows[i].step == reference[10 + i].step);
      CHECK(std::fabs(std::stod(rows[i].loss) - std::stod(reference[10 + i].loss)) <= tolerance);
    }
  }
}

TEST_CASE("zt-mlp --load names what is wrong with a checkpoint folder") {
  const fs::path empty = scratch("empty_ck");
  fs::create_directories(empty);
  auto r = mlp(1, std::string(kFlags) + " --steps 5 --load " + empty.string());
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("zt-mlp: error:") != std::string::npos);
  CHECK(r.output.find("latest") != std::string::npos);
}
