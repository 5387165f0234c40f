// ShardedOptimizer: what ZeRO stages 0-3 share (DESIGN.md §5). Each rank owns a shard of S
// elements of the model's parameters (at stage 0 the whole model): fp32 masters for it (the
// shard itself for an f32 model), the optimizer state for it (the optimizer sees one tensor per
// parameter group, that group's range of the master shard), and its reduced gradients. The base
// implements bind(), the loss scaler, the unscale (Note [ZeRO gradient scaling]) with one
// all-reduced sum of squares that gives every rank the same skip decision and the global norm
// for clipping across shards, the step of the shard (on the device, or offloaded to the CPU
// Adam) and the state checkpoints need; the stages decide where parameters and gradients live
// (zero/zero_optimizer.h for stages 0-2, zero/zero_stage3.h for stage 3).
//
// The engine drives every stage through this interface (Note [Engine step]):
//   set_syncing(boundary); backward; after_backward();   every micro-step
//   finish_gradient_reduction(); unscale_gradients(); ... step(); zero_grad()   at the boundary
//
// Note [ZeRO checkpoint pieces]
// shard_pieces() says which elements of which parameter this rank's shard holds. Checkpoints
// (runtime/zero_checkpoint.h) write masters and optimizer state per parameter through them, so
// what is saved does not depend on the data-parallel size or the stage's layout: a checkpoint
// saved by stage 1, 2 or 3 at N ranks loads into any of them at M ranks, with or without offload.
//
// Note [ZeRO parameter groups]
// The optimizer may have several parameter groups with their own hyperparameters (weight decay
// on matrices only: optim/optimizer.h make_param_groups). The layout is ordered by group, so
// every group is one contiguous range of the padded parameter space and each rank's shard meets
// it in one contiguous range, group_ranges()[g] (0 elements on some ranks). Stages 1-2 put
// group 0's parameters first in the flat buffer, then group 1's; stage 3 makes one unit per
// (module, group) and places the units' slices in the shard group by group. The groups' ranges
// tile the shard (padding belongs to the group it follows), and bind() gives the optimizer one
// tensor per group: the view of that range of the master shard (a group without any parameter
// stays empty in the optimizer and has no elements on any rank). Every rank gives every group a
// gradient, an empty one included, so the optimizer's per-tensor step counts, and therefore the
// scalars each rank checkpoints, agree across ranks. The groups are named before the layout is
// built (ShardedOptions::param_groups, from parameter_group_names()); bind() checks the
// optimizer's groups against them.
//
// Note [ZeRO gradient scaling]
// The optimizer reads the reduced gradient shard (S,) divided by the loss scale and, when the
// global norm exceeds gradient_clipping, times the clipping coefficient. Where the masters are
// separate (a bf16/f16 model, or a ZeRO-3 shard kept on the host) and not offloaded, and the bound
// optimizer supports_scaled_gradients() (Adam/AdamW), or the step is offloaded (the store's CPU
// Adam takes the same factors), that costs no pass of its own: the sum of
// squares is taken over the shard as it is (16-bit values widen exactly, the double accumulation
// runs in the same order, and a power-of-two loss scale rescales it exactly, so the sum is the
// one of the unscaled fp32 copy), and step_shard hands the shard's group ranges with 1 / scale
// and the coefficient to the optimizer's step, which applies them with the roundings of the
// passes they replace (Note [Folded gradient scaling] in optim/optimizer.h): the same parameters
// bit for bit, without the fp32 master gradient (4 bytes per element of S, a transient of the
// step) and the cast, unscale and clip passes over it. Otherwise (f32 models, whose master
// gradient is the shard itself; SGD; a loss scale that is no power of two) the shard is unscaled
// into the fp32 master gradient and clipped there (under offload a host f32 buffer of that step's).
//
// Note [ZeRO-Offload]
// With offload_optimizer the fp32 master, exp_avg and exp_avg_sq of the shard live in an
// OffloadedAdamState (zero/offload_store.h: host memory, or NVMe files) and the step runs there
// with the CPU Adam; the device keeps no master. The step:
// - unscale: the sum of squares of the reduced gradient shard (compute dtype, on the device) is
//   taken there and all-reduced as without offload (skip decision and clipping norm), so every
//   rank decides alike; the shard is copied as it is into a host buffer (S,) of its dtype
//   (page-locked when pin_memory and a pinned allocator exist; ZeRO-2 streams every micro-step's
//   gradients into that buffer instead, Note [ZeRO-Offload gradient streaming] in
//   zero/zero_optimizer.h, and the sum of squares is taken there) and the CPU Adam applies 1 / scale
//   and the clipping coefficient as it reads it (Note [ZeRO gradient scaling]): no fp32 gradient,
//   no host pass of its own. A loss scale that is no power of two takes the fp32 path instead: the
//   shard unscaled into a host f32 buffer for that step, and clipped there.
// - step: the store steps each group's range with that group's hyperparameters (lr as the
//   schedule set it, weight_decay, betas, eps; AdamW decouples the decay) and writes the updated
//   weights in the compute dtype into the parameter shard: directly when the shard is a
//   contiguous host tensor, else through a host staging tensor and one copy to the device.
// - Note [ZeRO-Offload pipeline]: with cpu offload the folded step runs in chunks of
//   min(sub_group_size, 2^25) elements. Every chunk's gradient copy to the host is queued at once
//   (raw::copy_async, Note [Asynchronous transfers] in core/ops.h: the device's copy stream);
//   the CPU Adam steps chunk c as soon as its copy has landed, and queues its updated weights
//   back to the device, so both transfers hide behind the CPU Adam but for the first and last
//   chunk. nvme steps the shard in one call (its own pipeline overlaps the disk, Note [Offloaded
//   Adam state]).
// - the Optimizer object still holds one tensor per group (the group's range of the parameter
//   shard, which never gets a gradient), its schedule-driven lr/weight_decay and its step count:
//   step() calls optimizer.step(), which updates nothing and counts the step. Only Adam and AdamW
//   can be offloaded; bind() and step() refuse others.
// - checkpoints: optimizer_state() reports the store's moments and the per-group step counts
//   under the keys Adam uses ("state.<g>.0.exp_avg", ...), and master_values() the store's
//   master, so they are saved as the same per-parameter fragments as without offload and a
//   checkpoint loads with or without offload. With Adam's arithmetic in the same kernel
//   (raw::adam_step_) and the unscale/clip in the same ops, an offloaded run on the CPU is
//   bit-identical to the run without offload.
// Memory: the store's host bytes are optimizer_state on the host allocator (12 S, or buffer_count
// sub-groups on nvme); the host gradient buffer (k S, k = 2 bytes for bf16/f16 models, 4 for f32)
// is gradients; the staging copy of a device model (k S) is communication.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "parallel/communicator.h"
#include "zero/host_tensor.h"
#include "zero/mixed_precision.h"
#include "zero/offload_store.h"

