// The pinned (page-locked) host allocator: host memory from cudaHostAlloc that the GPU's copy
// engines read and write directly, so host<->device copies from it run at full PCIe/NVLink-C2C
// speed and can be asynchronous (transfers now, optimizer/activation offload later).
//
// Note [Pinned allocator]
// - cudaHostAlloc is slow (it maps and locks pages: milliseconds for large blocks), so freed
//   blocks are cached by rounded size and handed out again; `empty_cache` returns them.
// - Sizes are rounded up to a power of two from 4 KiB to 1 MiB, and to a multiple of 1 MiB
//   above, so the cache matches requests of similar sizes without wasting more than 1 MiB
//   (or half the request below 1 MiB) per block.
// - Statistics mean what the CPU and CUDA allocators' mean: in_use/peak/count are the bytes
//   requested by live allocations, by category; reserved is the bytes held from cudaHostAlloc.
// - The host memory limit (Note [Host memory limit] in core/allocator.h) counts this allocator's
//   bytes in use with the CPU allocator's: past it, an allocation fails at once with this
//   allocator's out-of-memory error instead of page-locking more than the machine has.
// - A block must not be freed while an asynchronous copy still uses it: the caller synchronises
//   the copy's stream first (the allocator records no events).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/allocator.h"

namespace zt::cuda {

class PinnedAllocator final : public Allocator {
 public:
  static constexpr size_t kMinBlock = size_t(4) << 10;    // 4 KiB, a page
  static constexpr size_t kLargeRound = size_t(1) << 20;  // 1 MiB

  static size_t round_size(size_t bytes);

  void* allocate(size_t bytes, MemoryCategory category) override;
  void deallocate(void* ptr, size_t bytes, MemoryCategory category) override;
  void retag(size_t bytes, MemoryCategory from, MemoryCategory to) override;
  MemoryStats stats() const override;
  void reset_peak() override;
  void empty_cache() override;

  int64_t host_alloc_calls() const;  // cudaHostAlloc calls since program start
  int64_t cached_bytes() const;      // bytes of free blocks held in the cache

 private:
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_;          // rounded size -> free block
  std::unordered_map<void*, size_t> live_;     // block -> rounded size
  MemoryStats stats_;
  int64_t host_alloc_calls_ = 0;
  int64_t cached_bytes_ = 0;
};

// The process-wide pinned allocator (also reachable without CUDA headers: cuda/cuda_api.h).
PinnedAllocator& pinned_host_allocator();

}  // namespace zt::cuda
