// zt-membench under mpirun -np 2: per-rank model-state bytes of ZeRO stages 0-3 (and with --offload,
// their device, host and disk bytes) match the ZeRO and ZeRO-Offload formulas, shrink with the
// stage, and land in the CSV and SVG; --estimate runs without MPI.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "apps/csv_table.h"
#include "apps/mpi_runner.h"
#include "core/backend.h"

using zt::test::bin_dir;
using zt::test::mpirun_prefix;
using zt::test::run_command;

namespace {

std::vector<zt::test::CsvRow> read_csv(const std::filesystem::path& path) { return zt::test::read_csv_table(path); }

double num(const std::map<std::string, std::string>& row, const std::string& column) {
  REQUIRE(row.count(column) == 1);
  return std::stod(row.at(column));
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// One row of --max-model's table: offload, heads, width, parameters, peak GiB, trials | predicted width.
struct MaxModelRow {
  int64_t heads = -1, width = 0, trials = 0, predicted_width = -1;
  double params = 0, peak_gib = -1;
};

MaxModelRow max_model_row(const std::string& out, const std::string& offload) {
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream in(line);
    std::string mode, bar;
    MaxModelRow r;
    if (in >> mode && mode == offload && in >> r.heads >> r.width >> r.params >> r.peak_gib >> r.trials >> bar &&
        bar == "|" && in >> r.predicted_width)
      return r;
  }
  return MaxModelRow{};
}

}  // namespace

TEST_CASE("zt-membench on 2 ranks: stages 0-3 match the ZeRO formula and shrink with the stage") {
  const auto dir = std::filesystem::temp_directory_path();
  const auto csv = dir / "zt_membench_np2.csv", svg = dir / "zt_membench_np2.svg";
  std::filesystem::remove(csv);
  std::filesystem::remove(svg);
  // 4 x Linear(500, 500): Psi = 4 * (250000 + 500) = 1,002,000 parameters.
  auto r = run_command(mpirun_prefix(2) + " " + bin_dir() + "/zt-membench --width 500 --depth 4 --steps 2 "
                       "--stages 0,1,2,3 --csv " + csv.string() + " --svg " + svg.string());
  REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
  CHECK(r.seconds < 20);
  CHECK(r.run.output.find("ZeRO stage 3 (measured after the step") != std::string::npos);

  const auto rows = read_csv(csv);
  REQUIRE(rows.size() == 8);
  std::map<int, double> measured;  // stage -> rank 0's model states
  for (int stage : {0, 1, 2, 3}) {
    for (int rank : {0, 1}) {
      CAPTURE(stage);
      CAPTURE(rank);
      const auto& row = rows.at(size_t(stage * 2 + rank));
      REQUIRE(num(row, "stage") == stage);
      REQUIRE(num(row, "rank") == rank);
      CHECK(num(row, "params") == 1002000);
      // f32 formula with N = 2: 16Psi, 8Psi + 8Psi/2 = 12Psi, 4Psi + 12Psi/2 = 10Psi, 16Psi/2 = 8Psi.
      const double psi = 1002000, factor[] = {16, 12, 10, 8};
      CHECK(num(row, "predicted_model_state_bytes") == doctest::Approx(factor[stage] * psi));
      const double m = num(row, "measured_model_state_bytes");
      CHECK(std::fabs(m / (factor[stage] * psi) - 1) < 0.05);
      CHECK(num(row, "parameters_bytes") + num(row, "gradients_bytes") + num(row, "optimizer_state_bytes") ==
            doctest::Approx(m));
      if (rank == 0) measured[stage] = m;
    }
  }
  CHECK(measured[3] < measured[2]);
  CHECK(measured[2] < measured[1]);
  CHECK(measured[1] < measured[0]);

  std::ifstream in(svg);
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  CHECK(s.rfind("<svg", 0) == 0);
  CHECK(count(s, "<g class=\"stage\"") == 4);
  CHECK(s.find("</svg>") != std::string::npos);
}

TEST_CASE("zt-membench --estimate prints the four predictions without MPI ranks") {
  auto r = run_command(bin_dir() + "/zt-membench --estimate --width 500 --depth 4 --ranks 2 --batch 8");
  REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
  // Psi = 1,002,000; MiB = 2^20 bytes: 16Psi, 12Psi, 10Psi, 8Psi; activations 8*500*4*4*2 = 128000 bytes.
  CHECK(r.run.output.find("stage 0: model states 15.289 MiB") != std::string::npos);
  CHECK(r.run.output.find("stage 1: model states 11.467 MiB") != std::string::npos);
  CHECK(r.run.output.find("stage 2: model states 9.556 MiB") != std::string::npos);
  CHECK(r.run.output.find("stage 3: model states 7.645 MiB") != std::string::npos);
  CHECK(r.run.output.find("= 0.122 MiB") != std::string::npos);
}