namespace zt {

// Flat offsets and shard sizes are multiples of this many elements (64 bytes of f32).
inline constexpr int64_t kZeroAlign = 16;

inline int64_t zero_round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// What stages 1-3 share among their options.
struct ShardedOptions {
  // The names of the parameters in each optimizer group (parameter_group_names()); empty: one
  // group of every parameter that requires grad. Each of those must be in exactly one group.
  std::vector<std::vector<std::string>> param_groups;
  // Note [ZeRO-Offload]. offload.rank is set from the communicator.
  bool offload_optimizer = false;
  OffloadOptions offload;
  // false: ZeRO stage 0. Nothing is partitioned (each rank's shard is the whole model) while
  // gradients are still averaged over the communicator, so every rank holds the same state.
  bool partition = true;
};

// The names of `module`'s parameters in each of `optimizer`'s groups, matched by identity (a
// tied tensor under its first name). Tensors that are no parameter of the module are left out:
// bind() reports them.
std::vector<std::vector<std::string>> parameter_group_names(const Module& module, const Optimizer& optimizer);

// Elements [param_offset, param_offset + length) of the flattened parameter `name` (its first
// name when tied) are elements [shard_offset, shard_offset + length) of this rank's shard.
struct ShardPiece {
  std::string name;
  Shape shape;  // the whole parameter's
  int64_t param_offset = 0, shard_offset = 0, length = 0;
};

// Group g's elements of this rank's shard: [offset, offset + length) (Note [ZeRO parameter groups]).
struct GroupRange {
  int64_t offset = 0, length = 0;
};

class ShardedOptimizer : public PrecisionOptimizer {
 public:
  ~ShardedOptimizer() override;
  ShardedOptimizer(const ShardedOptimizer&) = delete;
  ShardedOptimizer& operator=(const ShardedOptimizer&) = delete;

