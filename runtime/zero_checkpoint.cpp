// ZeRO stage 1/2 checkpoint fragments (runtime/zero_checkpoint.h).
#include "runtime/zero_checkpoint.h"

#include <algorithm>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace zt {

void add_zero_fragments(const ZeroOptimizer& zero, CheckpointState& state) {
  const int64_t begin = zero.shard_begin(), S = zero.shard_numel();
  if (zero.has_separate_masters()) {
    for (const auto& p : zero.layout()) {
      const int64_t a = std::max(begin, p.offset), b = std::min(begin + S, p.offset + p.numel);
      if (a >= b) continue;
      state.fragments.push_back(
          {"master/" + p.name, p.shape, a - p.offset, raw::clone(raw::narrow(zero.master_shard(), 0, a - begin, b - a))});
    }
  }
  for (const auto& [key, t] : state.optimizer.tensors) {
    ZT_CHECK(t.numel() == S, "save_checkpoint: ZeRO optimizer state \"", key, "\" should hold this rank's shard of ",
             S, " elements, found ", t.str());
    state.fragments.push_back({"optim/" + key, {zero.padded_numel()}, begin, raw::reshape(t, {S})});
  }
  state.optimizer.tensors = TensorDict();
}

void load_zero_state(ZeroOptimizer& zero, const CheckpointState& state, Optimizer& optimizer) {
  NoGradGuard no_grad;
  const int64_t begin = zero.shard_begin(), S = zero.shard_numel();
  if (zero.has_separate_masters()) {
    // The weights just loaded, then the saved fp32 masters where the checkpoint has them.
    raw::copy_(zero.master_shard(), raw::narrow(zero.flat_parameters(), 0, begin, S));
    for (const auto& p : zero.layout()) {
      const Tensor* saved = state.master.find(p.name);
      const int64_t a = std::max(begin, p.offset), b = std::min(begin + S, p.offset + p.numel);
      if (!saved || a >= b) continue;
      raw::copy_(raw::narrow(zero.master_shard(), 0, a - begin, b - a),
                 raw::narrow(raw::reshape(*saved, {p.numel}), 0, a - p.offset, b - a));
    }
  }
  OptimizerState mine;
  mine.scalars = state.optimizer.scalars;
  for (const auto& [key, t] : state.optimizer.tensors) {
    ZT_CHECK(t.numel() == zero.padded_numel(), "load_checkpoint: ZeRO optimizer state \"", key, "\" holds ",
             t.numel(), " elements but this data-parallel size pads the flat buffer to ", zero.padded_numel(),
             "; load it at the data-parallel size it was saved with");
    mine.tensors.set(key, raw::clone(raw::narrow(raw::reshape(t, {t.numel()}), 0, begin, S)));
  }
  optimizer.load_state_dict(mine);
}

}  // namespace zt
