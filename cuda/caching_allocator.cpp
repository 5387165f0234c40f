// The CUDA caching allocator: see Note [Caching allocator] in cuda/caching_allocator.h.
#include "cuda/caching_allocator.h"

#include <tuple>

#include "cuda/cuda_check.h"
#include "cuda/device.h"

namespace zt::cuda {

namespace {

size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }


}  // namespace

bool CachingAllocator::BlockOrder::operator()(const Block* a, const Block* b) const {
  return std::make_tuple(a->device, uintptr_t(a->stream), a->size, uintptr_t(a->ptr)) <
         std::make_tuple(b->device, uintptr_t(b->stream), b->size, uintptr_t(b->ptr));
}

CachingAllocator::Block* CachingAllocator::find_free(int device, cudaStream_t stream, size_t size,
                                                     bool small) {
  Pool& pool = pool_for(small);
  Block key;
  key.device = device;
  key.stream = stream;
  key.size = size;
  auto it = pool.lower_bound(&key);
  if (it == pool.end() || (*it)->device != device || (*it)->stream != stream) return nullptr;
  Block* b = *it;
  pool.erase(it);
  return b;
}

CachingAllocator::Block* CachingAllocator::new_segment(int device, cudaStream_t stream,
                                                       size_t size, bool small, size_t requested) {
  const size_t seg = small ? kSmallSegment
                           : (size < kLargeSegment / 2 ? kLargeSegment : round_up(size, kLargeRound));
  void* p = nullptr;
  DeviceGuard guard(device);  // cudaMalloc allocates on the current device
  cudaError_t err = cudaMalloc(&p, seg);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // an OOM is not sticky: clear it and retry with an empty cache
    release_free_segments();
    err = cudaMalloc(&p, seg);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      ZT_FAIL("CUDA out of memory on cuda:", device, ": requested ", requested, " bytes (segment of ",
              seg, " bytes); allocator stats: in use ", stats_.total.in_use, " bytes in ",
              stats_.total.count, " allocations, peak ", stats_.total.peak, ", reserved ",
              stats_.reserved, " bytes (after emptying the cache)");
    }
  }
  ZT_CUDA_CHECK(err);
  ++malloc_calls_;
  stats_.reserved += int64_t(seg);
  Block* b = new Block;
  b->device = device;
  b->stream = stream;
  b->small = small;
  b->size = seg;
  b->ptr = static_cast<char*>(p);
  return b;
}

// Cuts `size` bytes off the front of a free block; the rest goes back to the pool when it is
// worth keeping (any remainder in the small pool, over 1 MiB in the large one).
CachingAllocator::Block* CachingAllocator::split(Block* block, size_t size) {
  const size_t rest = block->size - size;
  const bool keep = block->small ? rest >= kRound : rest > kSmallLimit;
  if (!keep) return block;
  Block* r = new Block(*block);
  r->allocated = false;
  r->size = rest;
  r->ptr = block->ptr + size;
  r->prev = block;
  r->next = block->next;
  if (r->next) r->next->prev = r;
  block->next = r;
  block->size = size;
  pool_for(r->small).insert(r);
  return block;
}

void* CachingAllocator::allocate(size_t bytes, MemoryCategory category) {
  return allocate(bytes, category, current_device());
}

void* CachingAllocator::allocate(size_t bytes, MemoryCategory category, int device) {
  if (bytes == 0) return nullptr;
  cudaStream_t stream = current_stream(device);
  const size_t size = round_up(bytes, kRound);
  const bool small = size < kSmallLimit;
  std::lock_guard<std::mutex> lock(mutex_);
  Block* b = find_free(device, stream, size, small);
  if (!b) b = new_segment(device, stream, size, small, bytes);
  b = split(b, size);
  b->allocated = true;
  live_[b->ptr] = b;
  stats_.record_alloc(int64_t(bytes), category);
  return b->ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes, MemoryCategory category) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(ptr);
  ZT_CHECK(it != live_.end(), "CUDA allocator: free of pointer ", ptr,
           " that this allocator did not hand out (or freed twice)");
  Block* b = it->second;
  live_.erase(it);
  stats_.record_free(int64_t(bytes), category);
  b->allocated = false;
  Pool& pool = pool_for(b->small);
  // Merge with free neighbours so that a segment can become whole again.
  if (b->prev && !b->prev->allocated) {
    Block* p = b->prev;
    pool.erase(p);
    p->size += b->size;
    p->next = b->next;
    if (p->next) p->next->prev = p;
    delete b;
    b = p;
  }
  if (b->next && !b->next->allocated) {
    Block* n = b->next;
    pool.erase(n);
    b->size += n->size;
    b->next = n->next;
    if (b->next) b->next->prev = b;
    delete n;
  }
  pool.insert(b);
}

void CachingAllocator::retag(size_t bytes, MemoryCategory from, MemoryCategory to) {
  if (from == to || bytes == 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.record_retag(int64_t(bytes), from, to);
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.reset_peaks();
}

void CachingAllocator::release_free_segments() {
  for (Pool* pool : {&small_free_, &large_free_}) {
    for (auto it = pool->begin(); it != pool->end();) {
      Block* b = *it;
      if (b->prev || b->next) {  // part of a segment still in use
        ++it;
        continue;
      }
      DeviceGuard guard(b->device);
      ZT_CUDA_CHECK(cudaFree(b->ptr));  // cudaFree waits for pending work on the block
      stats_.reserved -= int64_t(b->size);
      it = pool->erase(it);
      delete b;
    }
  }
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_free_segments();
}

int64_t CachingAllocator::malloc_calls() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return malloc_calls_;
}

CachingAllocator& caching_allocator() {
  // Never destroyed: tensors in static storage may be freed after any static destructor ran,
  // and the driver reclaims device memory at process exit.
  static CachingAllocator* allocator = new CachingAllocator();
  return *allocator;
}

int64_t device_malloc_calls() { return caching_allocator().malloc_calls(); }

}  // namespace zt::cuda
