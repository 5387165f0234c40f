// The allocator registry, the per-thread category scope and the CPU allocator (64-byte
// aligned, counted by category so memory savings can be measured on the CPU too).
#include "core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>

#include "core/error.h"

namespace zt {

const char* memory_category_name(MemoryCategory c) {
  switch (c) {
    case MemoryCategory::parameters: return "parameters";
    case MemoryCategory::gradients: return "gradients";
    case MemoryCategory::optimizer_state: return "optimizer_state";
    case MemoryCategory::activations: return "activations";
    case MemoryCategory::communication: return "communication";
    case MemoryCategory::other: return "other";
  }
  return "unknown";
}

namespace {

void count_alloc(MemoryCounters& c, int64_t bytes) {
  c.in_use += bytes;
  c.count += 1;
  if (c.in_use > c.peak) c.peak = c.in_use;
}

void count_free(MemoryCounters& c, int64_t bytes) {
  c.in_use -= bytes;
  c.count -= 1;
}

}  // namespace

void MemoryStats::record_alloc(int64_t bytes, MemoryCategory c) {
  count_alloc(total, bytes);
  count_alloc(by_category[size_t(c)], bytes);
}

void MemoryStats::record_free(int64_t bytes, MemoryCategory c) {
  count_free(total, bytes);
  count_free(by_category[size_t(c)], bytes);
}

void MemoryStats::record_retag(int64_t bytes, MemoryCategory from, MemoryCategory to) {
  count_free(by_category[size_t(from)], bytes);
  count_alloc(by_category[size_t(to)], bytes);
}

void MemoryStats::reset_peaks() {
  total.peak = total.in_use;
  for (auto& c : by_category) c.peak = c.in_use;
}

namespace {

thread_local MemoryCategory t_category = MemoryCategory::other;

class CpuAllocator final : public Allocator {
 public:
  static constexpr size_t kAlignment = 64;
  // Large blocks are cached on free and reused for the same rounded size: a fresh multi-MiB
  // block costs page faults on first touch (about 10% of a 1024^3 sgemm), and training
  // allocates the same activation sizes every step. Small blocks go straight back to malloc.
  static constexpr size_t kMinCachedBytes = size_t(1) << 16;
  static constexpr size_t kMaxCachedBytes = size_t(1) << 30;

  CpuAllocator() {
    if (const char* v = std::getenv("ZT_HOST_MEMORY_LIMIT")) limit_ = parse_byte_size(v, "ZT_HOST_MEMORY_LIMIT");
  }
  ~CpuAllocator() override { empty_cache(); }

  void* allocate(size_t bytes, MemoryCategory category) override {
    if (bytes == 0) return nullptr;
    if (limit_ > 0) check_host_memory_limit(int64_t(bytes), "CPU allocator", category);
    const size_t rounded = round_size(bytes);
    void* p = take_cached(rounded);
    if (!p) {
      p = std::aligned_alloc(kAlignment, rounded);
      if (!p) {  // give cached blocks back and try once more before failing
        empty_cache();
        p = std::aligned_alloc(kAlignment, rounded);
      }
      ZT_CHECK(p != nullptr, "CPU allocator: out of memory allocating ", bytes, " bytes for ",
               memory_category_name(category), " (", stats().total.in_use, " bytes in use)");
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.reserved += int64_t(rounded);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.record_alloc(int64_t(bytes), category);
    return p;
  }

  void deallocate(void* ptr, size_t bytes, MemoryCategory category) override {
    if (!ptr) return;
    const size_t rounded = round_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.record_free(int64_t(bytes), category);
    if (rounded >= kMinCachedBytes && cached_bytes_ + rounded <= kMaxCachedBytes) {
      cache_.emplace(rounded, ptr);
      cached_bytes_ += rounded;
    } else {
      std::free(ptr);
      stats_.reserved -= int64_t(rounded);
    }
  }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, ptr] : cache_) {
      std::free(ptr);
      stats_.reserved -= int64_t(size);
    }
    cache_.clear();
    cached_bytes_ = 0;
  }

  void retag(size_t bytes, MemoryCategory from, MemoryCategory to) override {
    if (from == to || bytes == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.record_retag(int64_t(bytes), from, to);
  }

  MemoryStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.reset_peaks();
  }

