// HostTensor: a 1-D host tensor for ZeRO-Offload's transfers (gradient and parameter shards moved
// between the device and the CPU Adam), page-locked when a pinned allocator is given.
//
// Page-locked memory comes from an allocator that StorageImpl does not know (core's
// pinned_host_allocator(), registered by cuda/), so the tensor views a HostBuffer that this
// object owns: keep the HostTensor alive as long as the tensor is used. Without a pinned
// allocator it is an ordinary CPU tensor. Either way its bytes are counted under `category` by
// the allocator they came from.
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "zero/nvme_swapper.h"

namespace zt {

class HostTensor {
 public:
  HostTensor() = default;
  // (numel,) of dtype, uninitialised; `what` names it in an out-of-memory error.
  HostTensor(int64_t numel, DType dtype, Allocator* pinned, MemoryCategory category, const std::string& what);

  const Tensor& tensor() const { return tensor_; }
  bool defined() const { return tensor_.defined(); }
  bool pinned() const { return buffer_.data() != nullptr; }
  int64_t bytes() const { return tensor_.defined() ? tensor_.numel() * int64_t(tensor_.element_size()) : 0; }

 private:
  HostBuffer buffer_;  // pinned memory the tensor views; empty otherwise
  Tensor tensor_;
};

}  // namespace zt