TEST_CASE("zt-membench rejects a stage it does not know") {
  auto r = run_command(bin_dir() + "/zt-membench --estimate --stages 0,4");
  CHECK(r.run.exit_code != 0);
  CHECK(r.run.output.find("--stages: expected a comma-separated list of ZeRO stages 0..3, found '4'") !=
        std::string::npos);
}

// Note [zt-membench measurements], offload: per stage, offload_optimizer cpu and nvme beside none.
// The model states split into device, host and disk bytes, each near its ZeRO-Offload prediction.
TEST_CASE("zt-membench --offload none,cpu,nvme on 2 ranks: device, host and disk bytes match the predictions") {
  const auto dir = std::filesystem::temp_directory_path();
  const auto csv = dir / "zt_membench_offload_np2.csv", nvme = dir / "zt_membench_nvme";
  std::filesystem::remove(csv);
  std::filesystem::create_directories(nvme);
  // Psi = 1,002,000, N = 2: shards of about 501,000 elements, sub-groups of 100,000 (6 per shard).
  auto r = run_command(mpirun_prefix(2) + " " + bin_dir() + "/zt-membench --width 500 --depth 4 --steps 2 "
                       "--stages 1,2,3 --offload none,cpu,nvme --nvme-path " + nvme.string() +
                       " --sub-group-size 100000 --buffer-count 3 --csv " + csv.string());
  REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
  CHECK(r.run.output.find("ZeRO stage 2, offload_optimizer nvme (measured") != std::string::npos);
  const auto rows = read_csv(csv);
  REQUIRE(rows.size() == 18);  // 3 stages x 3 modes x 2 ranks
  const double psi = 1002000, shard = psi / 2, k = 4;
  std::map<std::string, double> device;  // "<stage> <offload>" -> rank 0's device bytes
  for (const auto& row : rows) {
    const int stage = int(num(row, "stage"));
    const std::string offload = row.at("offload");
    CAPTURE(stage);
    CAPTURE(offload);
    CAPTURE(row.at("rank"));
    const double dev = num(row, "device_bytes"), host = num(row, "host_bytes"), disk = num(row, "disk_bytes");
    CHECK(dev + host == doctest::Approx(num(row, "measured_model_state_bytes")).epsilon(1e-6));
    CHECK(std::fabs(num(row, "ratio") - 1) < 0.05);
    if (offload == "none") {
      CHECK(host == 0);
      CHECK(disk == 0);
    } else {
      // Device: parameters and gradients only (stage 1: both whole, 2: the parameters alone, their
      // gradients streamed to the host every micro-step, 3: both sharded).
      const double want_device = stage == 1 ? 2 * k * psi : stage == 2 ? k * psi : 2 * k * shard;
      CHECK(num(row, "predicted_device_bytes") == doctest::Approx(want_device));
      CHECK(std::fabs(dev / want_device - 1) < 0.01);
      // Host: cpu 12Psi/N + kPsi/N (the gradient in the compute dtype); nvme 3 buffers of 12 x
      // 100,000 bytes + kPsi/N.
      const double want_host = offload == "cpu" ? 12 * shard + k * shard : 3 * 12 * 100000 + k * shard;
      CHECK(num(row, "predicted_host_bytes") == doctest::Approx(want_host));
      CHECK(std::fabs(host / want_host - 1) < 0.01);
      // Disk: 6 sub-groups of 1.2 MB on nvme.
      const double want_disk = offload == "nvme" ? 6 * 12 * 100000 : 0;
      CHECK(num(row, "predicted_disk_bytes") == doctest::Approx(want_disk));
      CHECK(std::fabs(disk - want_disk) <= 0.01 * want_disk);
    }
    if (row.at("rank") == "0") device[std::to_string(stage) + " " + offload] = dev;
  }
  for (int stage : {1, 2, 3}) {
    CAPTURE(stage);
    const std::string s = std::to_string(stage);
    CHECK(device[s + " cpu"] < device[s + " none"]);  // the masters and moments left the device
    CHECK(device[s + " nvme"] == device[s + " cpu"]);
  }
  // At N = 2 stages 2 and 3 keep kΨ each: the parameters (2; the gradients are on the host) or
  // the shards of both (3, with a little more padding).
  CHECK(device["3 cpu"] == doctest::Approx(device["2 cpu"]).epsilon(0.01));
  CHECK(device["2 cpu"] < device["1 cpu"]);
  std::filesystem::remove_all(nvme);
}