  // ---- PrecisionOptimizer ----
  // One tensor per parameter group: its range of the fp32 master shard (under offload, of the
  // parameter shard; the optimizer never steps it).
  std::vector<Tensor> master_parameters() const override { return group_masters_; }
  // The optimizer must have the groups the layout was built with (ShardedOptions::param_groups;
  // one group when none were given), each holding parameters of the model (or their originals)
  // or the group's master; each group then holds its master. Under offload: Adam or AdamW only.
  void bind(Optimizer& optimizer) const override;
  LossScaler& loss_scaler() override { return scaler_; }
  // Clips by the global norm over every rank's gradient shard, from the sum of squares
  // unscale_gradients() all-reduced (no second pass over the gradient); with folded scaling the
  // optimizer's step applies the coefficient (Note [ZeRO gradient scaling]).
  double clip_gradients(double max_norm) override;

  // ---- the engine's protocol around backward ----
  // Whether the coming backward ends at the accumulation boundary.
  virtual void set_syncing(bool syncing) = 0;
  // After every backward (every micro-step), once autograd has returned.
  virtual void after_backward() {}
  // Completes the reduction of this step's gradients into the shard; before unscale_gradients.
  virtual void finish_gradient_reduction() = 0;

  // ---- layout ----
  virtual int stage() const = 0;
  int64_t shard_numel() const { return shard_; }                     // S
  int64_t padded_numel() const { return shard_ * int64_t(world()); }  // every rank's shard
  // This rank's fp32 master shard (S,); undefined under offload (the store holds it).
  const Tensor& master_shard() const { return master_; }
  // The fp32 master gradient (S,) after unscale_gradients (host f32 under offload); undefined
  // when the step folds the scaling into the optimizer (folds_gradient_scaling()).
  const Tensor& master_gradient() const { return master_grad_; }
  // Whether this step's optimizer reads the gradient shard as it is, with the unscale and clip
  // factors (Note [ZeRO gradient scaling]); known after unscale_gradients.
  bool folds_gradient_scaling() const { return folded_grad_.defined(); }
  // Whether the masters carry more than the weights (a bf16/f16 model), so checkpoints save them.
  bool has_separate_masters() const { return dtype_ != DType::f32; }
  // This rank's parameter elements (S,) in the compute dtype, laid out as the master shard.
  virtual Tensor parameter_shard() const = 0;
  // Whether parameter_shard() is the shard's own memory (false: a copy, as under NVMe offload).
  virtual bool parameter_shard_resident() const { return true; }
  // See Note [ZeRO checkpoint pieces].
  virtual std::vector<ShardPiece> shard_pieces() const = 0;
  // See Note [ZeRO parameter groups].
  const std::vector<GroupRange>& group_ranges() const { return groups_; }

  // ---- offload (Note [ZeRO-Offload]) ----
  bool offloaded() const { return offload_ != nullptr; }

  // ---- partitioning ----
  bool partitioned() const { return options_.partition; }
  // Whether this rank's shard goes into checkpoints: every rank's when partitioned, else rank
  // 0's alone (the others hold the same values).
  bool writes_checkpoint_fragments() const { return options_.partition || data_parallel_rank() == 0; }
  const OffloadedAdamState* offloaded_state() const { return offload_.get(); }
  // Host memory held for the offload: the store's (state or swap buffers), the gradient buffer
  // and the staging copy of the weights. 0 without offload.
  int64_t offload_host_bytes() const;

