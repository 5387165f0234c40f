// Module: registration, recursive traversal, state dicts, dtype/device moves and hooks.
#include "nn/module.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/ops.h"

namespace zt {

namespace {

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "(none)" : out;
}

std::string dotted(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace

// ---- TensorDict ----

void TensorDict::set(const std::string& name, const Tensor& t) {
  for (auto& item : items_) {
    if (item.first == name) {
      item.second = t;
      return;
    }
  }
  items_.emplace_back(name, t);
}

const Tensor* TensorDict::find(const std::string& name) const {
  for (const auto& item : items_)
    if (item.first == name) return &item.second;
  return nullptr;
}

const Tensor& TensorDict::at(const std::string& name) const {
  const Tensor* t = find(name);
  ZT_CHECK(t, "TensorDict: no key \"", name, "\"; keys are: ", join_names(keys()));
  return *t;
}

std::vector<std::string> TensorDict::keys() const {
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& item : items_) out.push_back(item.first);
  return out;
}

// ---- registration ----

void Module::check_new_name(const std::string& name) const {
  ZT_CHECK(!name.empty(), "Module: a parameter, buffer or child name must not be empty");
  ZT_CHECK(name.find('.') == std::string::npos, "Module: name \"", name,
           "\" contains a '.', which is reserved for nested names");
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) {
      if constexpr (requires { e.name; }) return e.name == name;
      else return e.first == name;
    });
  };
  ZT_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), "Module: name \"", name,
           "\" is already registered in this module");
}

const Tensor& Module::register_parameter(const std::string& name, const Tensor& t) {
  check_new_name(name);
  ZT_CHECK(t.defined(), "Module: parameter \"", name, "\" is an undefined tensor");
  ZT_CHECK(is_floating(t.dtype()), "Module: parameter \"", name, "\" must be floating point, found ",
           dtype_name(t.dtype()));
  set_requires_grad(t, true);
  t.set_memory_category(MemoryCategory::parameters);
  parameters_.push_back({name, t});
  return parameters_.back().tensor;
}

const Tensor& Module::register_buffer(const std::string& name, const Tensor& t) {
  check_new_name(name);
  ZT_CHECK(t.defined(), "Module: buffer \"", name, "\" is an undefined tensor");
  buffers_.push_back({name, t});
  return buffers_.back().tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name);
  ZT_CHECK(child != nullptr, "Module: child \"", name, "\" is null");
  ZT_CHECK(child.get() != this, "Module: a module cannot be its own child (\"", name, "\")");
  children_.emplace_back(name, std::move(child));
}

const Tensor& Module::parameter(const std::string& name) const {
  for (const auto& p : parameters_)
    if (p.name == name) return p.tensor;
  std::vector<std::string> names;
  for (const auto& p : parameters_) names.push_back(p.name);
  ZT_FAIL("Module: no parameter \"", name, "\"; this module has: ", join_names(names));
}

bool Module::has_parameter(const std::string& name) const {
  return std::any_of(parameters_.begin(), parameters_.end(),
                     [&](const NamedTensor& p) { return p.name == name; });
}

const Tensor& Module::buffer(const std::string& name) const {
  for (const auto& b : buffers_)
    if (b.name == name) return b.tensor;
  std::vector<std::string> names;
  for (const auto& b : buffers_) names.push_back(b.name);
  ZT_FAIL("Module: no buffer \"", name, "\"; this module has: ", join_names(names));
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (const auto& c : children_)
    if (c.first == name) return c.second;
  std::vector<std::string> names;
  for (const auto& c : children_) names.push_back(c.first);
  ZT_FAIL("Module: no child \"", name, "\"; this module has: ", join_names(names));
}

// ---- traversal ----

void Module::collect_parameters(const std::string& prefix,
                                std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& p : parameters_) out.emplace_back(dotted(prefix, p.name), p.tensor);
  for (const auto& [name, c] : children_) c->collect_parameters(dotted(prefix, name), out);
}

void Module::collect_buffers(const std::string& prefix,
                             std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& b : buffers_) out.emplace_back(dotted(prefix, b.name), b.tensor);
  for (const auto& [name, c] : children_) c->collect_buffers(dotted(prefix, name), out);
}

