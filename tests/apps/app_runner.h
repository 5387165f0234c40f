// Runs a built app (from ZT_BIN_DIR, set by CTest) and captures its exit code and output.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace zt::test {

struct AppRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

inline std::string bin_dir() {
  const char* d = std::getenv("ZT_BIN_DIR");
  return d ? d : "";
}

// The source tree (ZT_SOURCE_DIR, set by CTest), for the configs/ the tests run apps with.
inline std::string source_dir() {
  const char* d = std::getenv("ZT_SOURCE_DIR");
  return d ? d : ".";
}

inline AppRun run_app(const std::string& app, const std::string& args) {
  AppRun r;
  const std::string cmd = bin_dir() + "/" + app + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), int(buf.size()), pipe)) r.output += buf.data();
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The number after `key` in text (e.g. "held-out accuracy " -> 96.1), or -1 when absent.
inline double number_after(const std::string& text, const std::string& key) {
  const auto pos = text.rfind(key);
  if (pos == std::string::npos) return -1;
  return std::atof(text.c_str() + pos + key.size());
}

}  // namespace zt::test
