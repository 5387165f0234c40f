// OffloadGradientStream (zero/offload_grad_stream.h).
#include "zero/offload_grad_stream.h"

#include <algorithm>

#include "core/error.h"
#include "core/ops.h"

namespace zt {

StreamLayout stream_layout(int64_t shard, int64_t configured_bucket) {
  ZT_CHECK(shard > 0 && configured_bucket > 0, "stream_layout: expected a positive shard and bucket, found ", shard,
           " and ", configured_bucket);
  StreamLayout l;
  l.bucket = std::min(configured_bucket, kStreamBucket);
  const int64_t buckets = (shard + l.bucket - 1) / l.bucket;
  l.slots = std::min(buckets, (kStreamSlots * configured_bucket + l.bucket - 1) / l.bucket);
  return l;
}

OffloadGradientStream::OffloadGradientStream(Tensor accumulator, int64_t slot_numel, int slots, Allocator* pinned)
    : accumulator_(std::move(accumulator)) {
  ZT_CHECK(accumulator_.defined() && accumulator_.device().is_cpu() && accumulator_.dim() == 1 &&
               accumulator_.is_contiguous(),
           "OffloadGradientStream: expected a contiguous 1-D host accumulator, found ",
           accumulator_.defined() ? accumulator_.str() : std::string("an undefined tensor"));
  ZT_CHECK(slot_numel > 0 && slots > 0, "OffloadGradientStream: expected slots > 0 of slot_numel > 0 elements, found ",
           slots, " of ", slot_numel);
  for (int s = 0; s < slots; ++s) {
    slots_.emplace_back(slot_numel, accumulator_.dtype(), pinned, MemoryCategory::communication,
                        "a staging slot of the streamed gradients");
    free_slots_.push_back(s);
  }
  worker_ = std::thread([this] { work(); });
}

OffloadGradientStream::~OffloadGradientStream() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();  // the jobs left are finished first: no copy outlives its memory
}

void OffloadGradientStream::rethrow_locked(std::unique_lock<std::mutex>& lock) {
  if (!error_) return;
  std::exception_ptr e = error_;
  error_ = nullptr;
  lock.unlock();
  std::rethrow_exception(e);
}

void OffloadGradientStream::receive(const Tensor& chunk, int64_t offset, bool first) {
  const int64_t n = chunk.numel();
  ZT_CHECK(chunk.dtype() == accumulator_.dtype() && chunk.dim() == 1 && offset >= 0 &&
               offset + n <= accumulator_.numel() && (first || n <= slots_.front().tensor().numel()),
           "OffloadGradientStream: chunk ", chunk.str(), " at offset ", offset, " does not fit the accumulator ",
           accumulator_.str(), " (or a staging slot of ", slots_.front().tensor().numel(), " elements)");
  Job job;
  job.offset = offset;
  job.numel = n;
  std::unique_lock<std::mutex> lock(mutex_);
  rethrow_locked(lock);
  if (!first) {
    changed_.wait(lock, [&] { return !free_slots_.empty() || error_; });
    rethrow_locked(lock);
    job.slot = free_slots_.back();
    free_slots_.pop_back();
  }
  lock.unlock();
  const Tensor dst = first ? raw::narrow(accumulator_, 0, offset, n)
                           : raw::narrow(slots_[size_t(job.slot)].tensor(), 0, 0, n);
  try {
    job.transfer = raw::copy_async(dst, chunk);
  } catch (...) {
    lock.lock();
    if (job.slot >= 0) free_slots_.push_back(job.slot);
    throw;
  }
  lock.lock();
  jobs_.push_back(std::move(job));
  lock.unlock();
  changed_.notify_all();
}

void OffloadGradientStream::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return jobs_.empty() && busy_ == 0; });
  rethrow_locked(lock);
}

int64_t OffloadGradientStream::staging_bytes() const {
  int64_t bytes = 0;
  for (const HostTensor& s : slots_) bytes += s.bytes();
  return bytes;
}

void OffloadGradientStream::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++busy_;
    }
    try {
      job.transfer->wait();
      job.transfer.reset();  // releases the device chunk
      if (job.slot >= 0)
        raw::binary_(BinaryOp::add, raw::narrow(accumulator_, 0, job.offset, job.numel),
                     raw::narrow(slots_[size_t(job.slot)].tensor(), 0, 0, job.numel));
    } catch (...) {
      job.transfer.reset();
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (job.slot >= 0) free_slots_.push_back(job.slot);
      --busy_;
    }
    changed_.notify_all();
  }
}

}  // namespace zt
