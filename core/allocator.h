// Allocator interface with statistics by category (DESIGN.md §2).
// Memory savings are measured from these counters, on the CPU and GPU alike.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/device.h"

namespace zt {

// What an allocation holds; parameter/gradient/optimizer buffers retag their storage.
enum class MemoryCategory : uint8_t {
  parameters, gradients, optimizer_state, activations, communication, other
};
inline constexpr int kNumMemoryCategories = 6;
const char* memory_category_name(MemoryCategory c);

struct MemoryCounters {
  int64_t in_use = 0;  // bytes handed out and not yet freed
  int64_t peak = 0;    // high-water mark of in_use since the last reset_peak
  int64_t count = 0;   // live allocations
};

struct MemoryStats {
  MemoryCounters total;
  std::array<MemoryCounters, kNumMemoryCategories> by_category{};
  int64_t reserved = 0;  // bytes held from the system (>= total.in_use for caching allocators)
  const MemoryCounters& of(MemoryCategory c) const { return by_category[size_t(c)]; }

  // The accounting every allocator shares (callers hold their own lock). Bytes are the bytes
  // asked for, not the rounded block sizes, so every allocator reports the same in_use.
  void record_alloc(int64_t bytes, MemoryCategory c);
  void record_free(int64_t bytes, MemoryCategory c);
  void record_retag(int64_t bytes, MemoryCategory from, MemoryCategory to);
  void reset_peaks();
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes, MemoryCategory category) = 0;
  // Memory on device `device_index` of this allocator's device type (StorageImpl calls this).
  // Allocators serving one device ignore the index; the CUDA one allocates on cuda:N.
  virtual void* allocate(size_t bytes, MemoryCategory category, int device_index) {
    return allocate(bytes, category);
  }
  virtual void deallocate(void* ptr, size_t bytes, MemoryCategory category) = 0;
  // Moves accounted bytes from one category to another (the memory itself stays).
  virtual void retag(size_t bytes, MemoryCategory from, MemoryCategory to) = 0;
  virtual MemoryStats stats() const = 0;
  virtual void reset_peak() = 0;
  // Releases cached blocks to the system (no-op for non-caching allocators).
  virtual void empty_cache() {}
  // Caps the bytes in use (0: no cap); an allocation past it fails with the allocator's
  // out-of-memory error, as if the memory were not there. For the CPU allocator the
  // ZT_HOST_MEMORY_LIMIT environment variable sets it at start (bytes, or with a K/M/G/T suffix,
  // binary units): a host smaller than the machine, to find what fits or to test host OOM. The
  // CPU allocator's limit is the host's (Note [Host memory limit]). Allocators that cannot cap
  // ignore it.
  virtual void set_memory_limit(int64_t bytes) {}
  virtual int64_t memory_limit() const { return 0; }
};

// Bytes from a size such as "1073741824", "512M" or "2G" (K/M/G/T: powers of 1024); `what`
// names the setting in the error for anything else.
int64_t parse_byte_size(const std::string& text, const std::string& what);

// The allocator of a device type; CUDA registers its own when its backend loads.
Allocator& allocator_for(Device device);
void register_allocator(DeviceType type, Allocator* allocator);

// The page-locked host allocator a GPU backend registered (cuda/pinned_allocator.h does when a GPU
// is present), or null: host memory that device copies read and write at full speed. ZeRO-Offload
// takes its host buffers from it when pin_memory is set, without naming a CUDA header.
Allocator* pinned_host_allocator();
void register_pinned_host_allocator(Allocator* allocator);

// Note [Host memory limit]
// Host RAM is handed out by two allocators: the CPU allocator (pageable) and the page-locked one
// a GPU backend registers. One limit caps the two together: the CPU allocator's memory_limit()
// (set_memory_limit, or ZT_HOST_MEMORY_LIMIT at start; 0, the default, is no limit). Without one,
// nothing stops host allocations from growing past the machine's RAM: pageable memory then swaps
// and page-locking stalls long before an allocation fails. Both allocators call
// check_host_memory_limit before taking memory. Bytes in use are counted, not cached blocks: empty
// the caches of both when the limit must stand for the machine's free memory.
//
// Throws `allocator`'s out-of-memory error (naming `category`) when `bytes` more would put the
// bytes in use of the CPU and pinned allocators together past the host limit.
void check_host_memory_limit(int64_t bytes, const std::string& allocator, MemoryCategory category);
// Bytes in use in the CPU allocator plus the registered pinned allocator.
int64_t host_memory_in_use();
// The most host_memory_in_use() has reached since reset_host_memory_peak(), pageable and pinned
// together (each allocator's own peak may fall at another time). The limit check keeps it, so it
// is tracked while a host limit is set; without one it stays at the reset's value.
int64_t host_memory_peak();
void reset_host_memory_peak();  // to host_memory_in_use()

// The category new allocations on this thread are tagged with (default: other), set for a
// scope: `MemoryCategoryScope scope(MemoryCategory::activations);`.
MemoryCategory current_memory_category();
class MemoryCategoryScope {
 public:
  explicit MemoryCategoryScope(MemoryCategory c);
  ~MemoryCategoryScope();
  MemoryCategoryScope(const MemoryCategoryScope&) = delete;
  MemoryCategoryScope& operator=(const MemoryCategoryScope&) = delete;

 private:
  MemoryCategory previous_;
};

}  // namespace zt
