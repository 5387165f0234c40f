// Storage: a reference-counted block of device memory, freed through its allocator.
//
// Note [Released storage]
// release() frees the memory while the storage (and every tensor viewing it) lives on: bytes()
// and category() stay, data() becomes null, and Tensor::raw_data() refuses to hand out a pointer.
// materialize() allocates the same number of bytes again (same category; the contents are
// undefined until written). This is PyTorch's storage.resize_(0) as FSDP uses it: ZeRO stage 3
// (zero/zero_stage3.h) releases a partitioned module's parameters between uses and gathers them
// back into the same storage, so views made while they were gathered (a transposed weight saved
// for backward) see the gathered values again. core knows nothing of why a storage is released.
#pragma once
#include <cstddef>
#include <memory>

#include "core/allocator.h"
#include "core/device.h"

namespace zt {

class StorageImpl {
 public:
  StorageImpl(size_t bytes, Device device, MemoryCategory category);
  // Wraps memory owned elsewhere (not counted, not freed).
  StorageImpl(void* external, size_t bytes, Device device);
  ~StorageImpl();
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  MemoryCategory category() const { return category_; }
  void set_category(MemoryCategory c);

  // See Note [Released storage]. Both are no-ops when already in the requested state; external
  // memory cannot be released (an error).
  void release();
  void materialize();
  bool released() const { return released_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  MemoryCategory category_ = MemoryCategory::other;
  Allocator* allocator_ = nullptr;  // null for external memory
  bool released_ = false;
};

using Storage = std::shared_ptr<StorageImpl>;

}  // namespace zt