  // ---- optimizer state in checkpoints (runtime/zero_checkpoint.h) ----
  // The fp32 master shard (S,): master_shard(), or a host copy of the store's.
  Tensor master_values() const;
  // Sets the masters from (S,) values of any float dtype and device.
  void load_master_values(const Tensor& values);
  // The optimizer's state_dict(); under offload with the store's moments and the groups' step
  // counts under Adam's keys, so both save alike.
  OptimizerState optimizer_state(const Optimizer& optimizer) const;
  // The optimizer's load_state_dict(); under offload the moments and step counts go to the store.
  void load_optimizer_state(Optimizer& optimizer, const OptimizerState& state);

  // ---- the model's weights in checkpoints ----
  // The module state_dict entries every rank holds whole. Stages 1-2: all of them. Stage 3: its
  // buffers and frozen parameters, or (gather_partitioned) every entry with the partitioned
  // parameters gathered, which is collective.
  virtual TensorDict model_state(bool gather_partitioned) { return module_->state_dict(); }
  // Stage 3: (state_dict name, name in shard_pieces()) of every partitioned parameter slot, tied
  // names included. Empty when the parameters are not partitioned.
  virtual std::vector<std::pair<std::string, std::string>> partitioned_state_names() const { return {}; }
  // Loads full weights (a state_dict, every name present): stages 1-2 into the module, stage 3
  // this rank's pieces into its parameter shard and the rest into the module.
  virtual void load_model_state(const TensorDict& state) { module_->load_state_dict(state); }

 protected:
  // Collective over comm (null: a world of one). `originals`: tensors a program's optimizer may
  // hold in place of the parameters (the f32 parameters before a dtype move, in
  // named_parameters() order), known to bind().
  ShardedOptimizer(std::shared_ptr<Module> module, std::shared_ptr<Communicator> comm, LossScaler scaler,
                   const std::vector<Tensor>& originals, ShardedOptions options);
  // The module's parameters that require grad, checked to share one dtype and device (which
  // become dtype_ and device_).
  std::vector<std::pair<std::string, Tensor>> trainable_parameters(const char* who);
  // The group of each of `named` (ShardedOptions::param_groups), and how many groups there are.
  std::vector<size_t> parameter_groups(const std::vector<std::pair<std::string, Tensor>>& named) const;
  size_t group_count() const { return options_.param_groups.empty() ? 1 : options_.param_groups.size(); }
  // Sets shard_, the groups' ranges and the master over this rank's parameter shard (S,): the
  // shard itself for f32 on the model's device, else an fp32 copy on the model's device counted
  // as optimizer state; under offload the store, initialised from it.
  void init_master(const Tensor& parameter_shard, std::vector<GroupRange> groups);
  // For a bf16/f16 model, starts the masters from `originals` (the f32 parameters before the dtype
  // move, named_parameters() order) instead of the compute dtype's rounding of them. A piece is
  // taken only where the original rounds to the weight this rank holds, so an original of a rank
  // whose weights were replaced by rank 0's broadcast is not used. Call after init_master and the
  // broadcast.
  void start_masters_from(const std::vector<Tensor>& originals);
  // Under offload the optimizer's per-group tensors are only placeholders (Note [ZeRO-Offload]);
  // this points them at zero-stride views that hold no memory, so they stop keeping the
  // parameter shard alive (offload_param nvme frees it). Before bind().
  void release_group_placeholders();
  // Tensors bind() accepts in group `group` of an optimizer besides the masters and the originals.
  void add_known_parameter(const Tensor& t, size_t group);
  // grad_shard (S,) in the compute dtype (undefined: zeros) divided by the loss scale, into the
  // fp32 master gradient or folded into the optimizer's step (Note [ZeRO gradient scaling]);
  // true when every rank's shard is finite. Also keeps the global sum of squares for
  // clip_gradients.
  bool unscale_into_master(const Tensor& grad_shard);
  // The fp32 path of unscale_into_master: grad_shard / scale into master_grad_, given to the
  // optimizer's groups as their gradients.
  void unscale_into_fp32(const Tensor& grad_shard, double inverse);
  // The optimizer's update of the masters, then the updated weights into parameter_shard (S,).
  void step_shard(Optimizer& optimizer, const Tensor& parameter_shard);
  // Drops the master gradient (a separate fp32 one is allocated by each step's unscale) and the
  // folded step's gradient and factors.
  void clear_master_grad();
  // The partition: how many shards there are and which is this rank's (1 and 0 at stage 0).
  int world() const { return options_.partition ? data_parallel_size() : 1; }
  int rank() const { return options_.partition ? data_parallel_rank() : 0; }
  // The communicator's group, over which gradients are averaged whether partitioned or not.
  int data_parallel_size() const { return comm_ ? comm_->size() : 1; }
  int data_parallel_rank() const { return comm_ ? comm_->rank() : 0; }
  // Under offload: the host gradient shard (S,) in the compute dtype that the CPU Adam reads.
  const Tensor& offload_gradient() const { return host_grad_.tensor(); }
  // The page-locked allocator for offload transfers (null: pageable memory).
  Allocator* transfer_allocator() const {
    return options_.offload.pin_memory ? options_.offload.pinned_allocator : nullptr;
  }

