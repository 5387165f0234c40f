// The CUDA caching allocator (DESIGN.md §2): device memory is taken from cudaMalloc in
// segments and handed out as blocks; freed blocks go back to a free list and are reused, so a
// training step in steady state calls cudaMalloc never.
//
// Note [Caching allocator]
// - Sizes are rounded up to 512 bytes. Requests under 1 MiB come from the small pool, carved
//   from 2 MiB segments; larger ones from the large pool (segments of 20 MiB for requests under
//   10 MiB, else the request rounded to 2 MiB). A free block is found by best fit on
//   (device, stream, size) and split when the remainder is worth keeping; a freed block merges
//   with free neighbours of its segment.
// - Blocks are reused only on the stream they were allocated on (the current stream of the
//   device asked for, else of the current device), so no event bookkeeping is needed while each device has one stream.
// - Statistics mean what the CPU allocator's mean: in_use/peak/count are the bytes requested
//   by live allocations, by category; reserved is the bytes held from cudaMalloc.
// - Out of memory: the cache is emptied (unused segments returned) and cudaMalloc retried once;
//   if it still fails, zt::Error names the request and the current statistics.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "core/allocator.h"

namespace zt::cuda {

class CachingAllocator final : public Allocator {
 public:
  static constexpr size_t kRound = 512;
  static constexpr size_t kSmallLimit = size_t(1) << 20;      // small pool below 1 MiB
  static constexpr size_t kSmallSegment = size_t(2) << 20;    // 2 MiB small segments
  static constexpr size_t kLargeSegment = size_t(20) << 20;   // for requests under 10 MiB
  static constexpr size_t kLargeRound = size_t(2) << 20;

  void* allocate(size_t bytes, MemoryCategory category) override;  // on the current device
  // On cuda:device_index, whatever the current device is (Tensor::empty on cuda:N calls this).
  void* allocate(size_t bytes, MemoryCategory category, int device_index) override;
  void deallocate(void* ptr, size_t bytes, MemoryCategory category) override;
  void retag(size_t bytes, MemoryCategory from, MemoryCategory to) override;
  MemoryStats stats() const override;
  void reset_peak() override;
  void empty_cache() override;

  int64_t malloc_calls() const;

 private:
  struct Block {
    int device = 0;
    cudaStream_t stream = nullptr;
    bool small = false;
    bool allocated = false;
    size_t size = 0;
    char* ptr = nullptr;
    Block* prev = nullptr;  // neighbours inside the same cudaMalloc segment
    Block* next = nullptr;
  };
  struct BlockOrder {
    bool operator()(const Block* a, const Block* b) const;
  };
  using Pool = std::set<Block*, BlockOrder>;

  Pool& pool_for(bool small) { return small ? small_free_ : large_free_; }
  Block* find_free(int device, cudaStream_t stream, size_t size, bool small);
  Block* new_segment(int device, cudaStream_t stream, size_t size, bool small, size_t requested);
  Block* split(Block* block, size_t size);
  void release_free_segments();  // cudaFree of every fully free segment (lock held)

  mutable std::mutex mutex_;
  Pool small_free_, large_free_;
  std::unordered_map<void*, Block*> live_;
  MemoryStats stats_;
  int64_t malloc_calls_ = 0;
};

// The process-wide CUDA allocator registered for DeviceType::CUDA.
CachingAllocator& caching_allocator();

}  // namespace zt::cuda
