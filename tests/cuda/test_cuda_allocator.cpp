// The CUDA caching allocator (Note [Caching allocator] in cuda/caching_allocator.h): cached
// blocks are reused without cudaMalloc, statistics by category mean what the CPU allocator's
// mean, empty_cache returns unused segments, and out of memory is a clear zt::Error.
#include <doctest/doctest.h>

#include <vector>

#include "core/allocator.h"
#include "tests/cuda/parity_util.h"

namespace zt::test {
namespace {

Allocator& gpu_allocator() { return allocator_for(Device::cuda(0)); }

}  // namespace

TEST_CASE("CUDA allocator reuses freed blocks without new cudaMalloc") {
  ZT_REQUIRE_GPU();
  const std::vector<size_t> sizes = {100, 5000, 512 * 1024, (size_t(1) << 20) + 3, size_t(3) << 20,
                                     size_t(25) << 20};
  auto round_trip = [&] {
    std::vector<Tensor> live;
    for (size_t s : sizes) live.push_back(Tensor::empty({int64_t(s)}, TensorOptions(DType::u8, Device::cuda(0))));
  };
  round_trip();  // warm the cache
  const int64_t reserved = gpu_allocator().stats().reserved;
  const int64_t mallocs = cuda::device_malloc_calls();
  for (int i = 0; i < 20; ++i) round_trip();
  CHECK(gpu_allocator().stats().reserved == reserved);
  CHECK(cuda::device_malloc_calls() == mallocs);
}

TEST_CASE("CUDA allocator carves small blocks from one segment and splits large ones") {
  ZT_REQUIRE_GPU();
  gpu_allocator().empty_cache();
  const int64_t before = cuda::device_malloc_calls();
  {
    // Three 600 KiB blocks: 2 MiB small segments hold three of them only if splitting works
    // (1.8 MiB of 2 MiB); at most two segments are needed whatever was cached before.
    std::vector<Tensor> small;
    for (int i = 0; i < 3; ++i) small.push_back(Tensor::empty({600 * 1024}, TensorOptions(DType::u8, Device::cuda(0))));
    CHECK(cuda::device_malloc_calls() - before <= 2);
  }
  const int64_t mid = cuda::device_malloc_calls();
  {
    // A 3 MiB request takes a 20 MiB segment; the remainder serves a second 3 MiB request.
    Tensor a = Tensor::empty({3 << 20}, TensorOptions(DType::u8, Device::cuda(0)));
    Tensor b = Tensor::empty({3 << 20}, TensorOptions(DType::u8, Device::cuda(0)));
    CHECK(cuda::device_malloc_calls() - mid <= 1);
  }
  // Freed neighbours merged back: the whole segment is free again, so empty_cache releases all.
  gpu_allocator().empty_cache();
  const MemoryStats s = gpu_allocator().stats();
  if (s.total.in_use == 0) CHECK(s.reserved == 0);
}

TEST_CASE("CUDA allocator statistics by category, peak and retag") {
  ZT_REQUIRE_GPU();
  Allocator& alloc = gpu_allocator();
  const MemoryStats s0 = alloc.stats();
  alloc.reset_peak();
  {
    Tensor p;
    {
      MemoryCategoryScope scope(MemoryCategory::parameters);
      p = Tensor::empty({1000}, TensorOptions(DType::f32, Device::cuda(0)));
    }
    Tensor act = Tensor::empty({250}, TensorOptions(DType::f32, Device::cuda(0)));
    const MemoryStats s1 = alloc.stats();
    CHECK(s1.of(MemoryCategory::parameters).in_use - s0.of(MemoryCategory::parameters).in_use == 4000);
    CHECK(s1.of(MemoryCategory::parameters).count - s0.of(MemoryCategory::parameters).count == 1);
    CHECK(s1.total.in_use - s0.total.in_use == 5000);
    CHECK(s1.total.peak >= s1.total.in_use);
    CHECK(s1.reserved >= s1.total.in_use);
    p.set_memory_category(MemoryCategory::gradients);
    const MemoryStats s2 = alloc.stats();
    CHECK(s2.of(MemoryCategory::parameters).in_use == s0.of(MemoryCategory::parameters).in_use);
    CHECK(s2.of(MemoryCategory::gradients).in_use - s0.of(MemoryCategory::gradients).in_use == 4000);
  }
  const MemoryStats s3 = alloc.stats();
  CHECK(s3.total.in_use == s0.total.in_use);
  CHECK(s3.of(MemoryCategory::gradients).in_use == s0.of(MemoryCategory::gradients).in_use);
  CHECK(s3.total.peak - s0.total.in_use >= 5000);
  alloc.reset_peak();
  CHECK(alloc.stats().total.peak == s3.total.in_use);
}

TEST_CASE("CUDA allocator reports out of memory with the request and its statistics") {
  ZT_REQUIRE_GPU();
  const int64_t huge = int64_t(1) << 50;  // 1 PiB
  CHECK_THROWS_WITH_AS(Tensor::empty({huge}, TensorOptions(DType::u8, Device::cuda(0))),
                       doctest::Contains("out of memory"), Error);
  // The device is still usable afterwards.
  Tensor t = Tensor::empty({16}, TensorOptions(DType::f32, Device::cuda(0)));
  gpu_be().fill(t, 3.0);
  Tensor h = Tensor::empty({16}, DType::f32);
  gpu_be().copy(h, t);
  CHECK(h.to_vector<float>()[15] == 3.0f);
}

}  // namespace zt::test
