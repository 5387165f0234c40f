// ZeroStage3Optimizer: construction of the unit layout, the optimizer step and what checkpoints
// need (Note [ZeRO-3 layout] in zero/zero_stage3.h). Gathering, the hooks and the gradient
// reduction are in zero_stage3_gather.cpp.
#include "zero/zero_stage3.h"

#include <algorithm>
#include <map>
#include <set>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"

namespace zt {

ZeroStage3Optimizer::ZeroStage3Optimizer(std::shared_ptr<Module> module, std::shared_ptr<Communicator> comm,
                                         Stage3Options options, LossScaler scaler, std::vector<Tensor> originals)
    : ShardedOptimizer(std::move(module), std::move(comm), scaler, originals, options.sharded),
      options_(options) {
  ZT_CHECK(options_.param_nvme_path.empty() || options_.offload_param, "ZeroStage3Optimizer: param_nvme_path needs "
           "offload_param");
  ZT_CHECK(options_.reduce_bucket_size > 0, "ZeroStage3Optimizer: reduce_bucket_size must be positive, found ",
           options_.reduce_bucket_size);
  ZT_CHECK(options_.prefetch_bucket_size >= 0 && options_.max_live_parameters >= 0 &&
               options_.param_persistence_threshold >= 0,
           "ZeroStage3Optimizer: expected stage3_prefetch_bucket_size, stage3_max_live_parameters and "
           "stage3_param_persistence_threshold >= 0, found ", options_.prefetch_bucket_size, ", ",
           options_.max_live_parameters, " and ", options_.param_persistence_threshold);
  const auto named = trainable_parameters("ZeroStage3Optimizer");
  build_units(named);
  const std::vector<GroupRange> groups = place_slices();
  fill_units_and_shard(named);
  init_master(shard_param_, groups);
  start_masters_from(originals);
  if (!options_.param_nvme_path.empty()) park_shard_on_nvme();
  register_hooks();
}

ZeroStage3Optimizer::~ZeroStage3Optimizer() {
  for (const User& user : users_)
    for (HookHandle h : user.hooks) user.module->remove_hook(h);
  for (HookHandle h : root_hooks_) module_->remove_hook(h);
  for (const Param& p : params_) remove_hook(p.tensor, p.hook);
  // Work handles wait for their operation when dropped, so no buffer is freed under MPI.
  pending_.clear();
  for (Unit& u : units_) u.gather.reset();
}

Tensor ZeroStage3Optimizer::raw_slice(const Tensor& t, int64_t offset, int64_t length) {
  return raw::narrow(t, 0, offset, length);
}

Tensor ZeroStage3Optimizer::unit_view(const Unit& u) const {
  return Tensor::view_of(u.storage, {u.padded}, {1}, 0, dtype_);
}

bool ZeroStage3Optimizer::is_partitioned(const Tensor& t) const {
  for (const Unit& u : units_)
    if (t.storage() == u.storage) return true;
  return false;
}

// Units in module order; users are the modules whose own slots hold unit parameters.
void ZeroStage3Optimizer::build_units(const std::vector<std::pair<std::string, Tensor>>& named) {
  const std::vector<size_t> group = parameter_groups(named);
  std::map<const TensorImpl*, size_t> index;
  for (size_t i = 0; i < named.size(); ++i) {
    index[named[i].second.impl_ptr().get()] = i;
    params_.push_back(Param{named[i].first, named[i].second});
    numel_ += named[i].second.numel();
  }
  std::vector<bool> owned(named.size(), false);
  std::set<const Module*> seen;  // a module registered twice is hooked once
  for (auto& [path, m] : module_->named_modules()) {
    if (!seen.insert(m).second) continue;
    std::vector<size_t> direct;
    for (const auto& [local, t] : m->named_parameters()) {
      if (local.find('.') != std::string::npos) continue;  // a child's
      auto it = index.find(t.impl_ptr().get());
      if (it != index.end()) direct.push_back(it->second);  // frozen ones stay whole
    }
    if (direct.empty()) continue;
    std::map<size_t, Unit> by_group;  // one unit per optimizer group, in group order
    for (size_t i : direct) {
      if (owned[i]) continue;
      owned[i] = true;
      by_group[group[i]].group = group[i];
      by_group[group[i]].params.push_back(i);
    }
    for (auto& [g, unit] : by_group) {
      for (size_t i : unit.params) params_[i].unit = units_.size();
      units_.push_back(std::move(unit));
    }
    User user;
    user.module = m;
    for (size_t i : direct) user.units.push_back(params_[i].unit);
    std::sort(user.units.begin(), user.units.end());
    user.units.erase(std::unique(user.units.begin(), user.units.end()), user.units.end());
    users_.push_back(std::move(user));
  }
  const int64_t W = world();
  for (Unit& u : units_) {
    int64_t offset = 0;
    for (size_t i : u.params) {
      params_[i].offset = offset;
      const int64_t n = params_[i].tensor.numel();
      offset = zero_round_up(offset + n, kZeroAlign);
      u.numel += n;
    }
    u.padded = zero_round_up(std::max<int64_t>(offset, 1), W * kZeroAlign);
    u.slice = u.padded / W;
    u.persistent = u.numel <= options_.param_persistence_threshold;
  }
}

std::vector<GroupRange> ZeroStage3Optimizer::place_slices() {
  std::vector<GroupRange> groups(group_count());
  shard_ = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    groups[g].offset = shard_;
    for (Unit& u : units_) {
      if (u.group != g) continue;
      u.shard_offset = shard_;
      shard_ += u.slice;
    }
    groups[g].length = shard_ - groups[g].offset;
  }
  return groups;
}

