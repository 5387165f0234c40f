// Checkpoints of ZeRO stages 1 and 2 (zero/zero_optimizer.h): each rank writes its shard of the
// fp32 masters and of the optimizer state as fragments (Note [Checkpoint fragments] in
// runtime/checkpoint.h) and reads its shard back.
//
// Masters are saved per parameter ("master/<name>", the part of the parameter inside this rank's
// flat range), so they do not depend on the data-parallel size. The optimizer's tensors belong to
// the flat shard: "optim/<key>" is a flat (Np,) tensor of which each rank writes [rank*S, +S); Np
// depends on the data-parallel size, so loading them needs the size they were saved at.
#pragma once
#include "optim/optimizer.h"
#include "runtime/checkpoint.h"
#include "zero/zero_optimizer.h"

namespace zt {

// Moves this rank's masters (separate fp32 masters only; an f32 model's are its weights) and the
// optimizer tensors of state.optimizer into state.fragments.
void add_zero_fragments(const ZeroOptimizer& zero, CheckpointState& state);
// After the model's weights were loaded: this rank's masters (from the saved masters, else from
// the weights) and its shard of the optimizer state.
void load_zero_state(ZeroOptimizer& zero, const CheckpointState& state, Optimizer& optimizer);

}  // namespace zt
