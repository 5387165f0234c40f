// NvmeSwapper: the per-rank folder and file, the I/O thread pool, and pread/pwrite loops that
// report short transfers (Note [NVMe swapper] in zero/nvme_swapper.h).
#include "zero/nvme_swapper.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <new>
#include <thread>
#include <utility>

#include "core/error.h"

namespace zt {

// ---- HostBuffer ----

HostBuffer::HostBuffer(Allocator& allocator, int64_t bytes, int64_t alignment, const std::string& what,
                       const std::string& advice, MemoryCategory category)
    : allocator_(&allocator), category_(category), bytes_(bytes) {
  ZT_CHECK(bytes > 0 && alignment > 0, "HostBuffer: expected positive bytes and alignment, found ", bytes, " and ",
           alignment);
  held_ = size_t(bytes + alignment);  // room to align any returned address
  try {
    base_ = allocator.allocate(held_, category);
  } catch (const std::exception& e) {
    ZT_FAIL("out of host memory: cannot allocate ", bytes, " bytes (", double(bytes) / double(1 << 30), " GiB) for ",
            what, "; ", advice, " (allocator: ", e.what(), ")");
  }
  const uintptr_t a = uintptr_t(alignment), p = reinterpret_cast<uintptr_t>(base_);
  aligned_ = reinterpret_cast<void*>((p + a - 1) / a * a);
}

HostBuffer::~HostBuffer() {
  if (base_) allocator_->deallocate(base_, held_, category_);
}

HostBuffer::HostBuffer(HostBuffer&& other) noexcept { *this = std::move(other); }

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    if (base_) allocator_->deallocate(base_, held_, category_);
    allocator_ = other.allocator_;
    category_ = other.category_;
    base_ = std::exchange(other.base_, nullptr);
    aligned_ = std::exchange(other.aligned_, nullptr);
    held_ = std::exchange(other.held_, 0);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

// ---- IoRequest ----

void IoRequest::wait() const {
  for (const auto& b : blocks_) b.wait();  // every block finishes before any error surfaces
  for (const auto& b : blocks_) b.get();
}

void IoRequest::drain() const noexcept {
  for (const auto& b : blocks_) b.wait();
}

bool IoRequest::done() const {
  for (const auto& b : blocks_)
    if (b.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return false;
  return true;
}

// ---- the I/O thread pool ----

// FIFO of tasks run by a fixed set of threads; the destructor runs what is queued, then joins.
class NvmeSwapper::IoPool {
 public:
  explicit IoPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  ~IoPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
  }
  std::shared_future<void> submit(std::function<void()> fn) {
    std::packaged_task<void()> task(std::move(fn));
    std::shared_future<void> done = task.get_future().share();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
    }
    ready_.notify_one();
    return done;
  }