void Module::collect_state(const std::string& prefix, TensorDict& out) const {
  for (const auto& p : parameters_) out.set(dotted(prefix, p.name), detach(p.tensor));
  for (const auto& b : buffers_) out.set(dotted(prefix, b.name), b.tensor);
  for (const auto& [name, c] : children_) c->collect_state(dotted(prefix, name), out);
}

void Module::collect_modules(const std::string& prefix,
                             std::vector<std::pair<std::string, Module*>>& out) {
  out.emplace_back(prefix, this);
  for (const auto& [name, c] : children_) c->collect_modules(dotted(prefix, name), out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> all, out;
  collect_parameters("", all);
  // A tensor shared by two modules (tied weights) is listed once, under its first name.
  std::set<const TensorImpl*> seen;
  for (auto& item : all)
    if (seen.insert(item.second.impl_ptr().get()).second) out.push_back(std::move(item));
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect_buffers("", out);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& c : children_) out.push_back(c.second);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  collect_modules("", out);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (const auto& c : children_) c.second->train(on);
}

// ---- state ----

TensorDict Module::state_dict() const {
  TensorDict out;
  collect_state("", out);
  return out;
}

void Module::load_state_dict(const TensorDict& dict, bool strict) {
  TensorDict own = state_dict();
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, t] : own)
    if (!dict.contains(name)) missing.push_back(name);
  for (const auto& [name, t] : dict)
    if (!own.contains(name)) unexpected.push_back(name);
  ZT_CHECK(!strict || (missing.empty() && unexpected.empty()),
           "load_state_dict: keys do not match; missing: ", join_names(missing),
           "; unexpected: ", join_names(unexpected));
  // Check every entry before copying any, so a failed load leaves the module untouched.
  for (const auto& [name, dst] : own) {
    const Tensor* src = dict.find(name);
    if (!src) continue;
    ZT_CHECK(src->shape() == dst.shape(), "load_state_dict: \"", name, "\" expected shape ",
             shape_str(dst.shape()), " but the state dict has ", shape_str(src->shape()));
    ZT_CHECK(src->dtype() == dst.dtype(), "load_state_dict: \"", name, "\" expected dtype ",
             dtype_name(dst.dtype()), " but the state dict has ", dtype_name(src->dtype()));
  }
  NoGradGuard no_grad;
  for (const auto& [name, dst] : own) {
    const Tensor* src = dict.find(name);
    if (src) raw::copy_(dst, raw::to(*src, dst.device()));
  }
}

void Module::convert_tensors(const std::function<Tensor(const Tensor&)>& convert,
                             std::map<const TensorImpl*, Tensor>& converted) {
  NoGradGuard no_grad;
  // Tied tensors (one tensor in several slots) are converted once, so they stay tied.
  auto convert_once = [&](const Tensor& old, bool is_param) {
    auto it = converted.find(old.impl_ptr().get());
    if (it != converted.end()) return it->second;
    Tensor moved = convert(old);
    if (is_param && !moved.same_impl(old)) {
      bool wants_grad = requires_grad(old);
      moved = detach(moved);
      set_requires_grad(moved, wants_grad);
      moved.set_memory_category(MemoryCategory::parameters);
    }
    converted.emplace(old.impl_ptr().get(), moved);
    return moved;
  };
  for (auto& p : parameters_) p.tensor = convert_once(p.tensor, true);
  for (auto& b : buffers_) b.tensor = convert_once(b.tensor, false);
  for (const auto& c : children_) c.second->convert_tensors(convert, converted);
}

void Module::to(Device device) {
  std::map<const TensorImpl*, Tensor> converted;
  convert_tensors([&](const Tensor& t) { return raw::to(t, device); }, converted);
}

void Module::to(DType dtype) {
  ZT_CHECK(is_floating(dtype), "Module::to: target dtype must be floating point, found ",
           dtype_name(dtype));
  std::map<const TensorImpl*, Tensor> converted;
  convert_tensors([&](const Tensor& t) { return is_floating(t.dtype()) ? raw::to(t, dtype) : t; },
                  converted);
}

