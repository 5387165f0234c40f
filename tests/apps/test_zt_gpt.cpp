// zt-gpt end to end: learning on the synthetic default text and on tiny Shakespeare, the CSV,
// activation checkpointing leaving the run unchanged, sampling, and bad input.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/app_runner.h"

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

}  // namespace

TEST_CASE("zt-gpt --help lists its flags") {
  auto r = run_app("zt-gpt", "--help");
  CHECK(r.exit_code == 0);
  for (const char* flag : {"--steps", "--seed", "--csv", "--data", "--device", "--n-layer",
                           "--n-head", "--n-embd", "--block-size", "--batch-size", "--lr",
                           "--dropout", "--eval-every", "--eval-iters", "--checkpoint-activations",
                           "--sample", "--temperature", "--top-k", "--print-every"})
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
  const std::string common = kTiny + "--steps 20 --dropout 0.2 --print-every 5 --eval-every 10 ";
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
