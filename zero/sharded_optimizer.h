// ShardedOptimizer: what ZeRO stages 1-3 share (DESIGN.md §5). Each rank owns a shard of S
// elements of the model's parameters: fp32 masters for it (the shard itself for an f32 model),
// the optimizer state for it (the optimizer sees one tensor, the master shard (S,)), and its
// reduced gradients. The base implements bind(), the loss scaler, the unscale into the fp32
// master gradients with a non-finite flag agreed by every rank, and global-norm clipping across
// shards; the stages decide where parameters and gradients live (zero/zero_optimizer.h for
// stages 1-2, zero/zero_stage3.h for stage 3).
//
// The engine drives every stage through this interface (Note [Engine step]):
//   set_syncing(boundary); backward; after_backward();   every micro-step
//   finish_gradient_reduction(); unscale_gradients(); ... step(); zero_grad()   at the boundary
//
// Note [ZeRO checkpoint pieces]
// shard_pieces() says which elements of which parameter this rank's shard holds. Checkpoints
// (runtime/zero_checkpoint.h) write masters and optimizer state per parameter through them, so
// what is saved does not depend on the data-parallel size or the stage's layout: a checkpoint
// saved by stage 1, 2 or 3 at N ranks loads into any of them at M ranks.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "parallel/communicator.h"
#include "zero/mixed_precision.h"

namespace zt {

// Flat offsets and shard sizes are multiples of this many elements (64 bytes of f32).
inline constexpr int64_t kZeroAlign = 16;

inline int64_t zero_round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// Elements [param_offset, param_offset + length) of the flattened parameter `name` (its first
// name when tied) are elements [shard_offset, shard_offset + length) of this rank's shard.
struct ShardPiece {
  std::string name;
  Shape shape;  // the whole parameter's
  int64_t param_offset = 0, shard_offset = 0, length = 0;
};

class ShardedOptimizer : public PrecisionOptimizer {
 public:
  ShardedOptimizer(const ShardedOptimizer&) = delete;
  ShardedOptimizer& operator=(const ShardedOptimizer&) = delete;

  // ---- PrecisionOptimizer ----
  // One tensor: this rank's fp32 master shard (S,).
  std::vector<Tensor> master_parameters() const override { return {master_}; }
  // The optimizer must have one group holding every parameter; it then holds the master shard.
  void bind(Optimizer& optimizer) const override;
  LossScaler& loss_scaler() override { return scaler_; }
  // The global norm over every rank's master-gradient shard (one all_reduce of the sums of squares).
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
  const Tensor& master_shard() const { return master_; }
  bool has_separate_masters() const { return separate_; }
  // This rank's parameter elements (S,) in the compute dtype, laid out as the master shard.
  virtual Tensor parameter_shard() const = 0;
  // See Note [ZeRO checkpoint pieces].
  virtual std::vector<ShardPiece> shard_pieces() const = 0;

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
  // hold in place of the parameters (the f32 parameters before a dtype move), known to bind().
  ShardedOptimizer(std::shared_ptr<Module> module, std::shared_ptr<Communicator> comm, LossScaler scaler,
                   const std::vector<Tensor>& originals);
  // The module's parameters that require grad, checked to share one dtype and device.
  std::vector<std::pair<std::string, Tensor>> trainable_parameters(const char* who) const;
  // Sets shard_ and the master over this rank's parameter shard (S,): the shard itself for f32,
  // else an fp32 copy counted as optimizer state.
  void init_master(const Tensor& parameter_shard);
  // Tensors bind() accepts in an optimizer besides the masters and the originals.
  void add_known_parameter(const Tensor& t) { known_.push_back(t.impl_ptr().get()); }
  // grad_shard (S,) in the compute dtype (undefined: zeros) into the fp32 master gradient,
  // divided by the loss scale; true when every rank's shard is finite.
  bool unscale_into_master(const Tensor& grad_shard);
  // Drops the master gradient; keep_buffer keeps a separate fp32 buffer for the next step.
  void clear_master_grad(bool keep_buffer);
  int world() const { return comm_ ? comm_->size() : 1; }
  int rank() const { return comm_ ? comm_->rank() : 0; }

  std::shared_ptr<Module> module_;
  std::shared_ptr<Communicator> comm_;
  LossScaler scaler_;
  int64_t shard_ = 0;
  DType dtype_ = DType::f32;  // the parameters' (compute) dtype
  Tensor master_;             // (S,) f32
  Tensor master_grad_;        // (S,) f32: a view of the reduced shard for f32 models
  bool separate_ = false;

 private:
  std::vector<const TensorImpl*> known_;  // identities only: the tensors are not kept alive
};

}  // namespace zt
