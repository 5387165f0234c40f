// ZeRO-Offload's optimizer state: the fp32 master, exp_avg and exp_avg_sq of one rank's shard,
// kept in host memory or in NVMe files instead of on the GPU, and stepped there by the CPU's
// vectorised fused Adam (raw::adam_step_).
//
// Note [Offloaded Adam state]
// - A shard of S fp32 elements has three state arrays (12 S bytes). Device "cpu": they live in
//   host memory, page-locked when pin_memory is set and a pinned allocator is passed (the
//   caller's, e.g. core's pinned_host_allocator(), which cuda/ registers: core and zero include
//   no CUDA header), so the gradient and parameter copies to and from the GPU run at full speed.
//   Device "nvme": they live in one file under nvme_path (NvmeSwapper, Note [NVMe swapper]);
//   host memory holds only buffer_count sub-group buffers.
// - The shard is stepped in sub-groups of sub_group_size elements (the last may be shorter). On
//   NVMe sub-group k's master and moments form chunk k of the file, [master | exp_avg |
//   exp_avg_sq] each sub_group_size long, so one sub-group is one transfer each way. While k is
//   stepped, k + 1 (and further, with more buffers) is read ahead and k - 1 is written back:
//   buffer_count 1 overlaps nothing, 2 overlaps reads with the step, 3 or more also the writes.
//   Host memory on nvme is about buffer_count * 12 * min(sub_group_size, S) bytes: choose a
//   sub_group_size well below S there (DeepSpeed's default of 1e9 holds a small shard whole).
// - Each element's result is independent of its position (Note [CPU Adam kernels]), so cpu and
//   nvme, any sub_group_size and any buffer_count give bit-identical state and model copies,
//   equal to one raw::adam_step_ over the whole shard.
// - The model copy (the updated parameters in the compute dtype) is written in the same pass for
//   bf16/f16 and copied from the master for f32, sub-group by sub-group.
// - Host memory is counted under MemoryCategory::optimizer_state by the allocator it came from;
//   host_bytes() and disk_bytes() report this store's share (for membench).
// - Parameter groups: step() takes one AdamRange per group, each a contiguous range of the shard
//   with its own hyperparameters and step count; within a sub-group each range's part is one
//   raw::adam_step_, so the result is the same as stepping each range alone.
// - After an error in the middle of a step (an I/O failure) the state is partly stepped: restore
//   it from a checkpoint. read()/write() move any range of the state, for checkpoints.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/adam_scalars.h"
#include "core/tensor.h"
#include "optim/adam.h"
#include "zero/nvme_swapper.h"

namespace zt {

enum class OffloadDevice : uint8_t { cpu, nvme };
const char* offload_device_name(OffloadDevice device);           // "cpu", "nvme"
OffloadDevice parse_offload_device(const std::string& name);     // throws on anything else

struct OffloadOptions {
  OffloadDevice device = OffloadDevice::cpu;
  std::string nvme_path;                  // nvme: an existing, writable directory on a fast disk
  int rank = 0;                           // nvme: names the per-rank folder under nvme_path
  bool pin_memory = true;                 // page-locked host memory (the state on cpu, the swap
  Allocator* pinned_allocator = nullptr;  // buffers on nvme) from this allocator; null: pageable
  int buffer_count = 4;                   // nvme: sub-group buffers in host memory (>= 1)
  int64_t sub_group_size = 1'000'000'000;  // elements stepped (and swapped) at a time (> 0)
  int io_threads = 4;                     // nvme: threads issuing pread/pwrite
};

// Elements [begin, begin + length) of the shard, stepped with these hyperparameters: Adam
// (decoupled = false) or AdamW, `step` counting from 1.
struct AdamRange {
  int64_t begin = 0, length = 0;
  AdamOptions hyper;
  bool decoupled = false;
  int64_t step = 1;
};

// Which state array read() and write() address.
enum class AdamStateField : uint8_t { master, exp_avg, exp_avg_sq };

// One rank's offloaded state. Not thread-safe: step(), read() and write() run one at a time.
class OffloadedAdamState {
 public:
  // The master starts as initial_master (host, any float dtype, S elements, converted to fp32);
  // the moments start at zero.
  OffloadedAdamState(const Tensor& initial_master, const OffloadOptions& options);
  ~OffloadedAdamState();
  OffloadedAdamState(const OffloadedAdamState&) = delete;
  OffloadedAdamState& operator=(const OffloadedAdamState&) = delete;

