// ZeRO stages 0, 1 and 2 (DESIGN.md §5): the model's parameters live in one flat buffer, each
// rank keeps fp32 masters and optimizer state only for its shard of it, and (stage 2) only its
// shard of the gradients. Stage 0 is stage 1 with one shard of everything on every rank
// (ShardedOptions::partition off): gradients are still averaged over the ranks, and the step is
// the same fused step over the flat buffer, without the all_gather. A ShardedOptimizer
// (zero/sharded_optimizer.h), so the engine drives it as it drives stage 3; what the stages share
// (bind, masters, unscale, clipping) lives there.
//
// Note [ZeRO flat layout]
// The parameters that require grad (one dtype) are packed into a flat buffer of Np elements, by
// optimizer group and in registration order within a group (Note [ZeRO parameter groups] in
// zero/sharded_optimizer.h), each at an offset rounded up to kZeroAlign; Np is the total rounded
// up to a multiple of W * kZeroAlign (W the data-parallel size); the padding is zeros that every
// rank keeps at zero. The module's parameters become views into it. Rank r owns the flat range
// [r*S, (r+1)*S), S = Np / W. Its master is that range in fp32: for an f32 model the range of the
// flat buffer itself (no copy), otherwise a separate f32 tensor. Group g covers the flat range
// from its first parameter's offset to the next group's, and the optimizer built by the engine
// sees, per group, the view of the master shard where the two meet, so the existing
// Adam/AdamW/SGD, LR schedules and fused adam_step work unchanged. With offload_optimizer the
// masters live in the offloaded store instead (Note [ZeRO-Offload]).
//
// Note [ZeRO gradient reduction]
// Backward reports each finished parameter gradient through grad-ready hooks (as DataParallel).
// Stage 1 packs gradients into a flat gradient buffer (Np,) in buckets of contiguous ranges
// (reduce_bucket_size elements, highest range first: backward finishes the last parameters first)
// and averages each bucket with all_reduce; the rank then reads its shard from it. Stage 2 cuts
// every rank's shard into chunks of reduce_bucket_size / W elements; bucket k holds chunk k of
// every shard, (W * B,), and one reduce_scatter averages it into chunk k of the owner's gradient
// shard. Bucket k starts once every parameter overlapping it has its gradient; buckets start in
// one fixed order on every rank. A parameter's gradient is dropped as soon as every bucket it
// overlaps has been packed, so full-size gradients exist only for buckets not yet started. A
// parameter that got no gradient counts as zeros.
// Accumulation (gradient_accumulation_steps > 1): stage 1 reduces at the boundary only
// (set_syncing(false): gradients accumulate in the parameters and nothing is reduced). Stage 2
// reduces every micro-step, as DeepSpeed's stage 2 and our stage 3 do (set_syncing is ignored):
// the first micro-step of a step writes the shard, later ones reduce into a buffer of the bucket
// and add it into the shard, so no full-size gradient outlives its backward and the rank holds S
// gradient elements, not Np, through the whole accumulation. The sum is in the compute dtype, as
// stage 0 sums micro-batches in the parameters' gradients; one rank adds exactly what stage 0
// adds, W ranks average each micro-step before the sum (a different rounding, one reduce_scatter
// per bucket per micro-step).
//
// Note [ZeRO-Offload gradient streaming]
// Stage 2 with offload_optimizer keeps no gradient shard on the device. Each bucket's reduced
// chunk (a buffer of the bucket's) goes to an OffloadGradientStream (zero/offload_grad_stream.h):
// copied to the host on the copy stream once its reduction is done, straight into the host
// gradient shard (compute dtype, the buffer the CPU Adam reads) on a step's first micro-step,
// else into a staging slot that a worker thread adds into it: the same additions, in the same
// dtype and order, as the device's shard gets without offload, so the two runs stay bitwise
// equal. The copies overlap backward and the additions the next micro-step; the boundary waits
// for the last. The device's model states are the parameters alone (2 bytes/parameter bf16),
// ZeRO-Offload's 2Ψ; it holds gradients only for buckets in flight. The stream cuts the shard
// by stream_layout() (zero/offload_grad_stream.h): buckets of at most 2^26 elements, whatever
// larger reduce_bucket_size, so little is left to copy and add once backward ends, and staging
// slots for what four configured buckets hold, so one micro-step's buckets fit and backward does
// not wait for the host (four slots of 2^25 elements made GPT 1.5B on one H200 lose a quarter of
// its tokens/s to that wait). Stage 1 keeps its full gradient buffer on the device (what stage 1
// means) and moves the shard at the step.
//
// The step: the gradient shard unscaled (Note [ZeRO gradient scaling]: bf16/f16 with Adam/AdamW
// folds the unscale and the clipping into the optimizer's pass over the shard as it is; else an
// fp32 master-gradient shard, for bf16/f16 a buffer that lives for the step only, as DeepSpeed's
// fp32 gradient partition); the non-finite check and the clipping norm are all-reduced (sum of
// squares) so every rank decides alike; the optimizer steps the shard; the shard is written back
// to the compute dtype and all_gather rebuilds the flat parameter buffer on every rank.
//
// Memory (allocator categories): flat parameters under parameters, the flat gradient buffer
// (stage 1) or gradient shard (stage 2; on the host under offload) under gradients, the buckets'
// buffers and staging slots under communication, separate masters and the optimizer's
// moments under optimizer_state. Adam's optimizer state per rank is 8*Np/W bytes for an f32 model
// (m, v; the master is the parameter shard) and 12*Np/W for bf16/f16 (fp32 master, m, v). With
// offload_optimizer the 12*Np/W bytes are host memory (or NVMe) whatever the dtype, plus a host
// gradient shard in the compute dtype (2 or 4 * Np/W, gradients), which at stage 2 replaces the
// device's.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "parallel/communicator.h"
#include "zero/offload_grad_stream.h"
#include "zero/sharded_optimizer.h"

