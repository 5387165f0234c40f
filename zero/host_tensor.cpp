// HostTensor: pinned or pageable host tensors for offload transfers (zero/host_tensor.h).
#include "zero/host_tensor.h"

#include "core/factory.h"

namespace zt {

HostTensor::HostTensor(int64_t numel, DType dtype, Allocator* pinned, MemoryCategory category,
                       const std::string& what) {
  const int64_t bytes = numel * int64_t(dtype_size(dtype));
  if (!pinned || bytes == 0) {
    MemoryCategoryScope scope(category);
    tensor_ = empty({numel}, TensorOptions(dtype, Device::cpu()));
    return;
  }
  buffer_ = HostBuffer(*pinned, bytes, 64, what, "set pin_memory to false to use pageable memory", category);
  auto storage = std::make_shared<StorageImpl>(buffer_.data(), size_t(bytes), Device::cpu());
  tensor_ = Tensor::view_of(std::move(storage), {numel}, {1}, 0, dtype);
}

}  // namespace zt