// Copies the parameters into their unit buffers (rank 0's values on every rank), this rank's
// slices into the shard, points the module at views of the buffers and releases them.
void ZeroStage3Optimizer::fill_units_and_shard(const std::vector<std::pair<std::string, Tensor>>& named) {
  NoGradGuard no_grad;
  const Device device = named.front().second.device();
  const int64_t S = shard_;
  if (options_.offload_param) {
    host_shard_ = HostTensor(S, dtype_, options_.param_pinned_allocator, MemoryCategory::parameters,
                             "the offloaded parameter shard (offload_param device cpu)");
    shard_param_ = host_shard_.tensor();
    raw::fill_(shard_param_, 0.0);
  } else {
    MemoryCategoryScope scope(MemoryCategory::parameters);
    shard_param_ = zeros({S}, TensorOptions(dtype_, device));
  }
  const bool broadcast = options_.broadcast_parameters && world() > 1;
  for (Unit& u : units_) {
    const size_t bytes = size_t(u.padded) * dtype_size(dtype_);
    u.storage = std::make_shared<StorageImpl>(bytes, device, MemoryCategory::parameters);
    const Tensor full = unit_view(u);
    raw::fill_(full, 0.0);
    for (size_t i : u.params) {
      const Tensor& p = named[i].second;
      raw::copy_(raw::narrow(full, 0, params_[i].offset, p.numel()), raw::reshape(p, {p.numel()}));
    }
    if (broadcast) comm_->broadcast(full, 0);
    raw::copy_(slice_of(shard_param_, u), raw::narrow(full, 0, int64_t(rank()) * u.slice, u.slice));
    u.current = u.persistent;
    if (!u.persistent) u.storage->release();  // one unit's buffer at a time, not the whole model
  }
  if (broadcast)
    for (const auto& [name, b] : module_->named_buffers()) comm_->broadcast(b, 0);
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < params_.size(); ++i) by_name[params_[i].name] = i;
  module_->replace_parameters([&](const std::string& name, const Tensor& old) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return old;
    const Param& p = params_[it->second];
    return raw::view(raw::narrow(unit_view(units_[p.unit]), 0, p.offset, old.numel()), old.shape());
  });
  for (const auto& [name, p] : module_->named_parameters()) {
    auto it = by_name.find(name);
    if (it == by_name.end()) continue;
    params_[it->second].tensor = p;
    add_known_parameter(p, units_[params_[it->second].unit].group);
  }
  MemoryCategoryScope scope(MemoryCategory::gradients);
  grad_shard_ = zeros({S}, TensorOptions(dtype_, device));
}

