// The CPU allocator's memory limit (core/allocator.h set_memory_limit, ZT_HOST_MEMORY_LIMIT): an
// allocation past it fails with a clear out-of-memory error and leaves the allocator usable; a
// registered pinned allocator's bytes count against the same limit; and the limit's size syntax.
#include <doctest/doctest.h>

#include <cstdlib>

#include "core/allocator.h"
#include "core/error.h"
#include "core/factory.h"

using namespace zt;

TEST_CASE("CPU allocator memory limit: past it, a clear out-of-memory error; under it, allocations work") {
  Allocator& cpu = allocator_for(Device::cpu());
  const int64_t before = cpu.memory_limit();
  const int64_t in_use = cpu.stats().total.in_use;
  cpu.set_memory_limit(in_use + (int64_t(1) << 20));  // 1 MiB of headroom
  CHECK_NOTHROW(empty({1000}, DType::f32));
  CHECK_THROWS_WITH_AS(empty({int64_t(1) << 20}, DType::f32),
                       doctest::Contains("CPU allocator: out of memory allocating 4194304 bytes"), Error);
  CHECK(cpu.stats().total.in_use == in_use);  // the failed allocation took nothing
  CHECK_THROWS_WITH_AS(cpu.set_memory_limit(-1), doctest::Contains("expected a memory limit >= 0"), Error);
  cpu.set_memory_limit(before);
  CHECK_NOTHROW(empty({int64_t(1) << 20}, DType::f32));
}

namespace {

// A stand-in for the page-locked allocator a GPU backend registers: plain malloc, counted, and
// checked against the host limit as cuda/pinned_allocator.cpp checks it.
class FakePinnedAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, MemoryCategory category) override {
    check_host_memory_limit(int64_t(bytes), "fake pinned allocator", category);
    stats_.record_alloc(int64_t(bytes), category);
    return std::malloc(bytes);
  }
  void deallocate(void* ptr, size_t bytes, MemoryCategory category) override {
    stats_.record_free(int64_t(bytes), category);
    std::free(ptr);
  }
  void retag(size_t, MemoryCategory, MemoryCategory) override {}
  MemoryStats stats() const override { return stats_; }
  void reset_peak() override { stats_.reset_peaks(); }

 private:
  MemoryStats stats_;
};

}  // namespace

// Note [Host memory limit]: pageable and pinned bytes share the CPU allocator's limit.
TEST_CASE("host memory limit: pinned and pageable allocations count together") {
  Allocator& cpu = allocator_for(Device::cpu());
  Allocator* const previous = pinned_host_allocator();
  FakePinnedAllocator pinned;
  register_pinned_host_allocator(&pinned);
  const int64_t before = cpu.memory_limit();
  const int64_t mib = int64_t(1) << 20;
  cpu.set_memory_limit(host_memory_in_use() + 3 * mib);
  void* block = pinned.allocate(size_t(2 * mib), MemoryCategory::optimizer_state);
  CHECK(host_memory_in_use() == cpu.stats().total.in_use + 2 * mib);
  // 2 MiB pinned + 2 MiB pageable would pass the 3 MiB of headroom, either way round.
  CHECK_THROWS_WITH_AS(empty({mib / 2}, DType::f32),
                       doctest::Contains("CPU allocator: out of memory allocating 2097152 bytes"), Error);
  CHECK_THROWS_WITH_AS(pinned.allocate(size_t(2 * mib), MemoryCategory::optimizer_state),
                       doctest::Contains("fake pinned allocator: out of memory allocating 2097152 bytes"), Error);
  CHECK_NOTHROW(empty({mib / 8}, DType::f32));  // 512 KiB still fits
  pinned.deallocate(block, size_t(2 * mib), MemoryCategory::optimizer_state);
  CHECK_NOTHROW(empty({mib / 2}, DType::f32));  // the pinned bytes are back
  // The joint peak: 2 MiB pinned, then 2 MiB pageable once it is gone, reach 2 MiB together,
  // while the two allocators' own peaks add up to 4.
  reset_host_memory_peak();
  const int64_t base = host_memory_in_use();
  CHECK(host_memory_peak() == base);
  void* again = pinned.allocate(size_t(2 * mib), MemoryCategory::optimizer_state);
  pinned.deallocate(again, size_t(2 * mib), MemoryCategory::optimizer_state);
  { const Tensor pageable = empty({mib / 2}, DType::f32); }
  CHECK(host_memory_peak() == base + 2 * mib);
  // Without a limit nothing is checked.
  cpu.set_memory_limit(0);
  void* big = pinned.allocate(size_t(64 * mib), MemoryCategory::other);
  pinned.deallocate(big, size_t(64 * mib), MemoryCategory::other);
  cpu.set_memory_limit(before);
  register_pinned_host_allocator(previous);
}

TEST_CASE("parse_byte_size: bytes and binary K/M/G/T suffixes; anything else names the setting") {
  CHECK(parse_byte_size("4096", "X") == 4096);
  CHECK(parse_byte_size("512M", "X") == int64_t(512) << 20);
  CHECK(parse_byte_size("2G", "X") == int64_t(2) << 30);
  CHECK(parse_byte_size("1.5K", "X") == 1536);
  CHECK(parse_byte_size("1T", "X") == int64_t(1) << 40);
  for (const char* bad : {"", "G", "12GB", "-1", "lots"})
    CHECK_THROWS_WITH_AS(parse_byte_size(bad, "ZT_HOST_MEMORY_LIMIT"),
                         doctest::Contains("ZT_HOST_MEMORY_LIMIT: expected a size in bytes"), Error);
}
