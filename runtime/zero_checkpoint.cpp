// ZeRO stage 1-3 checkpoint fragments (runtime/zero_checkpoint.h).
#include "runtime/zero_checkpoint.h"

#include <functional>
#include <map>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"

namespace zt {

namespace {

// shard's elements of every piece, as fragments of "<prefix><piece name><suffix>".
void add_pieces(const std::vector<ShardPiece>& pieces, const Tensor& shard, const std::string& prefix,
                const std::string& suffix, CheckpointState& state) {
  for (const ShardPiece& p : pieces) {
    const Tensor part = raw::clone(raw::narrow(shard, 0, p.shard_offset, p.length));
    state.fragments.push_back({prefix + p.name + suffix, p.shape, p.param_offset, part});
  }
}

// Copies every piece's range of the full tensors in `full` (by piece name) into shard.
void read_pieces(const std::vector<ShardPiece>& pieces, const Tensor& shard,
                 const std::function<const Tensor*(const std::string& name)>& full) {
  for (const ShardPiece& p : pieces) {
    const Tensor* t = full(p.name);
    if (!t) continue;
    raw::copy_(raw::narrow(shard, 0, p.shard_offset, p.length),
               raw::narrow(raw::reshape(*t, {t->numel()}), 0, p.param_offset, p.length));
  }
}

}  // namespace

void add_zero_fragments(const ShardedOptimizer& zero, CheckpointState& state) {
  NoGradGuard no_grad;
  const std::vector<ShardPiece> pieces = zero.shard_pieces();
  const int64_t S = zero.shard_numel();
  if (zero.has_separate_masters()) add_pieces(pieces, zero.master_shard(), "master/", "", state);
  // Stage 3 without gathered weights: every name of a partitioned parameter, from this rank's shard.
  const auto names = zero.partitioned_state_names();
  for (const auto& [name, owner] : names) {
    if (state.model.contains(name)) continue;
    for (const ShardPiece& p : pieces) {
      if (p.name != owner) continue;
      state.fragments.push_back({"model/" + name, p.shape, p.param_offset,
                                 raw::clone(raw::narrow(zero.parameter_shard(), 0, p.shard_offset, p.length))});
    }
  }
  for (const auto& [key, t] : state.optimizer.tensors) {
    ZT_CHECK(t.numel() == S, "save_checkpoint: ZeRO optimizer state \"", key, "\" should hold this rank's shard of ",
             S, " elements, found ", t.str());
    add_pieces(pieces, raw::reshape(t, {S}), "optim/" + key + "/", "", state);
  }
  state.optimizer.tensors = TensorDict();
}

void load_zero_state(ShardedOptimizer& zero, const CheckpointState& state, Optimizer& optimizer) {
  NoGradGuard no_grad;
  const std::vector<ShardPiece> pieces = zero.shard_pieces();
  // "optim/<key>/<param>" entries (the prefix already stripped) regrouped by key, checked before
  // anything is loaded.
  std::map<std::string, std::map<std::string, const Tensor*>> by_key;
  for (const auto& [entry, t] : state.optimizer.tensors) {
    const size_t slash = entry.find('/');
    ZT_CHECK(slash != std::string::npos, "load_checkpoint: optimizer state \"", entry, "\" is not stored per "
             "parameter as ZeRO stages 1-3 need (\"<key>/<parameter>\"): the checkpoint was saved by ZeRO stage 0 "
             "(load it with stage 0) or by an older zerotrain whose flat ZeRO optimizer state is no longer read");
    by_key[entry.substr(0, slash)][entry.substr(slash + 1)] = &t;
  }
  for (const auto& [key, params] : by_key)
    for (const ShardPiece& p : pieces)
      ZT_CHECK(params.count(p.name), "load_checkpoint: the checkpoint has optimizer state \"", key,
               "\" for some parameters but not for \"", p.name, "\"");
  zero.load_model_state(state.model);
  if (zero.has_separate_masters()) {
    // The weights just loaded, then the saved fp32 masters where the checkpoint has them.
    raw::copy_(zero.master_shard(), zero.parameter_shard());
    read_pieces(pieces, zero.master_shard(), [&](const std::string& name) { return state.master.find(name); });
  }
  OptimizerState mine;
  mine.scalars = state.optimizer.scalars;
  for (const auto& [key, params] : by_key) {
    Tensor shard;
    {
      MemoryCategoryScope scope(MemoryCategory::optimizer_state);
      shard = zeros({zero.shard_numel()}, TensorOptions(params.begin()->second->dtype(), Device::cpu()));
    }
    read_pieces(pieces, shard, [&](const std::string& name) { return params.at(name); });
    mine.tensors.set(key, shard);
  }
  optimizer.load_state_dict(mine);
}

}  // namespace zt
