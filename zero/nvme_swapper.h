// Asynchronous file I/O for ZeRO-Offload's NVMe tier: fixed-size chunks of optimizer state in
// one file under a per-rank folder of nvme_path, moved between the file and a ring of aligned
// host buffers by a small pool of I/O threads (pread/pwrite, O_DIRECT where the filesystem
// allows it). OffloadedAdamState (zero/offload_store.h) drives it one sub-group per chunk.
//
// Note [NVMe swapper]
// - Layout: chunk k occupies bytes [k * slot, k * slot + chunk_bytes) of `<folder>/chunks.bin`,
//   slot = chunk_bytes rounded up to kAlignment, so every transfer is aligned for O_DIRECT. The
//   whole file is reserved up front (posix_fallocate), so a full disk is reported when the
//   swapper is built, not halfway through a step. Either way the error reads "no space left on
//   '<path>': needed N bytes" (zt-membench --max-model takes it for "does not fit").
// - O_DIRECT bypasses the page cache (the state is far larger than the cache and read once per
//   step). When the filesystem refuses it (tmpfs, some network filesystems) the swapper uses
//   buffered I/O and says why in io_note(); results are the same.
// - A transfer is split into blocks of up to kIoBlockBytes, spread over the I/O threads, so one
//   large chunk keeps several requests in flight on the device.
// - Errors (short reads, a failed write, a full disk) are raised in an I/O thread and rethrown
//   by the caller's IoRequest::wait(), after every block of that request has finished, so a
//   failing request never leaves a transfer running into a buffer the caller reuses.
// - The folder and its file are removed when the swapper is destroyed; pending I/O is waited for
//   first.
#pragma once
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"

namespace zt {

// Host memory from an allocator (counted under `category`), aligned to `alignment`, freed on
// destruction. Running out of memory throws one error naming the bytes, what they were for, and
// `advice`.
class HostBuffer {
 public:
  HostBuffer() = default;
  HostBuffer(Allocator& allocator, int64_t bytes, int64_t alignment, const std::string& what,
             const std::string& advice, MemoryCategory category = MemoryCategory::optimizer_state);
  ~HostBuffer();
  HostBuffer(HostBuffer&& other) noexcept;
  HostBuffer& operator=(HostBuffer&& other) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  void* data() const { return aligned_; }
  int64_t bytes() const { return bytes_; }            // usable bytes from data()
  int64_t held_bytes() const { return int64_t(held_); }  // bytes taken from the allocator

 private:
  Allocator* allocator_ = nullptr;
  MemoryCategory category_ = MemoryCategory::optimizer_state;
  void* base_ = nullptr;
  void* aligned_ = nullptr;
  size_t held_ = 0;
  int64_t bytes_ = 0;
};

// One asynchronous transfer; wait() blocks until all of it is done and rethrows its first error.
class IoRequest {
 public:
  IoRequest() = default;  // an empty request: done, nothing to wait for
  explicit IoRequest(std::vector<std::shared_future<void>> blocks) : blocks_(std::move(blocks)) {}
  void wait() const;
  // Waits without rethrowing: cleanup after another error, before the buffer is reused.
  void drain() const noexcept;
  bool done() const;

 private:
  std::vector<std::shared_future<void>> blocks_;
};

struct NvmeSwapperOptions {
  std::string nvme_path;       // an existing, writable directory on a fast local disk
  int rank = 0;                // names the folder: <nvme_path>/zt_offload_rank<rank>_XXXXXX
  int64_t chunk_bytes = 0;     // bytes of one chunk (> 0)
  int64_t chunk_count = 0;     // chunks in the file (> 0)
  int buffer_count = 4;        // host buffers of chunk_bytes each (>= 1)
  int io_threads = 4;          // threads issuing pread/pwrite (>= 1)
  bool direct_io = true;       // try O_DIRECT first
  Allocator* host_allocator = nullptr;  // the buffers' memory; null: the CPU allocator
  MemoryCategory category = MemoryCategory::optimizer_state;  // what the buffers are counted as
  std::string advice = "lower sub_group_size or buffer_count";  // when the buffers do not fit
};

class NvmeSwapper {
 public:
  static constexpr int64_t kAlignment = 4096;            // O_DIRECT offsets, sizes and addresses
  static constexpr int64_t kIoBlockBytes = int64_t(8) << 20;  // one pread/pwrite at most

  explicit NvmeSwapper(const NvmeSwapperOptions& options);
  ~NvmeSwapper();
  NvmeSwapper(const NvmeSwapper&) = delete;
  NvmeSwapper& operator=(const NvmeSwapper&) = delete;

  // Host buffer i (chunk_bytes, kAlignment-aligned), valid for the swapper's lifetime.
  void* buffer(int i) const;
  int buffer_count() const { return int(buffers_.size()); }
  int64_t chunk_bytes() const { return options_.chunk_bytes; }
  int64_t chunk_count() const { return options_.chunk_count; }

  // Start reading chunk into buffer / writing buffer into chunk. The buffer must not be touched
  // until the request's wait() returns.
  IoRequest read_async(int64_t chunk, int buffer);
  IoRequest write_async(int64_t chunk, int buffer);

  const std::string& folder() const { return folder_; }
  const std::string& file_path() const { return file_path_; }
  bool direct_io() const { return direct_io_; }
  const std::string& io_note() const { return io_note_; }  // why O_DIRECT is off; empty when on
  int64_t disk_bytes() const;  // bytes reserved in the file
  int64_t host_bytes() const;  // bytes of host memory held by the buffers

 private:
  class IoPool;
  IoRequest submit(bool write, int64_t chunk, int buffer);
  void open_file();

  NvmeSwapperOptions options_;
  int64_t slot_bytes_ = 0;
  std::string folder_, file_path_, io_note_;
  int fd_ = -1;
  bool direct_io_ = false;
  std::vector<HostBuffer> buffers_;
  std::unique_ptr<IoPool> pool_;  // last: its threads stop before the file and buffers go
};

}  // namespace zt