TEST_CASE("zt-membench --estimate --offload prints device, host and disk predictions; nvme needs a path") {
  auto r = run_command(bin_dir() + "/zt-membench --estimate --width 500 --depth 4 --ranks 2 --stages 0,2 "
                       "--offload none,cpu,nvme --nvme-path /tmp --sub-group-size 1000000");
  REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
  // Stage 2, k = 4: device 4Psi = 3.822 MiB (the gradients stream to the host); host cpu 16Psi/2 =
  // 7.645 MiB; nvme: one buffer of the whole shard, 12Psi/2 + 4Psi/2, on disk 12Psi/2 = 5.733 MiB.
  CHECK(r.run.output.find("stage 2, offload cpu: device 3.822 MiB") != std::string::npos);
  CHECK(r.run.output.find("host 7.645 MiB, disk 0.000 MiB") != std::string::npos);
  CHECK(r.run.output.find("stage 2, offload nvme: device 3.822 MiB") != std::string::npos);
  CHECK(r.run.output.find("host 7.645 MiB, disk 5.733 MiB") != std::string::npos);
  CHECK(r.run.output.find("stage 0, offload") == std::string::npos);  // offload needs stage >= 1
  auto bad = run_command(bin_dir() + "/zt-membench --estimate --offload nvme");
  CHECK(bad.run.exit_code != 0);
  CHECK(bad.run.output.find("--offload nvme needs --nvme-path DIR") != std::string::npos);
}

TEST_CASE("zt-membench --model gpt on 2 ranks: a GPT's model states match the formula at every stage") {
  const auto csv = std::filesystem::temp_directory_path() / "zt_membench_gpt.csv";
  const auto r = run_command(mpirun_prefix(2) + " " + bin_dir() +
                             "/zt-membench --model gpt --width 128 --depth 2 --heads 4 --context 32 --batch 2 "
                             "--dtype bf16 --csv " + csv.string());
  REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
  CHECK(r.run.output.find("GPT 2 layers, 4 heads, 128 wide") != std::string::npos);
  const auto rows = read_csv(csv);
  REQUIRE(rows.size() == 8);  // stages 0-3 x 2 ranks
  for (const auto& row : rows) {
    CAPTURE(row.at("stage"));
    // Psi = V C + T C + L (12 C^2 + 13 C) + 2 C = 256*128 + 32*128 + 2*(12*128^2 + 13*128) + 2*128.
    CHECK(num(row, "params") == 433664);
    CHECK(num(row, "measured_model_state_bytes") ==
          doctest::Approx(num(row, "predicted_model_state_bytes")).epsilon(0.05));
  }
  std::filesystem::remove(csv);
}

// --max-model on the CPU, with ZT_HOST_MEMORY_LIMIT standing in for a machine of 200 MiB: the
// search starts at the prediction, finds the first size that runs out of memory, and reports the
// largest that trains; that size's trial fits under the limit, the next size up did not. The
// doubling search from 1 head finds the same size in more trials.
TEST_CASE("zt-membench --max-model finds the largest GPT that trains under a memory limit") {
  const std::string command = "ZT_HOST_MEMORY_LIMIT=200M OMP_NUM_THREADS=1 " + bin_dir() +
                              "/zt-membench --model gpt --max-model --depth 2 --context 32 --vocab 256 --batch 2 "
                              "--dtype bf16 --offload none --max-heads 64";
  const auto r = run_command(command);
  REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
  const std::string& out = r.run.output;
  CAPTURE(out);
  CHECK(out.find(": out of memory") != std::string::npos);  // the search reached the limit
  CHECK(out.find("each trial 3 steps") != std::string::npos);  // --max-model-steps' default
  CHECK(out.find("host memory limit 0.20 GiB (ZT_HOST_MEMORY_LIMIT)") != std::string::npos);
  const MaxModelRow row = max_model_row(out, "none");
  REQUIRE(row.heads > 0);
  CHECK(row.peak_gib * 1024 <= 200);  // the largest trained within the limit
  // The size after it ran out of memory in the search.
  CHECK(out.find("none: " + std::to_string(row.heads + 1) + " heads (" + std::to_string((row.heads + 1) * 64) +
                 " wide") != std::string::npos);
  REQUIRE(row.predicted_width > 0);  // the limit is the device memory of the prediction
  CHECK(out.find("anchored at the predicted " + std::to_string(row.predicted_width / 64) + " heads") !=
        std::string::npos);
  CHECK(out.find("none: " + std::to_string(row.trials) + " trials") != std::string::npos);

  const auto doubling = run_command(command + " --max-model-search doubling");
  REQUIRE_MESSAGE(doubling.run.exit_code == 0, doubling.run.output);
  CAPTURE(doubling.run.output);
  const MaxModelRow from_one = max_model_row(doubling.run.output, "none");
  CHECK(from_one.heads == row.heads);
  CHECK(doubling.run.output.find("doubling from 1 heads") != std::string::npos);
  CHECK(doubling.run.output.find("none: 1 heads (64 wide") != std::string::npos);
  CHECK(row.trials < from_one.trials);
}

