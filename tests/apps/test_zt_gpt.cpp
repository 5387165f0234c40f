// zt-gpt end to end: learning on the synthetic default text and on tiny Shakespeare (one process,
// and two ranks with ZeRO stage 2), the CSV, activation checkpointing leaving the run unchanged,
// exact resume from a checkpoint, the same losses at 1 and 2 ranks, sampling, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/app_runner.h"
#include "apps/mpi_runner.h"

using zt::test::number_after;
using zt::test::run_app;

namespace {

// Small ops on a shared 2-core machine: spinning OpenMP workers slow them down ten-fold when
// other processes compete for the cores, so the runs here let idle workers sleep.
struct PassiveOpenMP {
  PassiveOpenMP() { setenv("OMP_WAIT_POLICY", "passive", 0); }
};
const PassiveOpenMP passive_openmp;

const std::string kTiny = "--n-layer 2 --n-head 4 --n-embd 64 --block-size 32 --batch-size 16 ";

std::vector<std::vector<std::string>> read_csv(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    size_t from = 0;
    for (size_t comma; (comma = line.find(',', from)) != std::string::npos; from = comma + 1)
      cells.push_back(line.substr(from, comma - from));
    cells.push_back(line.substr(from));
    rows.push_back(cells);
  }
  return rows;
}

// zt-gpt with `flags` on `ranks` processes (1: no mpirun).
zt::test::AppRun gpt(int ranks, const std::string& flags) {
  const std::string app = zt::test::bin_dir() + "/zt-gpt " + flags;
  return zt::test::run_command(ranks == 1 ? app : zt::test::mpirun_prefix(ranks) + " " + app).run;
}

std::filesystem::path scratch(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("zt_gpt_test_" + name);
  std::filesystem::remove_all(p);
  return p;
}

}  // namespace

TEST_CASE("zt-gpt --help lists its flags") {
  auto r = run_app("zt-gpt", "--help");
  CHECK(r.exit_code == 0);
  for (const char* flag : {"--steps", "--seed", "--csv", "--data", "--device", "--n-layer",
                           "--n-head", "--n-embd", "--block-size", "--batch-size", "--lr",
                           "--dropout", "--eval-every", "--eval-iters", "--checkpoint-activations",
                           "--sample", "--temperature", "--top-k", "--print-every", "--config",
                           "--grad-accum", "--save", "--save-every", "--load"})
    CHECK_MESSAGE(r.output.find(flag) != std::string::npos, flag);
}

TEST_CASE("zt-gpt lowers the loss on the synthetic default text and writes a CSV") {
  const auto csv = std::filesystem::temp_directory_path() / "zt_gpt_test.csv";
  auto r = run_app("zt-gpt", kTiny + "--steps 60 --lr 2e-3 --eval-every 30 --print-every 10 "
                                     "--device cpu --csv " + csv.string());
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  MESSAGE(r.output.substr(r.output.rfind("done:")));
  auto rows = read_csv(csv);
  REQUIRE(rows.size() == 7);  // header + steps 10, 20, ..., 60
  CHECK(rows[0] == std::vector<std::string>{"step", "loss", "lr", "val_loss", "tokens_per_s"});
  CHECK(rows[1][0] == "10");
  CHECK(rows[6][0] == "60");
  CHECK(rows[1][3].empty());   // no evaluation at step 10
  CHECK(!rows[3][3].empty());  // step 30
  const double first = std::atof(rows[1][1].c_str()), last = std::atof(rows[6][1].c_str());
  CHECK(last < 0.75 * first);
  // Untrained, a 256-way byte model is near ln(256) = 5.55.
  const double initial = number_after(r.output, "(initial ");
  CHECK(initial == doctest::Approx(5.55).epsilon(0.03));
  CHECK(number_after(r.output, "val loss ") < initial - 2.0);
  std::filesystem::remove(csv);
}