  // One Adam (decoupled = false) or AdamW step of the shard with grad (host, contiguous (S), f32,
  // bf16 or f16) times grad_scale's factors (Note [Folded gradient scaling] in optim/optimizer.h),
  // `step` counting from 1. model_copy_out: host, contiguous (S) bf16/f16/f32 receiving the
  // updated master, or undefined.
  void step(const Tensor& grad, const AdamOptions& hyper, bool decoupled, int64_t step,
            const Tensor& model_copy_out = Tensor(), const GradientScale& grad_scale = {});
  // The same with each range's own hyperparameters (parameter groups). Ranges must not overlap;
  // elements in none are left alone (their state and model copy too).
  void step(const Tensor& grad, const std::vector<AdamRange>& ranges, const Tensor& model_copy_out = Tensor(),
            const GradientScale& grad_scale = {});

  // Elements [begin, begin + n) of a state array to/from a host contiguous f32 tensor of n
  // elements (checkpoints).
  void read(AdamStateField field, int64_t begin, const Tensor& out) const;
  void write(AdamStateField field, int64_t begin, const Tensor& values);

  // Device cpu: the fp32 master itself, a writable host view of S elements (writes change the
  // state, with no copy of 4 bytes per element); undefined on nvme, whose master is on disk.
  Tensor host_master() const;

  int64_t numel() const { return numel_; }
  int64_t sub_group_count() const { return (numel_ + sub_group_size_ - 1) / sub_group_size_; }
  const OffloadOptions& options() const { return options_; }
  bool pinned() const { return pinned_; }  // state (cpu) or buffers (nvme) are page-locked
  int64_t host_bytes() const;              // host memory held: the state (cpu) or the buffers
  int64_t disk_bytes() const;              // bytes of the NVMe file; 0 on cpu
  const NvmeSwapper* swapper() const { return swapper_.get(); }  // null on cpu

 private:
  struct SubGroup {
    int64_t begin, length;
  };
  SubGroup sub_group(int64_t k) const;
  // The three state arrays of sub-group k, as f32 views of `length` elements.
  struct StateViews {
    Tensor master, exp_avg, exp_avg_sq;
  };
  StateViews host_views(int64_t k) const;          // cpu
  StateViews buffer_views(int64_t k, int buffer) const;  // nvme: in swap buffer `buffer`
  void step_sub_group(const StateViews& state, int64_t k, const Tensor& grad, const std::vector<AdamRange>& ranges,
                      const Tensor& model_copy_out, const GradientScale& grad_scale) const;
  void step_nvme(const std::function<void(const StateViews&, int64_t)>& step_one);
  void initialise_nvme(const Tensor& initial_master);
  // Reads or writes elements [begin, begin + n) of a field through `move(state, offset, count,
  // at)`, sub-group by sub-group; nvme reads each chunk in (and writes it back when `modify`).
  void for_each_range(AdamStateField field, int64_t begin, int64_t n, bool modify,
                      const std::function<void(const Tensor& state, int64_t at)>& move) const;

  int64_t numel_ = 0;
  int64_t sub_group_size_ = 0;
  OffloadOptions options_;
  bool pinned_ = false;
  std::vector<HostBuffer> host_state_;  // cpu: master, exp_avg, exp_avg_sq (S each)
  std::unique_ptr<NvmeSwapper> swapper_;
};

}  // namespace zt