// --host-memory is the trials' host limit too (Note [zt-membench max model]): with no
// ZT_HOST_MEMORY_LIMIT it stops the search where the variable would, with an out-of-memory error
// at the allocation past it, not by exhausting the machine.
TEST_CASE("zt-membench --max-model: --host-memory limits the trials' host allocations") {
  const auto r = run_command("OMP_NUM_THREADS=1 " + bin_dir() +
                             "/zt-membench --model gpt --max-model --depth 2 --context 32 --vocab 256 --batch 2 "
                             "--max-model-steps 1 --dtype bf16 --offload cpu --host-memory 120M --min-heads 4 "
                             "--max-heads 32");
  REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
  const std::string& out = r.run.output;
  CAPTURE(out);
  CHECK(out.find("host memory limit 0.12 GiB (--host-memory)") != std::string::npos);
  // The CPU allocator's error, or the pinned host allocator's where a CUDA device pins the
  // offloaded buffers: both count against the same host limit.
  CHECK(out.find(" allocator: out of memory allocating") != std::string::npos);
  CHECK(out.find("host memory limit of 125829120 bytes") != std::string::npos);
  const MaxModelRow row = max_model_row(out, "cpu");
  REQUIRE(row.heads >= 4);
  CHECK(row.heads < 32);
  CHECK(row.peak_gib * 1024 <= 120);
  CHECK(out.find("cpu: " + std::to_string(row.heads + 1) + " heads (" + std::to_string((row.heads + 1) * 64) +
                 " wide, ") != std::string::npos);
}

// The nvme search with sub-groups far smaller than the model: only the swap buffers and the fp32
// gradient stay in memory, so under the same limit it trains a larger GPT than cpu offload, whose
// host holds all 16 bytes per parameter.
TEST_CASE("zt-membench --max-model: nvme with small sub-groups trains a larger GPT than cpu offload") {
  const auto nvme = std::filesystem::temp_directory_path() / "zt_membench_max_nvme";
  std::filesystem::create_directories(nvme);
  const auto r = run_command("ZT_HOST_MEMORY_LIMIT=200M OMP_NUM_THREADS=1 " + bin_dir() +
                             "/zt-membench --model gpt --max-model --depth 2 --context 32 --vocab 256 --batch 2 "
                             "--max-model-steps 2 --dtype bf16 --offload cpu,nvme --sub-group-size 1000000 "
                             "--nvme-path " + nvme.string() + " --max-heads 64");
  REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
  CAPTURE(r.run.output);
  const MaxModelRow cpu = max_model_row(r.run.output, "cpu"), disk = max_model_row(r.run.output, "nvme");
  CHECK(cpu.heads > 0);
  CHECK(disk.heads > cpu.heads);
  CHECK(r.run.output.find("nvme: ") != std::string::npos);
  CHECK(r.run.output.find(" GiB free on '" + nvme.string() + "'") != std::string::npos);
  std::filesystem::remove_all(nvme);
}