TEST_CASE("zt-gpt: --checkpoint-activations reproduces the run exactly, dropout included") {
  const auto dir = std::filesystem::temp_directory_path();
  const auto plain_csv = dir / "zt_gpt_plain.csv", ckpt_csv = dir / "zt_gpt_ckpt.csv";
  // On the CPU: CUDA's embedding backward adds with atomics, whose order (and so the last bit)
  // varies from run to run whether or not activations are recomputed.
  const std::string common = kTiny + "--steps 20 --dropout 0.2 --print-every 5 --eval-every 10 --device cpu ";
  auto plain = run_app("zt-gpt", common + "--csv " + plain_csv.string());
  auto ckpt = run_app("zt-gpt", common + "--checkpoint-activations --csv " + ckpt_csv.string());
  REQUIRE_MESSAGE(plain.exit_code == 0, plain.output);
  REQUIRE_MESSAGE(ckpt.exit_code == 0, ckpt.output);
  CHECK(ckpt.output.find("activation checkpointing") != std::string::npos);
  auto a = read_csv(plain_csv), b = read_csv(ckpt_csv);
  REQUIRE(a.size() == 5);
  REQUIRE(b.size() == a.size());
  for (size_t i = 1; i < a.size(); ++i) {
    CHECK(a[i][1] == b[i][1]);  // loss
    CHECK(a[i][3] == b[i][3]);  // val_loss
  }
  std::filesystem::remove(plain_csv);
  std::filesystem::remove(ckpt_csv);
}

TEST_CASE("zt-gpt --sample prints that many sampled bytes") {
  auto r = run_app("zt-gpt", kTiny + "--steps 5 --sample 50 --top-k 10");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  const std::string open = "---- end of sample ----";
  const auto head = r.output.find("top-k 10) ----\n");
  const auto tail = r.output.find("\n" + open);
  REQUIRE(head != std::string::npos);
  REQUIRE(tail != std::string::npos);
  CHECK(tail - (head + 15) == 50);  // the bytes between the two markers
}

TEST_CASE("zt-gpt learns tiny Shakespeare (byte level) well below ln(256)") {
  const char* dir = std::getenv("ZT_DATA_DIR");
  if (!dir) {
    MESSAGE("ZT_DATA_DIR is unset: skipping the tiny Shakespeare run");
    return;
  }
  auto r = run_app("zt-gpt", std::string("--data ") + dir + "/tinyshakespeare/input.txt " +
                                 "--n-layer 2 --n-head 4 --n-embd 64 --block-size 64 "
                                 "--batch-size 16 --lr 3e-3 --steps 300 --eval-every 150 "
                                 "--print-every 50 --sample 120");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  MESSAGE(r.output.substr(r.output.rfind("done:")));
  CHECK(number_after(r.output, "(initial ") > 5.0);
  CHECK(number_after(r.output, "val loss ") < 3.0);
}

TEST_CASE("zt-gpt learns tiny Shakespeare under mpirun -np 2 with ZeRO stage 2 (val loss below 2.5)") {
  const char* dir = std::getenv("ZT_DATA_DIR");
  if (!dir) {
    MESSAGE("ZT_DATA_DIR is unset: skipping the data-parallel tiny Shakespeare run");
    return;
  }
  // 2 layers, 64 wide, global batch 32 (16 per rank), AdamW 3e-3 cosine to 3e-4, 300 steps.
  auto r = gpt(2, std::string("--data ") + dir + "/tinyshakespeare/input.txt --config " + zt::test::source_dir() +
                      "/configs/gpt_ci_zero2.json --n-layer 2 --n-head 4 --n-embd 64 --block-size 64 "
                      "--steps 300 --eval-every 150 --print-every 50 --device cpu --sample 80");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  MESSAGE(r.output.substr(r.output.rfind("done:")));
  CHECK(r.output.find("2 ranks") != std::string::npos);
  CHECK(r.output.find("ZeRO stage 2") != std::string::npos);
  CHECK(number_after(r.output, "(initial ") > 5.0);
  CHECK(number_after(r.output, "val loss ") < 2.5);
}

TEST_CASE("zt-gpt: a run resumed from its checkpoint logs the uninterrupted run's losses bitwise") {
  const auto full = scratch("full.csv"), resumed = scratch("resumed.csv"), ck = scratch("ck");
  // The schedule's length is fixed (--lr-decay-steps) so the 6-step and 12-step runs share it.
  const std::string common =
      kTiny + "--dropout 0.1 --print-every 2 --eval-every 100 --eval-iters 2 --device cpu --lr-decay-steps 12 ";
  auto a = gpt(1, common + "--steps 12 --csv " + full.string());
  REQUIRE_MESSAGE(a.exit_code == 0, a.output);
  auto b = gpt(1, common + "--steps 6 --save " + ck.string());
  REQUIRE_MESSAGE(b.exit_code == 0, b.output);
  auto c = gpt(1, common + "--steps 12 --load " + ck.string() + " --csv " + resumed.string());
  REQUIRE_MESSAGE(c.exit_code == 0, c.output);
  CHECK(c.output.find("resumed from") != std::string::npos);
  auto x = read_csv(full), y = read_csv(resumed);
  REQUIRE(x.size() == 7);  // header + steps 2..12
  REQUIRE(y.size() == 4);  // header + steps 8, 10, 12
  for (size_t i = 1; i < y.size(); ++i) {
    CHECK(y[i][0] == x[i + 3][0]);
    CHECK(y[i][1] == x[i + 3][1]);  // the loss, every bit
  }
  std::filesystem::remove(full);
  std::filesystem::remove(resumed);
  std::filesystem::remove_all(ck);
}

