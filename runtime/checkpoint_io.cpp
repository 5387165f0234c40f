// File primitives for checkpoints: atomic writes (Note [Atomic writes] in checkpoint_io.h),
// whole-file reads and directory helpers over POSIX calls, every return code checked.
#include "runtime/checkpoint_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace zt {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string parent_of(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

void write_all(int fd, const std::string& bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = errno_text();
      ::close(fd);
      ZT_FAIL("writing ", path, ": ", why, " (", done, " of ", bytes.size(), " bytes written)");
    }
    done += size_t(n);
  }
}

}  // namespace

std::string join_path(const std::string& a, const std::string& b) {
  return (std::filesystem::path(a) / b).string();
}

bool path_exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

size_t file_size(const std::string& path) {
  struct stat st{};
  ZT_CHECK(::stat(path.c_str(), &st) == 0, "stat of ", path, ": ", errno_text());
  return size_t(st.st_size);
}

void fsync_directory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY);
  ZT_CHECK(fd >= 0, "opening directory ", path, " to fsync it: ", errno_text());
  const int rc = ::fsync(fd);
  const std::string why = rc != 0 ? errno_text() : "";
  ::close(fd);
  ZT_CHECK(rc == 0, "fsync of directory ", path, ": ", why);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ZT_CHECK(fd >= 0, "creating ", tmp, ": ", errno_text());
  write_all(fd, bytes, tmp);
  if (::fsync(fd) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    ZT_FAIL("fsync of ", tmp, ": ", why);
  }
  ZT_CHECK(::close(fd) == 0, "closing ", tmp, ": ", errno_text());
  rename_durable(tmp, path);
}

std::string read_file_bytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ZT_CHECK(fd >= 0, "opening ", path, ": ", errno_text());
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    ZT_FAIL("stat of ", path, ": ", why);
  }
  std::string bytes(size_t(st.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = n < 0 ? errno_text() : "unexpected end of file";
      ::close(fd);
      ZT_FAIL("reading ", path, ": ", why, " after ", done, " of ", bytes.size(), " bytes");
    }
    done += size_t(n);
  }
  ::close(fd);
  return bytes;
}

void make_directories(const std::string& path) {
  if (path.empty() || path_exists(path)) return;
  make_directories(parent_of(path));
  if (::mkdir(path.c_str(), 0755) != 0) {
    // Another rank may have created it in the meantime.
    ZT_CHECK(errno == EEXIST, "creating directory ", path, ": ", errno_text());
    return;
  }
  fsync_directory(parent_of(path));
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  ZT_CHECK(!ec, "removing ", path, ": ", ec.message());
}

void rename_durable(const std::string& from, const std::string& to) {
  ZT_CHECK(::rename(from.c_str(), to.c_str()) == 0, "renaming ", from, " to ", to, ": ",
           errno_text());
  fsync_directory(parent_of(to));
}

}  // namespace zt
