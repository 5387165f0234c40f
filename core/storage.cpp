// Storage lifetime: memory comes from and returns to the device's allocator.
#include "core/storage.h"

namespace zt {

StorageImpl::StorageImpl(size_t bytes, Device device, MemoryCategory category)
    : bytes_(bytes), device_(device), category_(category), allocator_(&allocator_for(device)) {
  data_ = allocator_->allocate(bytes, category, device.index);
}

StorageImpl::StorageImpl(void* external, size_t bytes, Device device)
    : data_(external), bytes_(bytes), device_(device) {}

StorageImpl::~StorageImpl() {
  if (allocator_) allocator_->deallocate(data_, bytes_, category_);
}

void StorageImpl::set_category(MemoryCategory c) {
  if (allocator_) allocator_->retag(bytes_, category_, c);
  category_ = c;
}

}  // namespace zt
