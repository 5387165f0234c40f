// Multi-process runs started from a test: zt-mlp data-parallel under mpirun gives the one-process
// losses, the watchdog ends a job whose rank was killed or hangs, and zt-run builds the mpirun
// command from DeepSpeed's launcher flags.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include "apps/mpi_runner.h"

using zt::test::bin_dir;
using zt::test::mpirun_prefix;
using zt::test::run_command;

namespace {

struct CsvRow {
  double loss = 0, val_loss = -1;
};

// Columns step,epoch,loss,lr,samples_per_s,val_loss,val_accuracy.
std::vector<CsvRow> read_csv(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<CsvRow> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> cells(1);
    for (char c : line) {
      if (c == ',') cells.emplace_back();
      else cells.back() += c;
    }
    CsvRow r;
    r.loss = std::atof(cells.at(2).c_str());
    if (cells.size() > 5 && !cells[5].empty()) r.val_loss = std::atof(cells[5].c_str());
    rows.push_back(r);
  }
  return rows;
}

std::string root_flag() { return geteuid() == 0 ? "--allow-run-as-root " : ""; }

}  // namespace

TEST_CASE("zt-mlp data-parallel on 2 and 4 ranks logs the one-process losses") {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string flags = " --steps 50 --print-every 5 --batch-size 32 --hidden 32 --csv ";
  const auto one = dir / "zt_mlp_dp_1.csv";
  auto single = run_command(bin_dir() + "/zt-mlp" + flags + one.string());
  REQUIRE_MESSAGE(single.run.exit_code == 0, single.run.output);
  const auto ref = read_csv(one);
  REQUIRE(ref.size() == 10);
  for (int np : {2, 4}) {
    CAPTURE(np);
    const auto path = dir / ("zt_mlp_dp_" + std::to_string(np) + ".csv");
    auto r = run_command(mpirun_prefix(np) + " " + bin_dir() + "/zt-mlp" + flags + path.string());
    REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
    // Only rank 0 prints: one header, one line per logged step.
    CHECK(r.run.output.find("data parallel: " + std::to_string(np) + " ranks") != std::string::npos);
    CHECK(r.run.output.find("zt-mlp:") == r.run.output.rfind("zt-mlp:"));
    const auto rows = read_csv(path);
    REQUIRE(rows.size() == ref.size());
    // The CSV keeps 6 significant digits, so two printed values of equal numbers may differ by
    // up to 1e-5 relative; the in-process test (tests/parallel) checks 1e-5 on unrounded values.
    for (size_t i = 0; i < rows.size(); ++i) {
      CAPTURE(i);
      CHECK(std::fabs(rows[i].loss - ref[i].loss) <= 2e-5 * ref[i].loss);
      CHECK(std::fabs(rows[i].val_loss - ref[i].val_loss) <= 2e-5 * std::fabs(ref[i].val_loss));
    }
  }
}

TEST_CASE("zt-mlp rejects a global batch that the ranks cannot share") {
  auto r = run_command(mpirun_prefix(4) + " " + bin_dir() + "/zt-mlp --steps 2 --batch-size 30");
  CHECK(r.run.exit_code != 0);
  CHECK(r.run.output.find("--batch-size 30 is the global batch and must be divisible by the number of "
                          "data-parallel ranks, 4") != std::string::npos);
}

TEST_CASE("the fault probe completes a collective when no rank fails") {
  auto r = run_command(mpirun_prefix(2) + " " + bin_dir() + "/zt_fault_probe ok");
  CHECK_MESSAGE(r.run.exit_code == 0, r.run.output);
  CHECK(r.run.output.find("sum 2") != std::string::npos);
}

TEST_CASE("a killed rank ends the whole job with a clear message within the timeout") {
  // Rank 1 raises SIGKILL on itself while rank 0 waits in an all_reduce. mpirun sees the death
  // and ends the job; the watchdog (3 s here) would end it otherwise.
  auto r = run_command(mpirun_prefix(2) + " -x ZT_COMM_TIMEOUT=3 " + bin_dir() + "/zt_fault_probe kill");
  MESSAGE("killed rank: job ended after ", r.seconds, " s");
  CHECK(r.run.exit_code != 0);
  CHECK(r.seconds < 3 + 20);
  const bool explained = r.run.output.find("exited on signal 9") != std::string::npos ||
                         r.run.output.find("did not complete within 3 s") != std::string::npos;
  CHECK_MESSAGE(explained, r.run.output);
}