void ZeroStage3Optimizer::register_hooks() {
  // The pass hooks go first and last on the root, around its own unit hooks (if it has any).
  root_hooks_.push_back(module_->register_forward_pre_hook([this](Module&, const Tensor&) { on_pass_begin(); }));
  for (size_t i = 0; i < users_.size(); ++i) {
    Module& m = *users_[i].module;
    users_[i].hooks.push_back(m.register_forward_pre_hook([this, i](Module&, const Tensor&) { on_forward_pre(i); }));
    users_[i].hooks.push_back(
        m.register_forward_hook([this, i](Module&, const Tensor&, const Tensor&) { on_forward_post(i); }));
    users_[i].hooks.push_back(m.register_backward_pre_hook([this, i](Module&) { on_backward_pre(i); }));
  }
  root_hooks_.push_back(
      module_->register_forward_hook([this](Module&, const Tensor&, const Tensor&) { on_pass_end(); }));
  for (size_t i = 0; i < params_.size(); ++i)
    params_[i].hook = register_grad_ready_hook(params_[i].tensor, [this, i](const Tensor&) { on_grad_ready(i); });
}

std::vector<std::string> ZeroStage3Optimizer::unit_parameters(size_t u) const {
  std::vector<std::string> out;
  for (size_t i : units_.at(u).params) out.push_back(params_[i].name);
  return out;
}

std::vector<ShardPiece> ZeroStage3Optimizer::shard_pieces() const {
  std::vector<ShardPiece> out;
  for (const Unit& u : units_) {
    const int64_t lo = int64_t(rank()) * u.slice;  // this rank's slice of the unit buffer
    for (size_t i : u.params) {
      const Param& p = params_[i];
      const int64_t n = p.tensor.numel();
      const int64_t a = std::max(lo, p.offset), b = std::min(lo + u.slice, p.offset + n);
      if (a < b) out.push_back(ShardPiece{p.name, p.tensor.shape(), a - p.offset, u.shard_offset + a - lo, b - a});
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ZeroStage3Optimizer::partitioned_state_names() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, t] : module_->state_dict()) {
    for (const Param& p : params_) {
      if (t.storage() == p.tensor.storage() && t.offset() == p.tensor.offset() && t.shape() == p.tensor.shape()) {
        out.emplace_back(name, p.name);
        break;
      }
    }
  }
  return out;
}

TensorDict ZeroStage3Optimizer::model_state(bool gather_partitioned) {
  if (gather_partitioned) return gathered_state_dict();
  TensorDict out;
  for (const auto& [name, t] : module_->state_dict())
    if (!is_partitioned(t)) out.set(name, t);
  return out;
}

// One unit gathered at a time: the peak is the result plus one unit.
TensorDict ZeroStage3Optimizer::gathered_state_dict() {
  NoGradGuard no_grad;
  const TensorDict state = module_->state_dict();
  std::vector<Tensor> clones(state.size());
  for (size_t u = 0; u < units_.size(); ++u) {
    const bool was_gathered = units_[u].current;
    fetch(u);
    wait(u);
    size_t k = 0;
    for (const auto& [name, t] : state) {
      if (t.storage() == units_[u].storage) clones[k] = raw::clone(t);
      ++k;
    }
    if (!was_gathered) release(u);
  }
  TensorDict out;
  size_t k = 0;
  for (const auto& [name, t] : state) {
    out.set(name, clones[k].defined() ? clones[k] : raw::clone(t));
    ++k;
  }
  return out;
}