  std::shared_ptr<Module> module_;
  std::shared_ptr<Communicator> comm_;
  LossScaler scaler_;
  ShardedOptions options_;
  int64_t shard_ = 0;
  DType dtype_ = DType::f32;       // the parameters' (compute) dtype
  Device device_ = Device::cpu();  // the parameters' device, where collectives run
  Tensor master_;                  // (S,) f32 on device_; undefined under offload
  Tensor master_grad_;             // (S,) f32: a view of the reduced shard for f32 models
  double grad_sum_sq_ = 0;         // of the unscaled gradient over every rank's shard (unscale_into_master)
  // bind() had the optimizer write the parameter shard in its step (Optimizer::set_model_copy).
  mutable bool optimizer_writes_weights_ = false;
  // bind()'s optimizer scales gradients in its step, and the masters are separate, not offloaded.
  mutable bool optimizer_scales_gradients_ = false;
  bool separate_ = false;          // master_ is its own tensor (else the parameter shard)

 private:
  struct Known {
    const TensorImpl* impl;  // identity only: the tensor is not kept alive
    size_t group;            // kAnyGroup: an original whose name is unknown
  };
  static constexpr size_t kAnyGroup = size_t(-1);
  void check_offloadable(const Optimizer& optimizer) const;
  // The offloaded step of the folded gradient shard, chunk by chunk with the copies to and from
  // the device overlapped (Note [ZeRO-Offload pipeline]); device_shard: the parameter shard when
  // the updated weights go back to it from `weights`, else undefined.
  void step_offloaded_in_chunks(const std::vector<AdamRange>& ranges, const Tensor& weights,
                                const Tensor& device_shard);
  // Elements per chunk of that pipeline (at most: sub_group_size caps it): 64 MiB of bf16, so
  // the first chunk's copy delays the CPU Adam by about a millisecond.
  static constexpr int64_t kOffloadChunk = int64_t(1) << 25;
  // Whether this step folds the scaling (Note [ZeRO gradient scaling]) for grad_shard and 1 / scale.
  bool folds_scaling(const Tensor& grad_shard, double inverse) const;

  std::vector<Known> known_;
  std::vector<GroupRange> groups_;
  std::vector<Tensor> group_masters_;  // views of master_ (of the parameter shard under offload)
  // A folded step (Note [ZeRO gradient scaling]): the reduced shard (S,) as it is, and the factors.
  Tensor folded_grad_;
  GradientScale grad_scale_;
  // Offload (Note [ZeRO-Offload]).
  std::unique_ptr<OffloadedAdamState> offload_;
  HostTensor host_grad_;            // (S,) in the compute dtype
  HostTensor host_weights_;         // (S,) compute dtype, for a parameter shard on a device
  std::vector<int64_t> offload_steps_;  // Adam steps taken per group
};

}  // namespace zt