TEST_CASE("a hung collective trips the watchdog, which names the operation and aborts the job") {
  auto r = run_command(mpirun_prefix(2) + " -x ZT_COMM_TIMEOUT=3 " + bin_dir() + "/zt_fault_probe hang");
  MESSAGE("hung rank: job ended after ", r.seconds, " s");
  CHECK(r.run.exit_code != 0);
  CHECK(r.seconds >= 3);
  CHECK(r.seconds < 3 + 20);  // the sleeping rank would have slept 120 s
  CHECK_MESSAGE(r.run.output.find("all_reduce sum (f32, 4 elements) on communicator 'world' (rank 0 of 2) "
                                  "did not complete within 3 s") != std::string::npos,
                r.run.output);
}

TEST_CASE("zt-run --dry-run prints the mpirun command for DeepSpeed's launcher flags") {
  const auto hostfile = std::filesystem::temp_directory_path() / "zt_run_hosts";
  std::ofstream(hostfile) << "# two nodes\nnode1 slots=4\nnode2 slots=4  # second\n";
  const std::string zt_run = bin_dir() + "/zt-run --dry-run --hostfile " + hostfile.string();
  const std::string head = "mpirun " + root_flag() + "--bind-to none ";
  struct Case {
    std::string flags, expected;
  };
  const std::vector<Case> cases = {
      {"", head + "-np 8 -H node1:4,node2:4 train --lr 0.1 'a b'\n"},
      {"--include node1:0,1@node2:3",
       head + "-np 2 -H node1:2 env CUDA_VISIBLE_DEVICES=0,1 train --lr 0.1 'a b' : -np 1 -H node2:1 env "
              "CUDA_VISIBLE_DEVICES=3 train --lr 0.1 'a b'\n"},
      {"--exclude node1 --master_addr 10.0.0.1 --master_port 29500",
       "mpirun " + root_flag() + "--bind-to none -x MASTER_ADDR=10.0.0.1 -x MASTER_PORT=29500 -np 4 -H node2:4 "
       "train --lr 0.1 'a b'\n"},
      {"--num_nodes 1 --num_gpus 2",
       head + "-np 2 -H node1:2 env CUDA_VISIBLE_DEVICES=0,1 train --lr 0.1 'a b'\n"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.flags);
    auto r = run_command(zt_run + " " + c.flags + " train --lr 0.1 'a b'");
    CHECK(r.run.exit_code == 0);
    CHECK(r.run.output == c.expected);
  }
}

TEST_CASE("zt-run rejects conflicting or impossible resource requests") {
  const auto hostfile = std::filesystem::temp_directory_path() / "zt_run_hosts_errors";
  std::ofstream(hostfile) << "node1 slots=2\n";
  const std::string zt_run = bin_dir() + "/zt-run --dry-run --hostfile " + hostfile.string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--include node1 --exclude node1 p", "--include and --exclude cannot be used together"},
      {"--include node9 p", "host 'node9' is not among the hosts (node1)"},
      {"--include node1:5 p", "slot 5 of host 'node1' does not exist (it has 2 slots)"},
      {"--num_gpus 3 p", "--num_gpus 3: host 'node1' has only 2 slots"},
      {"--num_gpus 1 --include node1 p", "cannot be combined"},
      {"", "expected a program to launch"},
  };
  for (const auto& [flags, message] : cases) {
    CAPTURE(flags);
    auto r = run_command(zt_run + " " + flags);
    CHECK(r.run.exit_code != 0);
    CHECK_MESSAGE(r.run.output.find(message) != std::string::npos, r.run.output);
  }
  std::ofstream(hostfile) << "node1 slots=two\n";
  auto bad = run_command(zt_run + " p");
  CHECK(bad.run.output.find(hostfile.string() + ":1 slots: expected a non-negative integer") != std::string::npos);
}

TEST_CASE("zt-run launches the program on the requested number of ranks") {
  // On a CPU machine --num_gpus 2 starts two ranks on this host.
  // CUDA_VISIBLE_DEVICES= hides any GPUs, so this runs as on a CPU machine everywhere.
  auto r = run_command("CUDA_VISIBLE_DEVICES= " + bin_dir() + "/zt-run --num_gpus 2 --launcher_args '--oversubscribe -x OMP_NUM_THREADS=1' " +
                       bin_dir() + "/zt_fault_probe ok");
  CHECK_MESSAGE(r.run.exit_code == 0, r.run.output);
  CHECK(r.run.output.find("sum 2") != std::string::npos);
  CHECK(r.run.output.find("zt-run: mpirun") != std::string::npos);
}