void ZeroStage3Optimizer::load_model_state(const TensorDict& state) {
  NoGradGuard no_grad;
  TensorDict whole;  // buffers and frozen parameters go through the module
  for (const auto& [name, t] : module_->state_dict())
    if (!is_partitioned(t) && state.contains(name)) whole.set(name, state.at(name));
  module_->load_state_dict(whole, /*strict=*/false);
  const Tensor shard = nvme_shard_ ? nvme_shard_->read_all() : shard_param_;
  for (const ShardPiece& piece : shard_pieces()) {
    const Tensor& full = state.at(piece.name);
    ZT_CHECK(full.shape() == piece.shape, "ZeRO-3 load: \"", piece.name, "\" has shape ", shape_str(full.shape()),
             " but the model's parameter has shape ", shape_str(piece.shape));
    raw::copy_(raw::narrow(shard, 0, piece.shard_offset, piece.length),
               raw::narrow(raw::reshape(full, {full.numel()}), 0, piece.param_offset, piece.length));
  }
  if (nvme_shard_) nvme_shard_->write(0, shard);
  // Every gathered buffer is stale now.
  for (size_t u = 0; u < units_.size(); ++u) {
    ZT_CHECK(units_[u].holds == 0, "ZeRO-3 load: called inside a forward that uses ", unit_parameters(u).front());
    release(u);
    units_[u].current = false;
  }
  gather_persistent();
}

bool ZeroStage3Optimizer::unscale_gradients() {
  finish_gradient_reduction();
  return unscale_into_master(grad_shard_);
}

Tensor ZeroStage3Optimizer::parameter_shard() const { return nvme_shard_ ? nvme_shard_->read_all() : shard_param_; }

Tensor ZeroStage3Optimizer::read_slice(const Unit& u) const {
  if (!nvme_shard_) return slice_of(shard_param_, u);
  Tensor slice;
  {
    MemoryCategoryScope scope(MemoryCategory::communication);
    slice = empty({u.slice}, TensorOptions(dtype_, Device::cpu()));
  }
  nvme_shard_->read(u.shard_offset, slice);
  return slice;
}

void ZeroStage3Optimizer::park_shard_on_nvme() {
  NvmeParamShardOptions o;
  o.nvme_path = options_.param_nvme_path;
  o.rank = rank();
  o.numel = shard_;
  o.dtype = dtype_;
  o.chunk_elements = std::max<int64_t>(1, std::min<int64_t>(options_.param_buffer_size,
                                                            (int64_t(1) << 20) / int64_t(dtype_size(dtype_))));
  o.buffer_count = options_.param_buffer_count;
  o.host_allocator = options_.param_pinned_allocator;
  nvme_shard_ = std::make_unique<NvmeParamShard>(o);
  nvme_shard_->write(0, raw::contiguous(raw::to(shard_param_, Device::cpu())));
  release_group_placeholders();
  shard_param_ = Tensor();
  host_shard_ = HostTensor();
}

void ZeroStage3Optimizer::step(Optimizer& optimizer) {
  NoGradGuard no_grad;
  if (!nvme_shard_) {
    step_shard(optimizer, shard_param_);
  } else if (!separate_) {  // the f32 master is the shard itself (Note [ZeRO-3 NVMe parameters])
    step_shard(optimizer, master_);
    nvme_shard_->write(0, master_);
  } else {
    Tensor weights;
    {
      MemoryCategoryScope scope(MemoryCategory::parameters);
      weights = empty({shard_}, TensorOptions(dtype_, Device::cpu()));
    }
    step_shard(optimizer, weights);
    nvme_shard_->write(0, weights);
  }
  // Gathered values are stale: release what is gathered, refresh the persistent units.
  for (size_t u = 0; u < units_.size(); ++u) {
    ZT_CHECK(units_[u].holds == 0, "ZeRO-3 step: called inside a forward that uses ", unit_parameters(u).front());
    release(u);
    units_[u].current = false;
  }
  gather_persistent();
}

void ZeroStage3Optimizer::zero_grad() {
  retire_reductions(0);
  for (Param& p : params_) {
    set_grad(p.tensor, Tensor());
    p.counted = false;
  }
  for (Unit& u : units_) {
    u.grads_ready = 0;
    u.reduced = false;
  }
  raw::fill_(grad_shard_, 0.0);
  // An fp32 master gradient of a bf16/f16 model lives for the step only (Note [ZeRO-3 gradients]).
  clear_master_grad();
  in_backward_ = false;
}

}  // namespace zt
