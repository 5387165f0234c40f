// Checkpoints of ZeRO stages 1-3 (zero/sharded_optimizer.h): each rank writes its shard of the
// fp32 masters and of the optimizer state, and at stage 3 of the partitioned weights, as
// fragments (Note [Checkpoint fragments] in runtime/checkpoint.h), and reads its shard back.
//
// Everything is saved per parameter, through the shard's pieces (Note [ZeRO checkpoint pieces]):
// "master/<param>", "model/<state_dict name>" (stage 3, weights not gathered) and
// "optim/<optimizer key>/<param>" (e.g. "optim/state.1.0.exp_avg/fc1.bias"; the optimizer steps
// one tensor per parameter group, key state.<group>.0.*, whose elements belong to that group's
// parameters: Note [ZeRO parameter groups]). No entry depends on the data-parallel size, the
// stage or offload, so a checkpoint saved by any ZeRO stage at N ranks, offloaded or not, loads
// into any stage at M ranks, offloaded or not.
#pragma once
#include "optim/optimizer.h"
#include "runtime/checkpoint.h"
#include "zero/sharded_optimizer.h"

namespace zt {

// Sets state.optimizer to the optimizer's state (ShardedOptimizer::optimizer_state) and moves
// this rank's masters (separate fp32 masters only; an f32 model's are its weights), its pieces of
// the partitioned weights missing from state.model, and the optimizer tensors into
// state.fragments.
void add_zero_fragments(const ShardedOptimizer& zero, const Optimizer& optimizer, CheckpointState& state);
// This rank's part of the weights (ShardedOptimizer::load_model_state), its masters (from the
// saved masters, else from the weights) and its shard of the optimizer state; the optimizer
// entries are checked before anything is loaded.
void load_zero_state(ShardedOptimizer& zero, const CheckpointState& state, Optimizer& optimizer);

}  // namespace zt