void Module::replace_parameters(const std::function<Tensor(const std::string&, const Tensor&)>& replace) {
  NoGradGuard no_grad;
  std::map<const TensorImpl*, Tensor> replaced;
  std::function<void(Module&, const std::string&)> visit = [&](Module& m, const std::string& prefix) {
    for (auto& p : m.parameters_) {
      auto it = replaced.find(p.tensor.impl_ptr().get());
      if (it == replaced.end()) {
        Tensor fresh = detach(replace(prefix + p.name, p.tensor));
        set_requires_grad(fresh, requires_grad(p.tensor));
        it = replaced.emplace(p.tensor.impl_ptr().get(), fresh).first;
      }
      p.tensor = it->second;
    }
    for (const auto& [name, child] : m.children_) visit(*child, prefix + name + ".");
  };
  visit(*this, "");
}

void Module::zero_grad() {
  for (const auto& [name, p] : named_parameters()) set_grad(p, Tensor());
}

// ---- hooks ----

HookHandle Module::register_forward_pre_hook(ForwardPreHook fn) {
  forward_pre_hooks_.push_back({next_hook_handle_, std::move(fn)});
  return next_hook_handle_++;
}

HookHandle Module::register_forward_hook(ForwardHook fn) {
  forward_hooks_.push_back({next_hook_handle_, std::move(fn)});
  return next_hook_handle_++;
}

HookHandle Module::register_backward_pre_hook(BackwardHook fn) {
  backward_pre_hooks_.push_back({next_hook_handle_, std::move(fn)});
  return next_hook_handle_++;
}

HookHandle Module::register_backward_hook(BackwardHook fn) {
  backward_hooks_.push_back({next_hook_handle_, std::move(fn)});
  return next_hook_handle_++;
}

bool Module::remove_hook(HookHandle handle) {
  auto erase = [&](auto& list) {
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const auto& h) { return h.handle == handle; });
    if (it == list.end()) return false;
    list.erase(it);
    return true;
  };
  return erase(forward_pre_hooks_) || erase(forward_hooks_) || erase(backward_pre_hooks_) ||
         erase(backward_hooks_);
}

void Module::run_backward_hooks(bool pre) {
  auto hooks = pre ? backward_pre_hooks_ : backward_hooks_;  // a hook may remove itself
  for (auto& h : hooks) h.fn(*this);
}

// Note [Module backward hooks]
// Module backward hooks are built on backward_callback (autograd/autograd.h): the input is
// wrapped so a callback fires when its gradient has been computed (backward hooks), the output
// so one fires when the gradient w.r.t. it arrives (backward pre-hooks). When the input does not
// require grad there is no input gradient to wait for; the backward hooks then fire right after
// the pre-hooks, as PyTorch's full backward hooks do. The callbacks hold the module weakly when
// it is shared-owned, so a graph that outlives its module does not call into freed memory.
Tensor Module::operator()(const Tensor& x) {
  auto pre_hooks = forward_pre_hooks_;
  for (auto& h : pre_hooks) h.fn(*this, x);

  Tensor input = x;
  const bool wrap = has_backward_hooks() && grad_mode_enabled();
  std::weak_ptr<Module> weak = weak_from_this();
  const bool shared_owned = !weak.expired();
  Module* self = this;
  auto call_hooks = [weak, shared_owned, self](bool pre) {
    if (!shared_owned) return self->run_backward_hooks(pre);
    if (auto locked = weak.lock()) locked->run_backward_hooks(pre);
  };
  bool input_tracked = false;
  if (wrap && input.defined() && requires_grad(input)) {
    input = backward_callback({input}, [call_hooks] { call_hooks(false); })[0];
    input_tracked = true;
  }

  Tensor output = forward(input);

  auto post_hooks = forward_hooks_;
  for (auto& h : post_hooks) h.fn(*this, x, output);

  if (wrap && output.defined() && requires_grad(output)) {
    output = backward_callback({output}, [call_hooks, input_tracked] {
      call_hooks(true);
      if (!input_tracked) call_hooks(false);
    })[0];
  }
  return output;
}

}  // namespace zt
