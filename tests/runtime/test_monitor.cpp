// Monitor (runtime/monitor.h): the printed line, CSV rows, silence off rank 0, and the engine's
// lines every steps_per_print steps with csv_monitor and the wall-clock breakdown.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "autograd/ops.h"
#include "runtime/engine.h"
#include "runtime/engine_test_util.h"
#include "runtime/monitor.h"

using namespace zt;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

MonitorRecord sample_record() {
  MonitorRecord r;
  r.step = 20;
  r.loss = 0.5;
  r.lr = 0.001;
  r.loss_scale = 1024;
  r.samples = 200;
  r.seconds = 2;
  r.times = {0.001, 0.002, 0.0005, 0.003};
  r.memory.total.in_use = 1 << 20;
  r.memory.total.peak = 3 << 20;
  return r;
}

}  // namespace

TEST_CASE("monitor: the line and the CSV row") {
  const MonitorRecord r = sample_record();
  CHECK(Monitor::format_line(r, false) ==
        "step 20 | loss 0.5000 | lr 1.00e-03 | loss scale 1024 | 100 samples/s | mem 1.0 MiB (peak 3.0 MiB)");
  CHECK(Monitor::format_line(r, true) ==
        "step 20 | loss 0.5000 | lr 1.00e-03 | loss scale 1024 | 100 samples/s | mem 1.0 MiB (peak 3.0 MiB)"
        " | fwd 1.00 ms bwd 2.00 ms reduce 0.50 ms step 3.00 ms");
  MonitorRecord tokens = r;
  tokens.tokens = 4096;
  CHECK(Monitor::format_line(tokens, false).find("| 2048 tokens/s |") != std::string::npos);
  CHECK(Monitor::csv_row(r) == "20,0.5,0.001,1024,100,0,1048576,3145728,0.001,0.002,0.0005,0.003");

  const fs::path csv = fs::temp_directory_path() / "zt_monitor_test" / "rows.csv";
  fs::remove_all(csv.parent_path());
  test::LogFile out_log;
  std::FILE* out = out_log.f;
  {
    Monitor m(MonitorOptions{10, csv.string(), false, true, 0, out});
    CHECK(m.reports_at(20));
    CHECK_FALSE(m.reports_at(25));
    m.report(r);
    m.skipped_step(21, "loss scale 1024 -> 512");
    m.progress(21);  // not a terminal: no bar
  }
  CHECK(out_log.text() == Monitor::format_line(r, false) + "\n" +
                                "step 21 skipped: non-finite gradients; loss scale 1024 -> 512\n");
  const auto lines = read_lines(csv);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == Monitor::csv_header());
  CHECK(lines[1] == Monitor::csv_row(r));
}

TEST_CASE("monitor: ranks other than 0 write nothing") {
  const fs::path csv = fs::temp_directory_path() / "zt_monitor_rank1.csv";
  fs::remove(csv);
  test::LogFile out_log;
  std::FILE* out = out_log.f;
  {
    Monitor m(MonitorOptions{1, csv.string(), true, false, 0, out});
    m.report(sample_record());
    m.skipped_step(3, "");
  }
  CHECK(out_log.text().empty());
  CHECK_FALSE(fs::exists(csv));
}

TEST_CASE("monitor: the engine prints every steps_per_print steps and fills csv_monitor") {
  const fs::path dir = fs::temp_directory_path() / "zt_engine_monitor";
  fs::remove_all(dir);
  const auto data = zt::test::regression_batch(8);
  test::LogFile out_log;
  std::FILE* out = out_log.f;
  InitOptions options;
  options.log = out;
  auto e = initialize(zt::test::small_mlp(), zt::test::json_config(R"({"train_batch_size": 8,
      "gradient_accumulation_steps": 2, "steps_per_print": 2, "wall_clock_breakdown": true,
      "csv_monitor": {"enabled": true, "output_path": ")" + dir.string() + R"(", "job_name": "run1"},
      "optimizer": {"type": "SGD", "params": {"lr": 0.05}}})"), options);
  std::vector<double> losses;
  for (int s = 0; s < 5; ++s) {
    double sum = 0;
    for (int m = 0; m < 2; ++m) {
      Tensor loss = mse_loss(e->forward(zt::test::rows(data.x, 4 * m, 4)), zt::test::rows(data.y, 4 * m, 4));
      sum += loss.item();
      e->backward(loss);
      e->step();
    }
    losses.push_back(sum / 2);
  }
  const std::string text = out_log.text();
  CHECK(text.find("step 2 | loss ") != std::string::npos);
  CHECK(text.find("step 4 | loss ") != std::string::npos);
  CHECK(text.find("step 3 |") == std::string::npos);
  CHECK(text.find("step 5 |") == std::string::npos);
  CHECK(text.find("| fwd ") != std::string::npos);
  const auto lines = read_lines(dir / "run1" / "train.csv");
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == Monitor::csv_header());
  CHECK(lines[1].rfind("2,", 0) == 0);
  CHECK(lines[2].rfind("4,", 0) == 0);
  // The logged loss is the mean over the steps since the last line: steps 3 and 4.
  const double logged = std::atof(lines[2].substr(2).c_str());
  CHECK(logged == doctest::Approx((losses[2] + losses[3]) / 2).epsilon(1e-5));
}
