// Device-aware allocation: a tensor on cuda:N gets memory on device N whatever the current
// device is (StorageImpl passes the index to Allocator::allocate), so kernels on N can use it.
#include <doctest/doctest.h>

#include <vector>

#include "core/ops.h"
#include "tests/cuda/parity_util.h"

namespace zt::test {

TEST_CASE("CUDA tensors on every visible device get that device's memory") {
  ZT_REQUIRE_GPU();
  const int n = cuda::device_count();
  if (n < 2) MESSAGE("one CUDA device: only cuda:0 checked (cuda:N needs a multi-GPU machine)");
  for (int d = 0; d < n; ++d) {
    // The current device stays 0 (ops restore it); without the device index the memory of
    // cuda:d would come from device 0 and the kernels on d would fault.
    const Tensor t = Tensor::empty({1000, 37}, TensorOptions(DType::f32, Device::cuda(d)));
    raw::fill_(t, 2.5);
    const Tensor u = raw::add(t, 1.0);
    const std::vector<float> v = u.to_vector<float>();
    int64_t wrong = 0;
    for (float x : v) wrong += x != 3.5f;
    CHECK_MESSAGE(wrong == 0, "cuda:", d);
  }
}

TEST_CASE("CUDA allocator rejects a device index out of range") {
  ZT_REQUIRE_GPU();
  Allocator& alloc = allocator_for(Device::cuda(0));
  CHECK_THROWS_WITH_AS(alloc.allocate(1024, MemoryCategory::other, cuda::device_count()),
                       doctest::Contains("out of range"), Error);
}

}  // namespace zt::test