namespace zt {

struct ZeroOptions {
  int stage = 1;                              // 0 (unpartitioned), 1 or 2
  int64_t reduce_bucket_size = 500'000'000;   // elements per reduction bucket (DeepSpeed's unit)
  bool broadcast_parameters = true;           // start every rank from rank 0's values
  ShardedOptions sharded{};                   // parameter groups, offload
};

class ZeroOptimizer final : public ShardedOptimizer {
 public:

  // Collective over comm (null: a world of one). Replaces the module's parameters with views of
  // the flat buffer and registers a grad-ready hook on each; build it after the dtype move.
  // `originals`: tensors a program's optimizer may hold in place of the parameters (the f32
  // parameters before the move), recognised by bind().
  ZeroOptimizer(std::shared_ptr<Module> module, std::shared_ptr<Communicator> comm, ZeroOptions options,
                LossScaler scaler, std::vector<Tensor> originals = {});
  ~ZeroOptimizer() override;

  bool unscale_gradients() override;
  void step(Optimizer& optimizer) override;
  void zero_grad() override;

  // See Note [ZeRO gradient reduction]. finish_gradient_reduction launches what is left and waits
  // (under offload, also for the host's additions); a no-op when no gradient arrived since the
  // last call or (stage 1) while not syncing. Stage 2's after_backward completes the micro-step's
  // reduction (under offload without waiting for the host).
  void set_syncing(bool syncing) override;
  void after_backward() override;
  void finish_gradient_reduction() override;

  int stage() const override { return options_.stage; }
  Tensor parameter_shard() const override;
  std::vector<ShardPiece> shard_pieces() const override;

