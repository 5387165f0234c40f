// The pinned host allocator (Note [Pinned allocator] in cuda/pinned_allocator.h): freed blocks
// are reused without new cudaHostAlloc calls, statistics mean what the other allocators' mean,
// empty_cache gives cached blocks back, and pinned memory round-trips through the GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/factory.h"
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

// Note [Asynchronous transfers]: copy_async to and from the GPU on the copy stream, ordered after
// the kernels queued before it, with pinned and pageable host memory; the chunks ZeRO-Offload's
// pipeline moves (Note [ZeRO-Offload pipeline]) land where they belong.
TEST_CASE("copy_async: host <-> GPU chunks, pinned and pageable, after the work queued before") {
  ZT_REQUIRE_GPU();
  const int64_t n = 3 * (1 << 20) + 5, chunk = 1 << 20;
  for (bool pinned_host : {true, false}) {
    CAPTURE(pinned_host);
    Allocator& alloc = cuda::pinned_allocator();
    const size_t bytes = size_t(n) * sizeof(uint16_t);
    void* block = pinned_host ? alloc.allocate(bytes, MemoryCategory::communication) : nullptr;
    {
      const Tensor host = pinned_host ? Tensor::view_of(std::make_shared<StorageImpl>(block, bytes, Device::cpu()),
                                                        {n}, {1}, 0, DType::bf16)
                                      : Tensor::empty({n}, TensorOptions(DType::bf16, Device::cpu()));
      const Tensor source = raw::to(raw::to(arange(0, double(n), 1.0, DType::f32), DType::bf16), Device::cuda(0));
      // Queued just before the copies on the current stream: the copies must see its result.
      const Tensor doubled = raw::mul(source, 2.0);
      std::vector<TransferHandle> down;
      for (int64_t b = 0; b < n; b += chunk) {
        const int64_t len = std::min(chunk, n - b);
        down.push_back(raw::copy_async(raw::narrow(host, 0, b, len), raw::narrow(doubled, 0, b, len)));
      }
      for (const TransferHandle& t : down) t->wait();
      CHECK(host_values(host) == host_values(doubled));
      // Back up, into a fresh device tensor, chunk by chunk in reverse order.
      const Tensor back = zeros_like(doubled);
      std::vector<TransferHandle> up;
      for (int64_t b = (n - 1) / chunk * chunk; b >= 0; b -= chunk) {
        const int64_t len = std::min(chunk, n - b);
        up.push_back(raw::copy_async(raw::narrow(back, 0, b, len), raw::narrow(host, 0, b, len)));
      }
      for (const TransferHandle& t : up) t->wait();
      CHECK(host_values(back) == host_values(doubled));
      // A handle dropped without wait() waits in its destructor.
      { TransferHandle dropped = raw::copy_async(host, doubled); }
      CHECK(host_values(host) == host_values(doubled));
    }
    if (block) alloc.deallocate(block, bytes, MemoryCategory::communication);
  }
}

}  // namespace zt::test
