// zt-config end to end: --check prints each resolved value with its source, bad configs exit
// non-zero with the message, and --docs prints exactly the committed docs/config.md.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

namespace fs = std::filesystem;

fs::path source_dir() {
  if (const char* dir = std::getenv("ZT_SOURCE_DIR")) return dir;
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

// zt-config sits next to this test binary in <build>/bin (ZT_BIN_DIR under ctest).
fs::path tool_path() {
  if (const char* dir = std::getenv("ZT_BIN_DIR")) return fs::path(dir) / "zt-config";
  return fs::read_symlink("/proc/self/exe").parent_path() / "zt-config";
}

struct Run {
  int exit_code = -1;
  std::string out;  // stdout only
  std::string err;  // stderr only
};

Run run_tool(const std::string& args) {
  const fs::path err_file = fs::temp_directory_path() / ("zt_config_test_" + std::to_string(getpid()) + ".err");
  Run r;
  const std::string cmd = tool_path().string() + " " + args + " 2>" + err_file.string();
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), int(buf.size()), pipe)) r.out += buf.data();
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_file);
  std::ostringstream os;
  os << in.rdbuf();
  r.err = os.str();
  fs::remove(err_file);
  return r;
}

}  // namespace

TEST_CASE("zt-config: --check, --docs and errors") {
  // The build makes test_runtime depend on zt-config, so a missing tool is a failure.
  REQUIRE_MESSAGE(fs::exists(tool_path()), "zt-config is not built at " << tool_path().string());
  const std::string mnist = (source_dir() / "configs" / "mnist_ds_config.json").string();
  const Run ok = run_tool("--check " + mnist + " --world-size 2");
  REQUIRE_MESSAGE(ok.exit_code == 0, ok.err);
  CHECK(ok.out.find("valid (data-parallel size 2)") != std::string::npos);
  auto line_of = [&](const std::string& key) {
    const size_t at = ok.out.find("\n" + key + " ");
    return at == std::string::npos ? std::string() : ok.out.substr(at + 1, ok.out.find('\n', at + 1) - at - 1);
  };
  CHECK(line_of("train_batch_size").ends_with("= 128  (config)"));
  CHECK(line_of("train_micro_batch_size_per_gpu").ends_with("= 64  (derived)"));
  CHECK(line_of("gradient_accumulation_steps").ends_with("= 1  (default)"));
  CHECK(line_of("optimizer.type").ends_with("= \"Adam\"  (config)"));
  CHECK(line_of("fp16.hysteresis").ends_with("= 2  (config)"));
  CHECK(line_of("fp16.consecutive_hysteresis").ends_with("= false  (default)"));

  const fs::path bad = fs::temp_directory_path() / ("zt_config_bad_" + std::to_string(getpid()) + ".yaml");
  std::ofstream(bad) << "train_batch_size: 8\nzero_optimization:\n  stgae: 2\n";
  const Run err = run_tool("--check " + bad.string());
  fs::remove(bad);
  CHECK(err.exit_code == 1);
  CHECK(err.err.find("unknown key 'zero_optimization.stgae' (did you mean 'zero_optimization.stage'?)") !=
        std::string::npos);

  const Run docs = run_tool("--docs");
  CHECK(docs.exit_code == 0);
  std::ifstream in(source_dir() / "docs" / "config.md", std::ios::binary);
  std::ostringstream committed;
  committed << in.rdbuf();
  CHECK(docs.out == committed.str());

  const Run nothing = run_tool("");
  CHECK(nothing.exit_code == 1);
  CHECK(nothing.err.find("give --check FILE or --docs") != std::string::npos);
}