  int64_t numel() const { return numel_; }  // parameters' elements (unpadded); padded_numel() is Np
  const Tensor& flat_parameters() const { return flat_; }
  // This rank's reduced gradient shard (S,) in the compute dtype (stage 2 under offload: on the
  // host); undefined before a reduction.
  Tensor gradient_shard() const;
  // Whether each micro-step's gradients go to the host (Note [ZeRO-Offload gradient streaming]).
  bool streams_gradients() const { return options_.stage == 2 && offloaded(); }
  // Host bytes of the stream's staging slots (communication); 0 when not streaming.
  int64_t stream_staging_bytes() const { return stream_ ? stream_->staging_bytes() : 0; }
  int64_t num_buckets() const { return int64_t(buckets_.size()); }
  // Where each parameter lies in the flat buffer.
  struct ParamRange {
    std::string name;
    Shape shape;
    int64_t offset = 0, numel = 0;
  };
  std::vector<ParamRange> layout() const;
  int64_t shard_begin() const { return int64_t(rank()) * shard_; }

 private:
  struct Param {
    std::string name;
    Tensor tensor;  // the view into flat_ that the module holds
    int64_t offset = 0;
    HookHandle hook = 0;
    std::vector<size_t> buckets;  // buckets overlapping this parameter
    int64_t unpacked = 0;         // of those, not yet packed in this pass
    bool arrived = false;         // its gradient arrived in this pass
  };
  struct Bucket {
    int64_t lo = 0, len = 0;  // stage 1: flat range; stage 2: chunk [lo, lo+len) of every shard
    std::vector<size_t> params;
    int64_t pending = 0;
    Tensor buffer;  // stage 2: (W*len,) packed while in flight
    Tensor out;     // stage 2: (len,) the reduced chunk, until retired
    WorkHandle work;
  };

  // Lays out `named` by group (Note [ZeRO flat layout]) and returns the groups' flat ranges'
  // starts, one per group plus Np.
  std::vector<int64_t> build_flat(const std::vector<std::pair<std::string, Tensor>>& named);
  // This rank's part of each group's flat range [starts[g], starts[g+1]).
  std::vector<GroupRange> shard_groups(const std::vector<int64_t>& starts) const;
  void build_buckets();
  // Stage 2: elements per bucket chunk that reduce_bucket_size asks for (at most the shard).
  int64_t configured_chunk() const;
  void on_grad_ready(size_t index);
  void launch_ready_buckets();
  void launch(Bucket& b);
  // Stage 2: takes a reduced chunk to its place (Note [ZeRO gradient reduction]): added into the
  // shard, or handed to the host stream; retire_reductions does so, in launch order, for the
  // buckets whose reduction is done (every one when `all`).
  void retire(Bucket& b);
  void retire_reductions(bool all);
  // Launches what is left of this pass and completes it; false when no gradient arrived.
  bool finish_pass();
  // Packs the parts of the parameter gradients that fall in the flat ranges [lo + r*S, +len),
  // r < ranges (S the shard size), one after another into dst (ranges*len,), zeros elsewhere: one
  // pack_flat_ call (one kernel on CUDA) for every range of a bucket.
  void pack(int64_t lo, int64_t len, int64_t ranges, const Tensor& dst) const;
  void reset_pass();


  ZeroOptions options_;
  std::vector<Param> params_;
  std::vector<Bucket> buckets_;  // in launch order
  int64_t numel_ = 0, padded_ = 0;
  Tensor flat_;         // (Np,) compute dtype: the parameters
  Tensor flat_grad_;    // stage 1: (Np,) compute dtype
  Tensor grad_shard_;   // stage 2: (S,) compute dtype; undefined when streamed to the host
  std::unique_ptr<OffloadGradientStream> stream_;  // stage 2 under offload
  bool syncing_ = true;
  bool reduced_ = false;       // a finished reduction holds this step's gradients
  bool accumulating_ = false;  // stage 2: a micro-step of this step was reduced; the next ones add
  size_t next_bucket_ = 0;
  size_t next_retire_ = 0;     // stage 2: buckets [next_retire_, next_bucket_) are in flight
  int64_t grads_arrived_ = 0;
};

}  // namespace zt
