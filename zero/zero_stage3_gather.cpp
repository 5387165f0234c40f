// ZeroStage3Optimizer: gathering and releasing units, the module hooks with their prefetch, and
// the per-unit gradient reduction (Notes [ZeRO-3 hooks] and [ZeRO-3 gradients] in
// zero/zero_stage3.h).
#include <algorithm>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"
#include "zero/zero_stage3.h"

namespace zt {

// ---- gathering ----

void ZeroStage3Optimizer::fetch(size_t index) {
  Unit& u = units_[index];
  if (u.current) return;
  if (u.storage->released()) {
    u.storage->materialize();
    if (!u.persistent) {
      live_ += u.padded;
      peak_live_ = std::max(peak_live_, live_);
      ++gathers_;
    }
  }
  u.current = true;
  NoGradGuard no_grad;
  Tensor mine = read_slice(u);
  if (world() == 1) {
    raw::copy_(unit_view(u), mine);  // a host shard (offload_param) is copied to the device here
    return;
  }
  if (options_.offload_param) {  // the slice goes to the device first: collectives run there
    MemoryCategoryScope scope(MemoryCategory::communication);
    u.staging = empty({u.slice}, TensorOptions(dtype_, device_));
    raw::copy_(u.staging, mine);
    mine = u.staging;
  }
  u.gather = comm_->all_gather_async(mine, unit_view(u));
}

void ZeroStage3Optimizer::wait(size_t index) {
  Unit& u = units_[index];
  if (!u.gather) return;
  u.gather->wait();
  u.gather.reset();
  u.staging = Tensor();
}

void ZeroStage3Optimizer::release(size_t index) {
  Unit& u = units_[index];
  u.kept = false;
  if (u.persistent || u.holds > 0 || u.storage->released()) return;
  wait(index);  // MPI may still be writing into the buffer
  u.storage->release();
  u.current = false;
  live_ -= u.padded;
}

void ZeroStage3Optimizer::release_idle() {
  for (size_t u = 0; u < units_.size(); ++u) release(u);
}

// Gathers the units of the trace's calls after (direction +1) or before (-1) `position`, in that
// order, while they fit in prefetch_bucket_size and under max_live_parameters.
void ZeroStage3Optimizer::prefetch(size_t position, int direction) {
  int64_t budget = options_.prefetch_bucket_size;
  for (int64_t k = int64_t(position) + direction; k >= 0 && k < int64_t(trace_.size()); k += direction) {
    for (size_t index : users_[trace_[size_t(k)]].units) {
      const Unit& u = units_[index];
      if (u.current) continue;
      if (u.padded > budget || live_ + u.padded > options_.max_live_parameters) return;
      budget -= u.padded;
      fetch(index);
    }
  }
}

// Every persistent unit's slices from every rank, in one all_gather.
void ZeroStage3Optimizer::gather_persistent() {
  std::vector<size_t> list;
  int64_t total = 0;
  for (size_t u = 0; u < units_.size(); ++u) {
    if (!units_[u].persistent) continue;
    list.push_back(u);
    total += units_[u].slice;
    units_[u].current = true;
  }
  if (list.empty()) return;
  NoGradGuard no_grad;
  if (world() == 1) {
    for (size_t u : list) raw::copy_(unit_view(units_[u]), read_slice(units_[u]));
    return;
  }
  Tensor mine, all;
  {
    MemoryCategoryScope scope(MemoryCategory::communication);
    mine = empty({total}, TensorOptions(dtype_, device_));
    all = empty({int64_t(world()) * total}, TensorOptions(dtype_, device_));
  }
  int64_t offset = 0;
  for (size_t u : list) {
    raw::copy_(raw::narrow(mine, 0, offset, units_[u].slice), read_slice(units_[u]));
    offset += units_[u].slice;
  }
  comm_->all_gather(mine, all);
  for (int64_t r = 0; r < world(); ++r) {
    offset = 0;
    for (size_t u : list) {
      const int64_t s = units_[u].slice;
      raw::copy_(raw::narrow(unit_view(units_[u]), 0, r * s, s), raw::narrow(all, 0, r * total + offset, s));
      offset += s;
    }
  }
}

// ---- hooks ----

void ZeroStage3Optimizer::on_pass_begin() {
  // A backward that nobody closed with after_backward() ends when the next forward starts.
  if (in_backward_) after_backward();
  // No module forward is in progress outside the root's: holds left by one that threw are void.
  for (Unit& u : units_) u.holds = 0;
  release_idle();
  forward_next_ = 0;
  if (!traced_) {
    tracing_ = true;
    trace_.clear();
  }
}

void ZeroStage3Optimizer::on_pass_end() {
  if (in_backward_) return;  // the root recomputed inside backward
  if (tracing_) {
    tracing_ = false;
    traced_ = true;
    if (options_.max_reuse_distance > 0) {
      reuse_distances_.assign(trace_.size(), {});
      for (size_t k = 0; k < trace_.size(); ++k)
        for (size_t u : users_[trace_[k]].units) reuse_distances_[k].push_back(reuse_distance(k, u));
    }
  }
  backward_next_ = trace_.size();
  for (size_t u = 0; u < units_.size(); ++u)  // prefetches this forward did not use
    if (!units_[u].kept) release(u);
}

int64_t ZeroStage3Optimizer::reuse_distance(size_t k, size_t u) const {
  auto uses = [&](size_t pos) {
    const std::vector<size_t>& us = users_[trace_[pos]].units;
    return std::find(us.begin(), us.end(), u) != us.end();
  };
  auto others = [&](size_t pos) {
    int64_t n = 0;
    for (size_t v : users_[trace_[pos]].units)
      if (v != u && !units_[v].persistent) n += units_[v].padded;
    return n;
  };
  int64_t d = 0;
  for (size_t j = k + 1; j < trace_.size(); ++j) {  // the rest of this forward
    if (uses(j)) return d;
    d += others(j);
  }
  for (size_t j = trace_.size(); j-- > k;) {  // then backward, from the last call
    if (uses(j)) return d;
    d += others(j);
  }
  return d;
}

void ZeroStage3Optimizer::on_forward_pre(size_t index) {
  const User& user = users_[index];
  for (size_t u : user.units) ++units_[u].holds;
  for (size_t u : user.units) fetch(u);
  if (!in_backward_) {
    if (tracing_) {
      trace_.push_back(index);
    } else if (traced_) {
      for (size_t k = forward_next_; k < trace_.size(); ++k) {
        if (trace_[k] != index) continue;
        forward_next_ = k + 1;
        prefetch(k, +1);
        break;
      }
    }
  }
  for (size_t u : user.units) wait(u);
}

void ZeroStage3Optimizer::on_forward_post(size_t index) {
  for (size_t u : users_[index].units) --units_[u].holds;
  // In backward (a recompute) the module's own backward comes next: keep its units.
  if (in_backward_) return;
  // This call's trace position (on_forward_pre found it) once the calls are known.
  const bool may_keep = options_.max_reuse_distance > 0 && traced_ && !tracing_ && forward_next_ > 0 &&
                        grad_mode_enabled() && trace_[forward_next_ - 1] == index;
  const std::vector<size_t>& units = users_[index].units;
  for (size_t i = 0; i < units.size(); ++i) {
    Unit& unit = units_[units[i]];
    if (may_keep && !unit.persistent && unit.holds == 0 && live_ <= options_.max_live_parameters &&
        reuse_distances_[forward_next_ - 1][i] <= options_.max_reuse_distance) {
      unit.kept = true;
      continue;
    }
    release(units[i]);
  }
}

void ZeroStage3Optimizer::on_backward_pre(size_t index) {
  in_backward_ = true;
  const User& user = users_[index];
  for (size_t u : user.units) fetch(u);
  for (size_t k = backward_next_; traced_ && k-- > 0;) {
    if (trace_[k] != index) continue;
    backward_next_ = k;
    prefetch(k, -1);
    break;
  }
  for (size_t u : user.units) wait(u);
}

void ZeroStage3Optimizer::after_backward() {
  flush_gradients();
  retire_reductions(0);
  in_backward_ = false;
  backward_next_ = trace_.size();
  release_idle();
}

void ZeroStage3Optimizer::finish_gradient_reduction() { after_backward(); }

// ---- gradients ----

void ZeroStage3Optimizer::on_grad_ready(size_t index) {
  Param& p = params_[index];
  Unit& u = units_[p.unit];
  if (!p.counted) {
    p.counted = true;
    ++u.grads_ready;
  }
  if (u.grads_ready < int64_t(u.params.size())) return;
  reduce_unit(p.unit);
  release(p.unit);  // every node that used its values has run
  retire_reductions(options_.reduce_bucket_size);
}

void ZeroStage3Optimizer::reduce_unit(size_t index) {
  NoGradGuard no_grad;
  Unit& u = units_[index];
  const Tensor dst = slice_of(grad_shard_, u);
  const bool first = !u.reduced;
  u.reduced = true;
  const bool direct = world() == 1 && first;  // one rank: the packed gradient is the slice
  Tensor packed = dst;
  if (!direct) {
    MemoryCategoryScope scope(MemoryCategory::communication);
    packed = empty({u.padded}, TensorOptions(dtype_, dst.device()));
  }
  std::vector<Tensor> grads;
  std::vector<int64_t> offsets;
  for (size_t i : u.params) {
    Param& p = params_[i];
    const Tensor g = grad(p.tensor);
    if (g.defined()) {
      grads.push_back(raw::reshape(g, {p.tensor.numel()}));
      offsets.push_back(p.offset);
    }
    set_grad(p.tensor, Tensor());  // grads holds it until packed; then the packed copy is all that is needed
    p.counted = false;
  }
  raw::pack_flat_(packed, grads, offsets);  // one launch; padding and missing gradients zeroed
  u.grads_ready = 0;
  if (direct) return;
  if (world() == 1) {
    raw::binary_(BinaryOp::add, dst, packed);
    return;
  }
  PendingReduce r;
  r.packed = packed;
  r.out = dst;
  if (!first) {  // later micro-batches add into what the first wrote
    MemoryCategoryScope scope(MemoryCategory::communication);
    r.out = empty({u.slice}, TensorOptions(dtype_, dst.device()));
    r.accumulate_into = dst;
  }
  r.work = comm_->reduce_scatter_async(packed, r.out, CommReduceOp::avg);
  in_flight_ += u.padded;
  pending_.push_back(std::move(r));
}

void ZeroStage3Optimizer::flush_gradients() {
  for (size_t u = 0; u < units_.size(); ++u) {
    bool any = false;
    for (size_t i : units_[u].params) any = any || grad(params_[i].tensor).defined();
    if (any) reduce_unit(u);
  }
}

// Completes reductions in the order they started (an addition must follow the write it adds
// to), waiting while more than max_in_flight packed elements are in flight.
void ZeroStage3Optimizer::retire_reductions(int64_t max_in_flight) {
  NoGradGuard no_grad;
  while (!pending_.empty() && (in_flight_ > max_in_flight || pending_.front().work->is_completed())) {
    PendingReduce& r = pending_.front();
    r.work->wait();
    if (r.accumulate_into.defined()) raw::binary_(BinaryOp::add, r.accumulate_into, r.out);
    in_flight_ -= r.packed.numel();
    pending_.pop_front();
  }
}

}  // namespace zt