// --save-best keeps the checkpoint of the best val loss (nanoGPT's convention for small corpora
// that overfit): loading it gives back that val loss exactly (the val batches are fixed).
TEST_CASE("zt-gpt --save-best keeps the best-val checkpoint, which loads back at that val loss") {
  const auto ck = scratch("best");
  const std::string common = kTiny + "--eval-iters 2 --device cpu ";
  auto a = gpt(1, common + "--steps 8 --eval-every 2 --print-every 2 --save-best " + ck.string());
  REQUIRE_MESSAGE(a.exit_code == 0, a.output);
  const size_t at = a.output.find("best validation: ");
  REQUIRE(at != std::string::npos);
  double best = 0;
  long long step = 0;
  REQUIRE(std::sscanf(a.output.c_str() + at, "best validation: %lf at step %lld", &best, &step) == 2);
  REQUIRE(step > 0);
  char saved[128];
  std::snprintf(saved, sizeof(saved), "(val loss %.4f at step %lld)", best, step);
  CHECK_MESSAGE(a.output.find(saved) != std::string::npos, a.output);
  // Resumed at the best step with nothing left to train: its first val estimate is the best.
  auto b = gpt(1, common + "--steps " + std::to_string(step) + " --load " + ck.string());
  REQUIRE_MESSAGE(b.exit_code == 0, b.output);
  CHECK(number_after(b.output, "at global step ") == double(step));
  CHECK(std::abs(number_after(b.output, "| val loss ") - best) <= 1e-4);
  auto c = gpt(1, common + "--steps 2 --save " + ck.string() + " --save-best " + ck.string());
  CHECK(c.exit_code != 0);
  CHECK(c.output.find("--save-best and --save must name different folders") != std::string::npos);
  std::filesystem::remove_all(ck);
}

TEST_CASE("zt-gpt logs the same global-batch losses on 1 and 2 ranks") {
  // Both runs see the same global batches; two ranks average two half-batch gradients, which
  // equals the full-batch gradient up to the order of f32 sums, so the losses agree to ~1e-6.
  const auto one = scratch("np1.csv"), two = scratch("np2.csv");
  const std::string common = kTiny + "--steps 8 --print-every 1 --eval-every 100 --eval-iters 2 --device cpu ";
  auto a = gpt(1, common + "--csv " + one.string());
  auto b = gpt(2, common + "--csv " + two.string());
  REQUIRE_MESSAGE(a.exit_code == 0, a.output);
  REQUIRE_MESSAGE(b.exit_code == 0, b.output);
  auto x = read_csv(one), y = read_csv(two);
  REQUIRE(x.size() == 9);
  REQUIRE(y.size() == x.size());
  for (size_t i = 1; i < x.size(); ++i)
    CHECK(std::atof(y[i][1].c_str()) == doctest::Approx(std::atof(x[i][1].c_str())).epsilon(1e-5));
  std::filesystem::remove(one);
  std::filesystem::remove(two);
}

TEST_CASE("zt-gpt rejects bad input with a clear message") {
  auto unknown = run_app("zt-gpt", "--n-layers 2");
  CHECK(unknown.exit_code != 0);
  CHECK(unknown.output.find("did you mean --n-layer") != std::string::npos);

  auto missing = run_app("zt-gpt", "--data /nonexistent/input.txt --steps 1");
  CHECK(missing.exit_code != 0);
  CHECK(missing.output.find("/nonexistent/input.txt") != std::string::npos);

  auto heads = run_app("zt-gpt", "--n-embd 30 --n-head 4 --steps 1");
  CHECK(heads.exit_code != 0);
  CHECK(heads.output.find("divisible by --n-head") != std::string::npos);

  auto device = run_app("zt-gpt", "--device tpu --steps 1");
  CHECK(device.exit_code != 0);
}
