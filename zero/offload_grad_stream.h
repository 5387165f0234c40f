// OffloadGradientStream: the host end of ZeRO-2's gradient path under offload_optimizer (Note
// [ZeRO-Offload gradient streaming] in zero/zero_optimizer.h). The main thread hands it each
// reduced gradient chunk as backward produces it. The chunk is copied to the host on the device's
// copy stream: on the first micro-step of an optimizer step straight into the host accumulator,
// on later ones into a page-locked staging slot that a worker thread adds into the accumulator
// once the copy has landed. The addition thus overlaps the device's next forward and backward,
// and the device keeps no gradient shard.
//
// The worker takes the chunks in the order they were received (one thread), so a chunk's addition
// always follows the write it adds to; the accumulator's ranges of one micro-step are disjoint.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"
#include "zero/host_tensor.h"

namespace zt {

// How ZeRO-2 cuts a shard of `shard` elements for streaming, given the bucket the configuration
// asks for (reduce_bucket_size / W elements, at most the shard): buckets of at most
// kStreamBucket elements, so backward starts streaming early and leaves only the last buckets
// (the embedding's, whose gradient completes last) to copy and add after it; and staging slots
// for as many elements as kStreamSlots configured buckets (at most one per bucket), so one
// micro-step's buckets fit and backward does not wait for the host's additions.
struct StreamLayout {
  int64_t bucket = 0;  // elements per bucket
  int64_t slots = 0;   // staging slots of `bucket` elements
};
inline constexpr int64_t kStreamBucket = int64_t(1) << 26;  // 128 MiB of bf16
inline constexpr int64_t kStreamSlots = 4;
StreamLayout stream_layout(int64_t shard, int64_t configured_bucket);

class OffloadGradientStream {
 public:
  // accumulator: the (S,) host tensor the chunks land in (kept alive by this object); `slots`
  // staging slots of slot_numel elements of its dtype, page-locked when `pinned` is given.
  OffloadGradientStream(Tensor accumulator, int64_t slot_numel, int slots, Allocator* pinned);
  ~OffloadGradientStream();
  OffloadGradientStream(const OffloadGradientStream&) = delete;
  OffloadGradientStream& operator=(const OffloadGradientStream&) = delete;

  // accumulator[offset, offset + n) = chunk (first) or += chunk (in the accumulator's dtype, as
  // the device's in-place add rounds). chunk: contiguous (n,), n <= slot_numel, of the
  // accumulator's dtype on any device, queued after what the device's current stream has queued
  // (its producer); it is kept alive until copied. Blocks while every slot is in use. Rethrows an
  // error of an earlier chunk.
  void receive(const Tensor& chunk, int64_t offset, bool first);
  // Returns once every chunk received so far is in the accumulator; rethrows the worker's error.
  void drain();
  // Bytes of the staging slots (communication buffers, not model states).
  int64_t staging_bytes() const;

 private:
  struct Job {
    TransferHandle transfer;
    int slot = -1;  // -1: the copy went straight into the accumulator
    int64_t offset = 0, numel = 0;
  };
  void work();                                             // the worker thread's loop
  void rethrow_locked(std::unique_lock<std::mutex>& lock);  // the first error, once

  Tensor accumulator_;
  std::vector<HostTensor> slots_;
  std::vector<int> free_slots_;
  std::deque<Job> jobs_;
  int busy_ = 0;  // jobs the worker has taken and not finished
  bool stop_ = false;
  std::exception_ptr error_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::thread worker_;  // last: started once everything above exists
};

}  // namespace zt
