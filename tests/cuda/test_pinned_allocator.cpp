// The pinned host allocator (Note [Pinned allocator] in cuda/pinned_allocator.h): freed blocks
// are reused without new cudaHostAlloc calls, statistics mean what the other allocators' mean,
// empty_cache gives cached blocks back, and pinned memory round-trips through the GPU.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "core/ops.h"
#include "core/storage.h"
#include "cuda/pinned_allocator.h"
#include "tests/cuda/parity_util.h"

namespace zt::test {

TEST_CASE("pinned allocator rounds sizes to its classes") {
  using cuda::PinnedAllocator;
  // Pure arithmetic, no GPU needed: powers of two from 4 KiB, 1 MiB multiples above.
  CHECK(PinnedAllocator::round_size(1) == 4096);
  CHECK(PinnedAllocator::round_size(4096) == 4096);
  CHECK(PinnedAllocator::round_size(4097) == 8192);
  CHECK(PinnedAllocator::round_size(600 * 1024) == 1024 * 1024);
  CHECK(PinnedAllocator::round_size((size_t(1) << 20) + 1) == size_t(2) << 20);
  CHECK(PinnedAllocator::round_size(size_t(5) << 20) == size_t(5) << 20);
}

TEST_CASE("pinned allocator caches freed blocks and keeps statistics") {
  ZT_REQUIRE_GPU();
  Allocator& alloc = cuda::pinned_allocator();
  alloc.empty_cache();
  const MemoryStats before = alloc.stats();
  const size_t bytes = (size_t(3) << 20) + 100;  // a 4 MiB block
  void* p = alloc.allocate(bytes, MemoryCategory::optimizer_state);
  REQUIRE(p != nullptr);
  std::memset(p, 0x5a, bytes);  // host-writable over its whole length
  MemoryStats s = alloc.stats();
  CHECK(s.total.in_use - before.total.in_use == int64_t(bytes));
  CHECK(s.of(MemoryCategory::optimizer_state).in_use -
            before.of(MemoryCategory::optimizer_state).in_use == int64_t(bytes));
  CHECK(s.reserved - before.reserved == int64_t(4) << 20);
  CHECK(s.total.count - before.total.count == 1);

  alloc.retag(bytes, MemoryCategory::optimizer_state, MemoryCategory::activations);
  CHECK(alloc.stats().of(MemoryCategory::activations).in_use -
            before.of(MemoryCategory::activations).in_use == int64_t(bytes));
  alloc.deallocate(p, bytes, MemoryCategory::activations);
  s = alloc.stats();
  CHECK(s.total.in_use == before.total.in_use);
  CHECK(s.reserved - before.reserved == int64_t(4) << 20);  // cached, not returned

  // The same size class comes back from the cache: same block, no new cudaHostAlloc.
  const int64_t calls = cuda::pinned_host_alloc_calls();
  void* q = alloc.allocate((size_t(4) << 20) - 7, MemoryCategory::other);
  CHECK(q == p);
  CHECK(cuda::pinned_host_alloc_calls() == calls);
  alloc.deallocate(q, (size_t(4) << 20) - 7, MemoryCategory::other);

  alloc.empty_cache();
  CHECK(alloc.stats().reserved == before.reserved);
  CHECK_THROWS_WITH_AS(alloc.deallocate(p, bytes, MemoryCategory::other),
                       doctest::Contains("did not hand out"), Error);
}

// Note [Host memory limit]: pinned bytes count with the CPU allocator's under one limit.
TEST_CASE("pinned allocator: past the host memory limit, an out-of-memory error at once") {
  ZT_REQUIRE_GPU();
  Allocator& alloc = cuda::pinned_allocator();
  Allocator& cpu = allocator_for(Device::cpu());
  const int64_t before = cpu.memory_limit();
  cpu.set_memory_limit(host_memory_in_use() + (int64_t(3) << 20));  // 3 MiB of headroom
  void* p = alloc.allocate(size_t(2) << 20, MemoryCategory::optimizer_state);
  const int64_t in_use = alloc.stats().total.in_use;
  CHECK_THROWS_WITH_AS(alloc.allocate(size_t(2) << 20, MemoryCategory::optimizer_state),
                       doctest::Contains("pinned host allocator: out of memory allocating 2097152 bytes"), Error);
  CHECK(alloc.stats().total.in_use == in_use);  // the failed allocation took nothing
  // The pinned bytes count against the CPU allocator too.
  CHECK_THROWS_WITH_AS(cpu.allocate(size_t(2) << 20, MemoryCategory::other),
                       doctest::Contains("CPU allocator: out of memory"), Error);
  cpu.set_memory_limit(before);
  alloc.deallocate(p, size_t(2) << 20, MemoryCategory::optimizer_state);
}

TEST_CASE("pinned memory round-trips through the GPU") {
  ZT_REQUIRE_GPU();
  Allocator& alloc = cuda::pinned_allocator();
  const int64_t n = 1 << 20;
  const size_t bytes = size_t(n) * sizeof(float);
  void* host = alloc.allocate(bytes, MemoryCategory::communication);
  {
    float* h = static_cast<float*>(host);
    for (int64_t i = 0; i < n; ++i) h[i] = float(i % 1000) * 0.25f - 100.0f;
    // A CPU tensor over the pinned block (external storage: the test frees it itself).
    auto storage = std::make_shared<StorageImpl>(host, bytes, Device::cpu());
    const Tensor pinned = Tensor::view_of(storage, {n}, {1}, 0, DType::f32);
    const Tensor gpu = raw::mul(raw::to(pinned, Device::cuda(0)), 2.0);
    raw::copy_(pinned, gpu);  // device -> pinned host, in place
    const std::vector<float> back = pinned.to_vector<float>();
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) wrong += back[size_t(i)] != (float(i % 1000) * 0.25f - 100.0f) * 2.0f;
    CHECK(wrong == 0);
  }
  alloc.deallocate(host, bytes, MemoryCategory::communication);
}

}  // namespace zt::test