  void set_memory_limit(int64_t bytes) override {
    ZT_CHECK(bytes >= 0, "CPU allocator: expected a memory limit >= 0 bytes (0: none), found ", bytes);
    limit_ = bytes;
  }
  int64_t memory_limit() const override { return limit_; }

 private:
  static size_t round_size(size_t bytes) {
    const size_t granule = bytes >= kMinCachedBytes ? size_t(4096) : kAlignment;
    return (bytes + granule - 1) / granule * granule;
  }

  void* take_cached(size_t rounded) {
    if (rounded < kMinCachedBytes) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(rounded);
    if (it == cache_.end()) return nullptr;
    void* p = it->second;
    cache_.erase(it);
    cached_bytes_ -= rounded;
    return p;
  }

  mutable std::mutex mutex_;
  MemoryStats stats_;
  std::unordered_multimap<size_t, void*> cache_;  // rounded size -> free block
  size_t cached_bytes_ = 0;
  std::atomic<int64_t> limit_{0};
};

Allocator* g_allocators[kNumDeviceTypes] = {};
Allocator* g_pinned_host = nullptr;

}  // namespace

int64_t parse_byte_size(const std::string& text, const std::string& what) {
  size_t used = 0;
  double value = -1;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  int64_t unit = 1;
  const std::string suffix = text.substr(used);
  if (suffix == "K" || suffix == "k") unit = int64_t(1) << 10;
  else if (suffix == "M" || suffix == "m") unit = int64_t(1) << 20;
  else if (suffix == "G" || suffix == "g") unit = int64_t(1) << 30;
  else if (suffix == "T" || suffix == "t") unit = int64_t(1) << 40;
  else if (!suffix.empty()) used = 0;
  ZT_CHECK(used > 0 && value >= 0, what, ": expected a size in bytes, optionally with a K, M, G or T suffix "
           "(e.g. 512M, 2G), found '", text, "'");
  return int64_t(value * double(unit));
}

Allocator& allocator_for(Device device) {
  static CpuAllocator cpu;
  if (device.is_cpu()) return cpu;
  Allocator* a = g_allocators[int(device.type)];
  ZT_CHECK(a != nullptr, "no allocator for device ", device.str(),
           " (is the CUDA backend built and a GPU present?)");
  return *a;
}

void register_allocator(DeviceType type, Allocator* allocator) {
  ZT_CHECK(type != DeviceType::CPU, "the CPU allocator is built in and cannot be replaced");
  g_allocators[int(type)] = allocator;
}

Allocator* pinned_host_allocator() { return g_pinned_host; }
void register_pinned_host_allocator(Allocator* allocator) { g_pinned_host = allocator; }

namespace {
std::atomic<int64_t> g_host_peak{0};  // host_memory_peak()
}  // namespace

int64_t host_memory_peak() { return g_host_peak.load(); }
void reset_host_memory_peak() { g_host_peak.store(host_memory_in_use()); }

int64_t host_memory_in_use() {
  const Allocator* pinned = pinned_host_allocator();
  return allocator_for(Device::cpu()).stats().total.in_use + (pinned ? pinned->stats().total.in_use : 0);
}

// Called by the allocators without their locks held: each stats() takes its own.
void check_host_memory_limit(int64_t bytes, const std::string& allocator, MemoryCategory category) {
  const int64_t limit = allocator_for(Device::cpu()).memory_limit();
  if (limit <= 0) return;
  const int64_t pageable = allocator_for(Device::cpu()).stats().total.in_use;
  const Allocator* pinned = pinned_host_allocator();
  const int64_t locked = pinned ? pinned->stats().total.in_use : 0;
  ZT_CHECK(pageable + locked + bytes <= limit, allocator, ": out of memory allocating ", bytes, " bytes for ",
           memory_category_name(category), ": ", pageable + locked, " host bytes in use (", pageable, " pageable, ",
           locked, " pinned) and a host memory limit of ", limit, " bytes (set_memory_limit or ZT_HOST_MEMORY_LIMIT)");
  const int64_t now = pageable + locked + bytes;
  for (int64_t peak = g_host_peak.load(); now > peak && !g_host_peak.compare_exchange_weak(peak, now);) {
  }
}

MemoryCategory current_memory_category() { return t_category; }

MemoryCategoryScope::MemoryCategoryScope(MemoryCategory c) : previous_(t_category) {
  t_category = c;
}
MemoryCategoryScope::~MemoryCategoryScope() { t_category = previous_; }

}  // namespace zt
