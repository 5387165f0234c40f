// ZeRO stage 1-3 checkpoint fragments (runtime/zero_checkpoint.h).
#include "runtime/zero_checkpoint.h"

#include <cstdio>
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

// The group of an optimizer key "state.<group>.<index>.<name>" (Note [ZeRO parameter groups]).
size_t key_group(const ShardedOptimizer& zero, const std::string& key) {
  size_t group = 0, index = 0;
  char name[64] = {0};
  const size_t groups = zero.group_ranges().size();
  ZT_CHECK(std::sscanf(key.c_str(), "state.%zu.%zu.%63s", &group, &index, name) == 3 && index == 0,
           "ZeRO checkpoint: unexpected optimizer state key \"", key, "\"; expected \"state.<group>.0.<name>\" (ZeRO "
           "steps one tensor per parameter group)");
  ZT_CHECK(group < groups, "ZeRO checkpoint: optimizer state \"", key, "\" belongs to group ", group,
           " but the optimizer has ", groups, " parameter group(s)");
  return group;
}

// The pieces of `group`'s range, with shard offsets relative to the range's start.
std::vector<ShardPiece> group_pieces(const ShardedOptimizer& zero, const std::vector<ShardPiece>& pieces,
                                     size_t group) {
  const GroupRange range = zero.group_ranges()[group];
  std::vector<ShardPiece> out;
  for (ShardPiece p : pieces) {
    if (p.shard_offset < range.offset || p.shard_offset >= range.offset + range.length) continue;
    p.shard_offset -= range.offset;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

void add_zero_fragments(const ShardedOptimizer& zero, const Optimizer& optimizer, CheckpointState& state) {
  NoGradGuard no_grad;
  state.optimizer = zero.optimizer_state(optimizer);
  if (!zero.writes_checkpoint_fragments()) {  // stage 0 off rank 0: rank 0 writes the same values
    state.optimizer.tensors = TensorDict();
    return;
  }
  const std::vector<ShardPiece> pieces = zero.shard_pieces();
  if (zero.has_separate_masters()) add_pieces(pieces, zero.master_values(), "master/", "", state);
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
    const size_t group = key_group(zero, key);
    const int64_t n = zero.group_ranges()[group].length;
    ZT_CHECK(t.numel() == n, "save_checkpoint: ZeRO optimizer state \"", key, "\" should hold this rank's ", n,
             " elements of group ", group, ", found ", t.str());
    add_pieces(group_pieces(zero, pieces, group), raw::reshape(t, {n}), "optim/" + key + "/", "", state);
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
             "parameter as the ZeRO optimizer needs (\"<key>/<parameter>\"): the checkpoint was saved with one "
             "optimizer state per tensor (a stage-0 model whose parameters differ in dtype or device; load it the "
             "same way) or by an older zerotrain whose flat ZeRO optimizer state is no longer read");
    by_key[entry.substr(0, slash)][entry.substr(slash + 1)] = &t;
  }
  for (const auto& [key, params] : by_key)
    for (const ShardPiece& p : group_pieces(zero, pieces, key_group(zero, key)))
      ZT_CHECK(params.count(p.name), "load_checkpoint: the checkpoint has optimizer state \"", key,
               "\" for some parameters of its group but not for \"", p.name, "\" (saved with other parameter groups?)");
  zero.load_model_state(state.model);
  // The weights just loaded, then the saved fp32 masters where the checkpoint has them (an f32
  // model's masters are its weights; a separate master copy follows them).
  Tensor masters = raw::clone(raw::to(raw::to(zero.parameter_shard(), Device::cpu()), DType::f32));
  if (zero.has_separate_masters())
    read_pieces(pieces, masters, [&](const std::string& name) { return state.master.find(name); });
  zero.load_master_values(masters);
  OptimizerState mine;
  mine.scalars = state.optimizer.scalars;
  for (const auto& [key, params] : by_key) {
    const size_t group = key_group(zero, key);
    Tensor shard;
    {
      MemoryCategoryScope scope(MemoryCategory::optimizer_state);
      shard = zeros({zero.group_ranges()[group].length}, TensorOptions(params.begin()->second->dtype(), Device::cpu()));
    }
    read_pieces(group_pieces(zero, pieces, group), shard, [&](const std::string& name) { return params.at(name); });
    mine.tensors.set(key, shard);
  }
  zero.load_optimizer_state(optimizer, mine);
}

}  // namespace zt
