// zt-mlp through the engine with a DeepSpeed config: the example config runs, gradient
// accumulation reproduces the one-step losses, bf16 trains, and config mistakes are reported.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "apps/app_runner.h"
#include "apps/mpi_runner.h"

using zt::test::number_after;
using zt::test::run_app;
namespace fs = std::filesystem;

namespace {

std::string source_dir() {
  const char* src = std::getenv("ZT_SOURCE_DIR");
  REQUIRE_MESSAGE(src != nullptr, "ZT_SOURCE_DIR is set by CTest");
  return src;
}

fs::path write_config(const std::string& name, const std::string& text) {
  const fs::path path = fs::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path;
}

std::vector<double> csv_losses(const fs::path& path) {  // third column
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<double> losses;
  while (std::getline(in, line)) {
    const auto a = line.find(','), b = line.find(',', a + 1);
    losses.push_back(std::atof(line.substr(b + 1).c_str()));
  }
  return losses;
}

}  // namespace

TEST_CASE("zt-mlp --config configs/mlp_ds_config.json trains") {
  auto r = run_app("zt-mlp", "--config " + source_dir() + "/configs/mlp_ds_config.json --steps 200");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  CHECK(r.output.find("config: " + source_dir() + "/configs/mlp_ds_config.json") != std::string::npos);
  CHECK(r.output.find("batch 32, Adam lr 0.001") != std::string::npos);
  CHECK(number_after(r.output, "held-out accuracy ") > 60.0);
}

TEST_CASE("zt-mlp: 2 accumulation steps of 16 log the losses of steps of 32") {
  const auto one = fs::temp_directory_path() / "zt_mlp_acc1.csv", two = fs::temp_directory_path() / "zt_mlp_acc2.csv";
  const auto acc1 = write_config("zt_mlp_acc1.json", R"({"train_batch_size": 32, "gradient_accumulation_steps": 1,
      "optimizer": {"type": "Adam", "params": {"lr": 0.001}}})");
  const auto acc2 = write_config("zt_mlp_acc2.json", R"({"train_batch_size": 32, "gradient_accumulation_steps": 2,
      "optimizer": {"type": "Adam", "params": {"lr": 0.001}}})");
  auto r1 = run_app("zt-mlp", "--config " + acc1.string() + " --steps 40 --print-every 10 --csv " + one.string());
  auto r2 = run_app("zt-mlp", "--config " + acc2.string() + " --steps 40 --print-every 10 --csv " + two.string());
  REQUIRE_MESSAGE(r1.exit_code == 0, r1.output);
  REQUIRE_MESSAGE(r2.exit_code == 0, r2.output);
  CHECK(r2.output.find("gradient accumulation: 2 micro-batches of 16 per step") != std::string::npos);
  const auto l1 = csv_losses(one), l2 = csv_losses(two);
  REQUIRE(l1.size() == 4);
  REQUIRE(l2.size() == l1.size());
  // Same samples per step (the loader's order does not depend on the batch size); only the
  // summation order differs, and the CSV keeps 6 digits.
  for (size_t i = 0; i < l1.size(); ++i) CHECK(std::fabs(l1[i] - l2[i]) <= 1e-4 * l1[i]);
}

TEST_CASE("zt-mlp: accumulation under mpirun -np 2 logs the one-process losses") {
  const auto config = write_config("zt_mlp_acc_dp.json", R"({"train_batch_size": 32, "gradient_accumulation_steps": 2,
      "optimizer": {"type": "Adam", "params": {"lr": 0.001}}})");
  const std::string flags = " --config " + config.string() + " --steps 20 --print-every 5 --hidden 32 --csv ";
  const auto one = fs::temp_directory_path() / "zt_mlp_acc_np1.csv", two = fs::temp_directory_path() / "zt_mlp_acc_np2.csv";
  auto r1 = run_app("zt-mlp", flags + one.string());
  REQUIRE_MESSAGE(r1.exit_code == 0, r1.output);
  auto r2 = zt::test::run_command(zt::test::mpirun_prefix(2) + " " + zt::test::bin_dir() + "/zt-mlp" + flags + two.string());
  REQUIRE_MESSAGE(r2.run.exit_code == 0, r2.run.output);
  CHECK(r2.run.output.find("data parallel: 2 ranks x 16 samples per step") != std::string::npos);
  const auto l1 = csv_losses(one), l2 = csv_losses(two);
  REQUIRE(l1.size() == 4);
  REQUIRE(l2.size() == l1.size());
  for (size_t i = 0; i < l1.size(); ++i) CHECK(std::fabs(l1[i] - l2[i]) <= 2e-5 * l1[i]);
}

TEST_CASE("zt-mlp: bf16 from the config trains; config mistakes name the key") {
  const auto bf16 = write_config("zt_mlp_bf16.json", R"({"train_micro_batch_size_per_gpu": 32,
      "bf16": {"enabled": true}, "optimizer": {"type": "AdamW", "params": {"lr": 0.002}}})");
  auto r = run_app("zt-mlp", "--config " + bf16.string() + " --steps 300 --device cpu");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  CHECK(r.output.find("device cpu, bf16") != std::string::npos);
  CHECK(number_after(r.output, "held-out accuracy ") > 70.0);

  const auto typo = write_config("zt_mlp_typo.json", R"({"train_batch_size": 32, "gradient_clippin": 1.0})");
  auto bad = run_app("zt-mlp", "--config " + typo.string());
  CHECK(bad.exit_code != 0);
  CHECK(bad.output.find("gradient_clippin") != std::string::npos);
  CHECK(bad.output.find("did you mean 'gradient_clipping'") != std::string::npos);
}
