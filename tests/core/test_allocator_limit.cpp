// The CPU allocator's memory limit (core/allocator.h set_memory_limit, ZT_HOST_MEMORY_LIMIT): an
// allocation past it fails with a clear out-of-memory error and leaves the allocator usable, and
// the limit's size syntax.
#include <doctest/doctest.h>

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
