// zt-mlp runs for the checkpoint tests: the app on N ranks, the losses of its CSV as printed
// (%.17g, so comparing the text compares every bit), and fresh scratch paths.
#pragma once
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/app_runner.h"
#include "apps/mpi_runner.h"

namespace zt::test {

struct MlpRow {
  int64_t step = 0;
  std::string loss;  // as printed (%.17g), compared as text for bitwise equality
};

inline std::vector<MlpRow> mlp_csv_rows(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  REQUIRE_MESSAGE(line.rfind("step,epoch,loss,", 0) == 0, "unexpected CSV header in ", path.string(), ": ", line);
  std::vector<MlpRow> rows;
  while (std::getline(in, line)) {
    const auto a = line.find(','), b = line.find(',', a + 1), c = line.find(',', b + 1);
    rows.push_back({std::stoll(line.substr(0, a)), line.substr(b + 1, c - b - 1)});
  }
  return rows;
}

// zt-mlp with `flags`, on `ranks` processes (1: no mpirun).
inline AppRun run_mlp(int ranks, const std::string& flags) {
  const std::string app = bin_dir() + "/zt-mlp " + flags;
  return run_command(ranks == 1 ? app : mpirun_prefix(ranks) + " " + app).run;
}

// <tmp>/<prefix><name>, removed if it exists.
inline std::filesystem::path fresh_scratch(const std::string& prefix, const std::string& name) {
  const std::filesystem::path p = std::filesystem::temp_directory_path() / (prefix + name);
  std::filesystem::remove_all(p);
  return p;
}

}  // namespace zt::test
