// Optimizer base: parameter groups, lazily created per-parameter state, the step loop, and the
// state dict an exact resume needs.
#include "optim/optimizer.h"

#include <cstdio>
#include <set>

#include "core/factory.h"
#include "core/ops.h"
#include "nn/embedding.h"
#include "nn/layer_norm.h"

namespace zt {

std::vector<ParamGroup> make_param_groups(Module& module, double weight_decay) {
  std::set<const TensorImpl*> no_decay;
  for (auto& [path, m] : module.named_modules()) {
    if (dynamic_cast<LayerNorm*>(m) || dynamic_cast<Embedding*>(m))
      for (auto& [name, p] : m->named_parameters()) no_decay.insert(p.impl_ptr().get());
  }
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::vector<ParamGroup> groups(2);
  groups[0].weight_decay = weight_decay;
  groups[1].weight_decay = 0.0;
  for (auto& [name, p] : module.named_parameters()) {
    bool skip_decay = p.dim() < 2 || ends_with(name, "bias") || no_decay.count(p.impl_ptr().get());
    groups[skip_decay ? 1 : 0].params.push_back(p);
  }
  return groups;
}

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  ZT_CHECK(!groups_.empty(), "Optimizer: expected at least one parameter group, found none");
  std::set<const TensorImpl*> seen;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (const Tensor& p : groups_[g].params) {
      ZT_CHECK(p.defined(), "Optimizer: group ", g, " holds an undefined tensor");
      ZT_CHECK(is_floating(p.dtype()), "Optimizer: parameters must be floating point, found ",
               dtype_name(p.dtype()), " in group ", g);
      ZT_CHECK(seen.insert(p.impl_ptr().get()).second, "Optimizer: a parameter of shape ",
               shape_str(p.shape()), " appears in more than one place (group ", g, ")");
    }
    state_.emplace_back(groups_[g].params.size());
  }
}

void Optimizer::fill_group_defaults(double lr, double weight_decay) {
  ZT_CHECK(lr >= 0, "Optimizer: expected lr >= 0, found ", lr);
  ZT_CHECK(weight_decay >= 0, "Optimizer: expected weight_decay >= 0, found ", weight_decay);
  for (auto& g : groups_) {
    if (g.lr < 0) g.lr = lr;
    if (g.weight_decay < 0) g.weight_decay = weight_decay;
  }
}

void Optimizer::step() { step_from(nullptr); }

void Optimizer::step_with_gradients(const std::vector<std::vector<Tensor>>& grads, const GradientScale& scale) {
  ZT_CHECK(supports_scaled_gradients(), "Optimizer::step_with_gradients: this optimizer cannot scale gradients in "
           "its step (Adam and AdamW can); scale the parameters' gradients and call step()");
  ZT_CHECK(grads.size() == groups_.size(), "Optimizer::step_with_gradients: expected gradients for ",
           groups_.size(), " parameter groups, found ", grads.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    ZT_CHECK(grads[g].size() == groups_[g].params.size(), "Optimizer::step_with_gradients: group ", g, " has ",
             groups_[g].params.size(), " parameters but ", grads[g].size(), " gradients");
    for (size_t i = 0; i < grads[g].size(); ++i) {
      const Tensor &p = groups_[g].params[i], &gr = grads[g][i];
      if (!gr.defined()) continue;
      const bool low = p.dtype() == DType::f32 && (gr.dtype() == DType::f16 || gr.dtype() == DType::bf16);
      ZT_CHECK((gr.dtype() == p.dtype() || low) && gr.device() == p.device(),
               "Optimizer::step_with_gradients: expected the gradient of group ", g, " parameter ", i, " in ",
               dtype_name(p.dtype()), " (or f16/bf16 for f32) on ", p.device().str(), ", found ", gr.str());
    }
  }
  struct Reset {  // the factors hold for this step only, also when it throws
    GradientScale& scale;
    ~Reset() { scale = GradientScale{}; }
  } reset{gradient_scale_};
  gradient_scale_ = scale;
  step_from(&grads);
}

void Optimizer::step_from(const std::vector<std::vector<Tensor>>* grads) {
  NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const Tensor& p = groups_[g].params[i];
      Tensor gr = grads ? (*grads)[g][i] : grad(p);
      if (!gr.defined()) continue;
      ZT_CHECK(gr.shape() == p.shape(), "Optimizer: gradient shape ", shape_str(gr.shape()),
               " does not match parameter shape ", shape_str(p.shape()));
      ParamState& st = state_[g][i];
      ++st.step;
      update(groups_[g], p, gr, st);
    }
  }
  ++step_count_;
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) set_grad(p, Tensor());
}

