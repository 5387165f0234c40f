// The pinned host allocator: see Note [Pinned allocator] in cuda/pinned_allocator.h.
#include "cuda/pinned_allocator.h"

#include <cuda_runtime_api.h>

#include "cuda/cuda_api.h"
#include "cuda/cuda_check.h"

namespace zt::cuda {

size_t PinnedAllocator::round_size(size_t bytes) {
  if (bytes >= kLargeRound) return (bytes + kLargeRound - 1) / kLargeRound * kLargeRound;
  size_t size = kMinBlock;
  while (size < bytes) size <<= 1;
  return size;
}

void* PinnedAllocator::allocate(size_t bytes, MemoryCategory category) {
  if (bytes == 0) return nullptr;
  check_host_memory_limit(int64_t(bytes), "pinned host allocator", category);  // before taking mutex_
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* p = nullptr;
  auto it = free_.find(size);
  if (it != free_.end()) {
    p = it->second;
    free_.erase(it);
    cached_bytes_ -= int64_t(size);
  } else {
    // Portable: usable from every device's context, not only the current one.
    cudaError_t err = cudaHostAlloc(&p, size, cudaHostAllocPortable);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky: release the cache and retry once
      for (auto& [s, q] : free_) {
        ZT_CUDA_CHECK(cudaFreeHost(q));
        stats_.reserved -= int64_t(s);
      }
      free_.clear();
      cached_bytes_ = 0;
      err = cudaHostAlloc(&p, size, cudaHostAllocPortable);
      if (err == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        ZT_FAIL("pinned host allocator: out of memory allocating ", bytes, " bytes (block of ", size,
                " bytes) for ", memory_category_name(category), "; in use ", stats_.total.in_use,
                " bytes in ", stats_.total.count, " allocations, reserved ", stats_.reserved,
                " bytes (after emptying the cache)");
      }
    }
    ZT_CUDA_CHECK(err);
    ++host_alloc_calls_;
    stats_.reserved += int64_t(size);
  }
  live_.emplace(p, size);
  stats_.record_alloc(int64_t(bytes), category);
  return p;
}

void PinnedAllocator::deallocate(void* ptr, size_t bytes, MemoryCategory category) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(ptr);
  ZT_CHECK(it != live_.end(), "pinned host allocator: free of pointer ", ptr,
           " that this allocator did not hand out (or freed twice)");
  const size_t size = it->second;
  live_.erase(it);
  stats_.record_free(int64_t(bytes), category);
  free_.emplace(size, ptr);
  cached_bytes_ += int64_t(size);
}

void PinnedAllocator::retag(size_t bytes, MemoryCategory from, MemoryCategory to) {
  if (from == to || bytes == 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.record_retag(int64_t(bytes), from, to);
}

MemoryStats PinnedAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void PinnedAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.reset_peaks();
}

void PinnedAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [size, p] : free_) {
    ZT_CUDA_CHECK(cudaFreeHost(p));  // waits for nothing: cached blocks have no pending copies
    stats_.reserved -= int64_t(size);
  }
  free_.clear();
  cached_bytes_ = 0;
}

int64_t PinnedAllocator::host_alloc_calls() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return host_alloc_calls_;
}

int64_t PinnedAllocator::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_bytes_;
}

PinnedAllocator& pinned_host_allocator() {
  // Never destroyed, like the device allocator: pinned buffers may outlive static destructors.
  static PinnedAllocator* allocator = new PinnedAllocator();
  return *allocator;
}

Allocator& pinned_allocator() { return pinned_host_allocator(); }

int64_t pinned_host_alloc_calls() { return pinned_host_allocator().host_alloc_calls(); }

namespace {
// Code outside cuda/ (ZeRO-Offload) finds this allocator through zt::pinned_host_allocator().
const bool registered = [] {
  if (device_count() > 0) register_pinned_host_allocator(&pinned_host_allocator());
  return true;
}();
}  // namespace

}  // namespace zt::cuda