// A disk too small for the state: a 4 MiB tmpfs, mounted in a user and mount namespace of its own
// (unshare -rm; skipped where the machine forbids them). The prediction counts 12 bytes per
// parameter against the disk's free space, and the trial past it fails with "no space left on"
// when its state file is reserved, which the search takes for "does not fit", not for an error.
TEST_CASE("zt-membench --max-model: nvme counts the disk, and a full disk does not fit") {
  if (run_command("unshare -rm true").run.exit_code != 0) {
    MESSAGE("skipped: unshare -rm (user and mount namespaces) is not allowed here");
    return;
  }
  const auto dir = std::filesystem::temp_directory_path() / "zt_membench_small_disk";
  std::filesystem::create_directories(dir);
  const std::string run = "OMP_NUM_THREADS=1 " + bin_dir() +
                          "/zt-membench --model gpt --max-model --depth 2 --context 32 --vocab 256 --batch 2 "
                          "--max-model-steps 1 --dtype bf16 --offload nvme --sub-group-size 1000000 --max-heads 8 "
                          "--host-memory 1G --nvme-path " + dir.string();
  const auto r = run_command("unshare -rm sh -c 'mount -t tmpfs -o size=4M zt_small_disk " + dir.string() +
                             " && " + run + "'");
  std::filesystem::remove_all(dir);
  REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
  const std::string& out = r.run.output;
  CAPTURE(out);
  CHECK(out.find("nvme: 0.00 GiB free on '" + dir.string() + "'") != std::string::npos);
  // 1 head: 118,528 parameters, 1.4 MB of state; 2 heads: 433,664, 5.2 MB > 4 MiB.
  CHECK(out.find("nvme: predicted 1 heads") != std::string::npos);
  CHECK(out.find("bound by disk") != std::string::npos);
  CHECK(out.find("nvme: 2 heads (128 wide, 0.4M parameters): out of disk") != std::string::npos);
  CHECK(out.find("no space left on '" + dir.string() + "': needed ") != std::string::npos);
  const MaxModelRow row = max_model_row(out, "nvme");
  CHECK(row.heads == 1);
  CHECK(row.trials == 2);
  CHECK(out.find("2 heads, out of disk") != std::string::npos);  // the table's first that did not fit
}

// --max-model-ranks 2 (the 2-GPU stage-3 search, here on the CPU): every trial is a 2-rank job
// of its own started by the launcher, each rank under half the host limit; a rank that runs out
// of memory reports it and the launcher ends the job, which the search takes for "does not fit".
TEST_CASE("zt-membench --max-model --max-model-ranks 2 runs each trial as a job of 2 ranks") {
  const std::string command = "ZT_HOST_MEMORY_LIMIT=200M OMP_NUM_THREADS=1 " + bin_dir() +
                              "/zt-membench --model gpt --max-model --depth 2 --context 32 --vocab 256 --batch 2 "
                              "--dtype bf16 --offload none --max-heads 64 --max-model-stage 3 --max-model-ranks 2 "
                              "--max-model-launcher \"" + mpirun_prefix(2) + "\"";
  const auto r = run_command(command);
  REQUIRE_MESSAGE(r.run.exit_code == 0, r.run.output);
  const std::string& out = r.run.output;
  CAPTURE(out);
  CHECK(out.find("each trial a job of 2 ranks (" + mpirun_prefix(2) + "), each rank under 0.10 GiB") !=
        std::string::npos);
  CHECK(out.find("ZeRO stage 3 over 2 ranks, device cpu") != std::string::npos);
  CHECK(out.find(": out of memory, peak") != std::string::npos);  // the search reached the limit
  CHECK(out.find("(rank ") != std::string::npos);                 // the failing rank's own error
  const MaxModelRow row = max_model_row(out, "none");
  REQUIRE(row.heads > 0);
  CHECK(row.peak_gib * 1024 <= 100);  // each rank within its half of the limit
  CHECK(out.find("none: " + std::to_string(row.heads + 1) + " heads (" + std::to_string((row.heads + 1) * 64) +
                 " wide") != std::string::npos);

  // A launcher that starts no ranks: no verdicts, so the search stops with the job's output.
  const auto bad = run_command(bin_dir() + "/zt-membench --model gpt --max-model --depth 2 --context 32 --vocab 256 "
                               "--batch 2 --max-model-stage 3 --max-model-ranks 2 --max-model-launcher false");
  CHECK(bad.run.exit_code != 0);
  CHECK(bad.run.output.find("exited with status 1 and 0 of 2 ranks reported") != std::string::npos);
}

TEST_CASE("zt-membench --max-model needs --model gpt and one process") {
  const auto r = run_command(bin_dir() + "/zt-membench --max-model --model mlp");
  CHECK(r.run.exit_code != 0);
  CHECK(r.run.output.find("--max-model searches GPT sizes: pass --model gpt") != std::string::npos);
}

TEST_CASE("zt-membench --device names a device it cannot use") {
  const auto bad = run_command(bin_dir() + "/zt-membench --device tpu");
  CHECK(bad.run.exit_code != 0);
  CHECK(bad.run.output.find("bad device 'tpu'") != std::string::npos);
  if (zt::has_backend(zt::DeviceType::CUDA)) return;  // a GPU machine measures its GPU
  const auto none = run_command(bin_dir() + "/zt-membench --device cuda --width 64 --depth 2");
  CHECK(none.run.exit_code != 0);
  CHECK(none.run.output.find("--device cuda: not available in this build or on this machine") != std::string::npos);
}
