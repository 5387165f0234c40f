// Module: the base of every layer. Named parameters, buffers and children (dotted names such as
// "blocks.3.attn.qkv.weight"), train/eval mode, state_dict round trips, dtype/device moves, and
// the forward/backward hooks that ZeRO-3, pipelines and checkpointing hang on (DESIGN.md §3).
//
// Note [Module parameter slots]
// A module owns its parameter tensors by name. Layers read them through parameter("weight")
// rather than keeping their own Tensor copies, because to(DType)/to(Device) replace the tensors
// in their slots: a cached copy would keep pointing at the old ones.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "core/tensor.h"

namespace zt {

// An ordered name -> tensor map (registration order is the order state dicts are written in).
class TensorDict {
 public:
  using Item = std::pair<std::string, Tensor>;
  // Adds a new key or replaces the value of an existing one (keeping its position).
  void set(const std::string& name, const Tensor& t);
  const Tensor* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  // The tensor of `name`, or an error listing the keys that exist.
  const Tensor& at(const std::string& name) const;
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::vector<std::string> keys() const;
  std::vector<Item>::const_iterator begin() const { return items_.begin(); }
  std::vector<Item>::const_iterator end() const { return items_.end(); }

 private:
  std::vector<Item> items_;
};

class Module;
using ForwardPreHook = std::function<void(Module& module, const Tensor& input)>;
using ForwardHook = std::function<void(Module& module, const Tensor& input, const Tensor& output)>;
// Backward hooks see the module only: the gradients themselves flow through autograd.
using BackwardHook = std::function<void(Module& module)>;

class Module : public std::enable_shared_from_this<Module> {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  // forward with hooks: forward pre-hooks, forward, forward hooks; backward pre-hooks run when
  // the gradient w.r.t. the output arrives, backward hooks once the gradient w.r.t. the input
  // is computed (see Note [Module backward hooks] in nn/module.cpp).
  Tensor operator()(const Tensor& x);

  // ---- registration (names are local: no dots, unique across params/buffers/children) ----
  // Marks t as a leaf requiring grad and tags its memory as parameters.
  const Tensor& register_parameter(const std::string& name, const Tensor& t);
  const Tensor& register_buffer(const std::string& name, const Tensor& t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

  // This module's own parameter/buffer/child by local name, or an error listing what exists.
  const Tensor& parameter(const std::string& name) const;
  const Tensor& buffer(const std::string& name) const;
  bool has_parameter(const std::string& name) const;
  std::shared_ptr<Module> child(const std::string& name) const;

  // ---- recursive views, in registration order with dotted names ----
  // A parameter tensor registered in several places (tied weights) appears once, under its
  // first name; state_dict() keeps every name, as PyTorch does.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  std::vector<std::shared_ptr<Module>> children() const;
  // Every descendant with its dotted path ("" is this module itself, listed first).
  std::vector<std::pair<std::string, Module*>> named_modules();
  int64_t num_parameters() const;

  // ---- mode ----
  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- state ----
  // Parameters then buffers of each module, depth first, sharing storage with the module.
  TensorDict state_dict() const;
  // Copies values into the existing tensors. Shapes and dtypes must match; with strict, missing
  // and unexpected keys are errors listing all of them (without strict they are skipped).
  void load_state_dict(const TensorDict& dict, bool strict = true);
  // Moves every parameter and buffer; to(DType) converts floating ones only. Parameters are
  // replaced in their slots and stay leaves requiring grad; their old gradients are dropped.
  // Anything holding the old tensors (an optimizer, tensor hooks) must be built after the move.
  void to(Device device);
  void to(DType dtype);
  // Clears every parameter's gradient (to undefined, as PyTorch's set_to_none).
  void zero_grad();
  // Puts replace(dotted name, old) in every parameter slot (recursive; a tied tensor is replaced
  // once, under its first name, so it stays tied). Replacements become leaves requiring grad as
  // the old ones did; they may be views (ZeRO points parameters into one flat buffer). As with
  // to(), anything holding the old tensors must be built after the replacement.
  void replace_parameters(const std::function<Tensor(const std::string& name, const Tensor& old)>& replace);

  // ---- hooks: each registration returns a handle for remove_hook ----
  HookHandle register_forward_pre_hook(ForwardPreHook fn);
  HookHandle register_forward_hook(ForwardHook fn);
  HookHandle register_backward_pre_hook(BackwardHook fn);
  HookHandle register_backward_hook(BackwardHook fn);
  // Removes the hook with this handle from whichever list holds it; false when none does.
  bool remove_hook(HookHandle handle);
  // Whether any hook is registered on this module (not its children): a parent whose fused
  // forward skips a child's operator() must not skip the child's hooks (ZeRO-3 gathers there).
  bool has_hooks() const {
    return !forward_pre_hooks_.empty() || !forward_hooks_.empty() || has_backward_hooks();
  }

 private:
  struct NamedTensor {
    std::string name;
    Tensor tensor;
  };
  template <typename Fn>
  struct NamedHook {
    HookHandle handle;
    Fn fn;
  };

  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name) const;
  void collect_parameters(const std::string& prefix,
                          std::vector<std::pair<std::string, Tensor>>& out) const;
  void collect_buffers(const std::string& prefix,
                       std::vector<std::pair<std::string, Tensor>>& out) const;
  void collect_state(const std::string& prefix, TensorDict& out) const;
  void collect_modules(const std::string& prefix, std::vector<std::pair<std::string, Module*>>& out);
  // Replaces each parameter/buffer with convert(old) (recursive); `converted` maps old tensors
  // to their replacements so a tensor in several slots is converted once.
  void convert_tensors(const std::function<Tensor(const Tensor&)>& convert,
                       std::map<const TensorImpl*, Tensor>& converted);
  void run_backward_hooks(bool pre);
  bool has_backward_hooks() const {
    return !backward_pre_hooks_.empty() || !backward_hooks_.empty();
  }

  std::vector<NamedTensor> parameters_;
  std::vector<NamedTensor> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  HookHandle next_hook_handle_ = 1;
  std::vector<NamedHook<ForwardPreHook>> forward_pre_hooks_;
  std::vector<NamedHook<ForwardHook>> forward_hooks_;
  std::vector<NamedHook<BackwardHook>> backward_pre_hooks_;
  std::vector<NamedHook<BackwardHook>> backward_hooks_;
};

}  // namespace zt