double Optimizer::lr(size_t group) const {
  ZT_CHECK(group < groups_.size(), "Optimizer: group ", group, " out of range (", groups_.size(),
           " groups)");
  return groups_[group].lr;
}

void Optimizer::set_lr(size_t group, double lr) {
  ZT_CHECK(group < groups_.size(), "Optimizer: group ", group, " out of range (", groups_.size(),
           " groups)");
  groups_[group].lr = lr;
}

void Optimizer::set_lr(double lr) {
  for (auto& g : groups_) g.lr = lr;
}

Tensor Optimizer::make_state_like(const Tensor& param) {
  MemoryCategoryScope scope(MemoryCategory::optimizer_state);
  Tensor t = zeros(param.shape(), TensorOptions(param.dtype(), param.device()));
  t.set_memory_category(MemoryCategory::optimizer_state);
  return t;
}

bool Optimizer::fused_eligible(const Tensor& param, const Tensor& grad) {
  return param.device().is_cpu() && grad.device().is_cpu() &&
         (param.dtype() == DType::f32 || param.dtype() == DType::f64) &&
         grad.dtype() == param.dtype() && param.is_contiguous() && grad.is_contiguous();
}

namespace {
std::string state_prefix(size_t g, size_t i) {
  return "state." + std::to_string(g) + "." + std::to_string(i) + ".";
}
std::string group_prefix(size_t g) { return "group." + std::to_string(g) + "."; }
}  // namespace

OptimizerState Optimizer::state_dict() const {
  MemoryCategoryScope scope(MemoryCategory::optimizer_state);  // the clones are state too
  OptimizerState out;
  out.scalars["step"] = double(step_count_);
  for (size_t g = 0; g < groups_.size(); ++g) {
    out.scalars[group_prefix(g) + "lr"] = groups_[g].lr;
    out.scalars[group_prefix(g) + "weight_decay"] = groups_[g].weight_decay;
    out.scalars[group_prefix(g) + "size"] = double(groups_[g].params.size());
    for (size_t i = 0; i < state_[g].size(); ++i) {
      const ParamState& st = state_[g][i];
      if (st.step == 0) continue;
      out.scalars[state_prefix(g, i) + "step"] = double(st.step);
      for (const auto& [name, t] : st.buffers) out.tensors.set(state_prefix(g, i) + name, raw::clone(t));
    }
  }
  return out;
}

void Optimizer::load_state_dict(const OptimizerState& state) {
  auto scalar = [&](const std::string& key) {
    auto it = state.scalars.find(key);
    ZT_CHECK(it != state.scalars.end(), "Optimizer::load_state_dict: missing scalar \"", key, "\"");
    return it->second;
  };
  ZT_CHECK(!state.scalars.count(group_prefix(groups_.size()) + "lr"),
           "Optimizer::load_state_dict: the saved state has more than ", groups_.size(), " groups");
  for (size_t g = 0; g < groups_.size(); ++g) {
    double size = scalar(group_prefix(g) + "size");
    ZT_CHECK(size_t(size) == groups_[g].params.size(), "Optimizer::load_state_dict: group ", g,
             " has ", groups_[g].params.size(), " parameters but the saved state has ", size);
  }
  // Every saved tensor must belong to an existing parameter and match its shape.
  std::vector<std::vector<ParamState>> loaded(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    loaded[g].resize(groups_[g].params.size());
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      auto it = state.scalars.find(state_prefix(g, i) + "step");
      if (it != state.scalars.end()) loaded[g][i].step = int64_t(it->second);
    }
  }
  for (const auto& [key, t] : state.tensors) {
    size_t g = 0, i = 0;
    char name[64] = {0};
    ZT_CHECK(std::sscanf(key.c_str(), "state.%zu.%zu.%63s", &g, &i, name) == 3 &&
                 g < groups_.size() && i < groups_[g].params.size(),
             "Optimizer::load_state_dict: unexpected tensor key \"", key, "\"");
    const Tensor& p = groups_[g].params[i];
    ZT_CHECK(t.shape() == p.shape(), "Optimizer::load_state_dict: \"", key, "\" has shape ",
             shape_str(t.shape()), " but the parameter has shape ", shape_str(p.shape()));
    Tensor copy = make_state_like(p);
    raw::copy_(copy, raw::to(t, p.device()));
    loaded[g][i].buffers.set(name, copy);
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].lr = scalar(group_prefix(g) + "lr");
    groups_[g].weight_decay = scalar(group_prefix(g) + "weight_decay");
  }
  state_ = std::move(loaded);
  step_count_ = int64_t(scalar("step"));
}

}  // namespace zt
