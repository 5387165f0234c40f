// Storage lifetime: memory comes from and returns to the device's allocator.
#include "core/storage.h"

#include "core/error.h"

namespace zt {

StorageImpl::StorageImpl(size_t bytes, Device device, MemoryCategory category)
    : bytes_(bytes), device_(device), category_(category), allocator_(&allocator_for(device)) {
  data_ = allocator_->allocate(bytes, category, device.index);
}

StorageImpl::StorageImpl(void* external, size_t bytes, Device device)
    : data_(external), bytes_(bytes), device_(device) {}

StorageImpl::~StorageImpl() {
  if (allocator_ && !released_) allocator_->deallocate(data_, bytes_, category_);
}

void StorageImpl::set_category(MemoryCategory c) {
  // Released bytes are not in use: only the category they come back under changes.
  if (allocator_ && !released_) allocator_->retag(bytes_, category_, c);
  category_ = c;
}

void StorageImpl::release() {
  ZT_CHECK(allocator_ != nullptr, "StorageImpl::release: the storage wraps external memory of ", bytes_,
           " bytes that it does not own, so it cannot free it");
  if (released_) return;
  allocator_->deallocate(data_, bytes_, category_);
  data_ = nullptr;
  released_ = true;
}

void StorageImpl::materialize() {
  if (!released_) return;
  data_ = allocator_->allocate(bytes_, category_, device_.index);
  released_ = false;
}

}  // namespace zt
