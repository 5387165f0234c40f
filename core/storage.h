// Storage: a reference-counted block of device memory, freed through its allocator.
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

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  MemoryCategory category_ = MemoryCategory::other;
  Allocator* allocator_ = nullptr;  // null for external memory
};

using Storage = std::shared_ptr<StorageImpl>;

}  // namespace zt