 private:
  void work() {
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();  // an exception is stored in the task's future
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::packaged_task<void()>> queue_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

// ---- the swapper ----

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// The per-rank folder: nvme_path must already exist as a writable directory.
std::string make_rank_folder(const std::string& nvme_path, int rank) {
  ZT_CHECK(!nvme_path.empty(), "NvmeSwapper: nvme_path is empty (expected an existing directory on a fast local "
                               "disk for the offloaded optimizer state)");
  struct stat st {};
  if (::stat(nvme_path.c_str(), &st) != 0) {
    const int err = errno;
    ZT_CHECK(err != ENOENT, "NvmeSwapper: nvme_path '", nvme_path,
             "' does not exist (expected an existing directory on a fast local disk)");
    ZT_FAIL("NvmeSwapper: nvme_path '", nvme_path, "' cannot be used: ", errno_text(err),
            " (expected an existing, writable directory)");
  }
  ZT_CHECK(S_ISDIR(st.st_mode), "NvmeSwapper: nvme_path '", nvme_path, "' is not a directory");
  std::string folder =
      (std::filesystem::path(nvme_path) / ("zt_offload_rank" + std::to_string(rank) + "_XXXXXX")).string();
  if (::mkdtemp(folder.data()) == nullptr)
    ZT_FAIL("NvmeSwapper: cannot create a folder in nvme_path '", nvme_path, "': ", errno_text(errno),
            " (expected a writable directory)");
  return folder;
}

std::string free_space_text(const std::string& path) {
  struct statvfs fs {};
  if (::statvfs(path.c_str(), &fs) != 0) return "free space unknown";
  return std::to_string(int64_t(fs.f_bavail) * int64_t(fs.f_frsize)) + " bytes free there";
}

// pread/pwrite until `bytes` moved; a short transfer (end of file, full disk) is an error.
void transfer(bool write, int fd, char* data, int64_t bytes, int64_t offset, const std::string& path,
              int64_t chunk) {
  int64_t moved = 0;
  while (moved < bytes) {
    const ssize_t n = write ? ::pwrite(fd, data + moved, size_t(bytes - moved), offset + moved)
                            : ::pread(fd, data + moved, size_t(bytes - moved), offset + moved);
    const int err = n < 0 ? errno : 0;
    if (err == EINTR) continue;
    // A write that cannot go on for want of space (a file system without a reservation, a quota).
    if (write && (n == 0 || err == ENOSPC || err == EDQUOT))
      ZT_FAIL("NvmeSwapper: no space left on '", path, "': needed ", bytes, " bytes to write chunk ", chunk,
              " at offset ", offset, ", wrote ", moved, " (", free_space_text(path), ")");
    const char* verb = write ? "writing" : "reading";
    if (n < 0)
      ZT_FAIL("NvmeSwapper: ", verb, " chunk ", chunk, " (", bytes, " bytes at offset ", offset, ") of '", path,
              "' failed after ", moved, " bytes: ", errno_text(err));
    if (n == 0)
      ZT_FAIL("NvmeSwapper: reading chunk ", chunk, " of '", path, "' moved ", moved, " of the expected ", bytes,
              " bytes at offset ", offset, " (the file is shorter than expected)");
    moved += n;
  }
}

}  // namespace

NvmeSwapper::NvmeSwapper(const NvmeSwapperOptions& options) : options_(options) {
  ZT_CHECK(options.chunk_bytes > 0 && options.chunk_count > 0, "NvmeSwapper: expected chunk_bytes > 0 and ",
           "chunk_count > 0, found ", options.chunk_bytes, " and ", options.chunk_count);
  ZT_CHECK(options.buffer_count >= 1 && options.io_threads >= 1, "NvmeSwapper: expected buffer_count >= 1 and ",
           "io_threads >= 1, found ", options.buffer_count, " and ", options.io_threads);
  slot_bytes_ = (options.chunk_bytes + kAlignment - 1) / kAlignment * kAlignment;
  ZT_CHECK(options.chunk_count <= INT64_MAX / slot_bytes_, "NvmeSwapper: ", options.chunk_count, " chunks of ",
           slot_bytes_, " bytes overflow a file offset");
  Allocator& host = options.host_allocator ? *options.host_allocator : allocator_for(Device::cpu());
  for (int i = 0; i < options.buffer_count; ++i)
    buffers_.emplace_back(host, slot_bytes_, kAlignment,
                          "NVMe swap buffer " + std::to_string(i + 1) + " of " + std::to_string(options.buffer_count),
                          options.advice, options.category);
  folder_ = make_rank_folder(options.nvme_path, options.rank);
  file_path_ = folder_ + "/chunks.bin";
  try {
    open_file();
    pool_ = std::make_unique<IoPool>(options.io_threads);
  } catch (...) {  // the destructor will not run: leave nothing behind
    if (fd_ >= 0) ::close(fd_);
    std::error_code ec;
    std::filesystem::remove_all(folder_, ec);
    throw;
  }
}

void NvmeSwapper::open_file() {
  const int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
  if (options_.direct_io) {
    fd_ = ::open(file_path_.c_str(), flags | O_DIRECT, 0600);
    if (fd_ < 0 && errno == EINVAL) {
      io_note_ = "O_DIRECT refused by the filesystem of '" + options_.nvme_path +
                 "' (EINVAL, e.g. tmpfs): buffered I/O through the page cache";
      ::unlink(file_path_.c_str());
    } else {
      direct_io_ = fd_ >= 0;
    }
  } else {
    io_note_ = "O_DIRECT disabled by the caller: buffered I/O through the page cache";
  }
  if (fd_ < 0) fd_ = ::open(file_path_.c_str(), flags, 0600);
  if (fd_ < 0) ZT_FAIL("NvmeSwapper: cannot create '", file_path_, "': ", errno_text(errno));
  const int64_t total = disk_bytes();
  const std::string free_before = free_space_text(folder_);  // a failed reservation may hold some
  const int err = ::posix_fallocate(fd_, 0, off_t(total));
  if (err == 0) return;
  ZT_CHECK(err != ENOSPC && err != EDQUOT, "NvmeSwapper: no space left on '", options_.nvme_path, "': needed ", total,
           " bytes for the optimizer state file (", options_.chunk_count, " chunks of ", options_.chunk_bytes,
           " bytes), ", free_before, " (point nvme_path at a larger disk, or offload less state)");
  ZT_CHECK(err == EOPNOTSUPP || err == EINVAL, "NvmeSwapper: cannot reserve ", total, " bytes (", options_.chunk_count,
           " chunks of ", options_.chunk_bytes, " bytes) in '", file_path_, "': ", errno_text(err), " (",
           free_space_text(folder_), ")");
  // No reservation on this filesystem: size the file so reads within it never come up short.
  if (::ftruncate(fd_, off_t(total)) != 0)
    ZT_FAIL("NvmeSwapper: cannot size '", file_path_, "' to ", total, " bytes: ", errno_text(errno));
}

NvmeSwapper::~NvmeSwapper() {
  pool_.reset();  // runs queued transfers to the end, so no thread touches the file or buffers after
  if (fd_ >= 0) ::close(fd_);
  std::error_code ec;
  std::filesystem::remove_all(folder_, ec);
}

void* NvmeSwapper::buffer(int i) const {
  ZT_CHECK(i >= 0 && i < buffer_count(), "NvmeSwapper: buffer ", i, " out of range [0, ", buffer_count(), ")");
  return buffers_[size_t(i)].data();
}

int64_t NvmeSwapper::disk_bytes() const { return options_.chunk_count * slot_bytes_; }

int64_t NvmeSwapper::host_bytes() const {
  int64_t total = 0;
  for (const auto& b : buffers_) total += b.held_bytes();
  return total;
}

IoRequest NvmeSwapper::read_async(int64_t chunk, int buffer) { return submit(false, chunk, buffer); }
IoRequest NvmeSwapper::write_async(int64_t chunk, int buffer) { return submit(true, chunk, buffer); }

IoRequest NvmeSwapper::submit(bool write, int64_t chunk, int buffer) {
  ZT_CHECK(chunk >= 0 && chunk < options_.chunk_count, "NvmeSwapper: chunk ", chunk, " out of range [0, ",
           options_.chunk_count, ")");
  char* data = static_cast<char*>(this->buffer(buffer));
  // The whole slot moves (padding included), so O_DIRECT sizes stay aligned.
  std::vector<std::shared_future<void>> blocks;
  for (int64_t done = 0; done < slot_bytes_; done += kIoBlockBytes) {
    const int64_t bytes = std::min(kIoBlockBytes, slot_bytes_ - done), offset = chunk * slot_bytes_ + done;
    blocks.push_back(pool_->submit([=, fd = fd_, path = &file_path_] {
      transfer(write, fd, data + done, bytes, offset, *path, chunk);
    }));
  }
  return IoRequest(std::move(blocks));
}

}  // namespace zt
