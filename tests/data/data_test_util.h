// Helpers shared by the data-layer tests: a scratch directory, file writing, error capture.
#pragma once
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/error.h"

namespace zt::test {

// A fresh directory under the system temp dir, removed when the object goes out of scope.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("zt_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(out.good());
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The message of the zt::Error fn throws; fails the test when it throws nothing.
template <typename Fn>
std::string error_message(Fn&& fn) {
  try {
    fn();
  } catch (const zt::Error& e) {
    return e.what();
  }
  FAIL("expected a zt::Error, but nothing was thrown");
  return "";
}

// The directory named by ZT_DATA_DIR, or "" (with a MESSAGE saying the test is skipped).
inline std::string data_dir_or_skip(const char* what) {
  const char* dir = std::getenv("ZT_DATA_DIR");
  if (dir == nullptr || *dir == '\0') {
    MESSAGE("ZT_DATA_DIR is not set: skipping " << std::string(what));
    return "";
  }
  return dir;
}

}  // namespace zt::test
