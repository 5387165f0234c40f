// Autograd: per-tensor gradient state, the backward engine, grad mode, and hooks (DESIGN.md §3).
// A define-by-run tape: differentiable ops record a Node holding what backward needs;
// backward(loss) runs nodes in reverse topological order, accumulating into leaves' grads.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace zt {

// ---- per-tensor state ----
bool requires_grad(const Tensor& t);
// Marks a tensor as a leaf that collects gradients (parameters); returns it for chaining.
const Tensor& set_requires_grad(const Tensor& t, bool value = true);
// The accumulated gradient of a leaf (undefined before the first backward).
Tensor grad(const Tensor& t);
void set_grad(const Tensor& t, const Tensor& g);  // undefined g clears it
bool is_leaf(const Tensor& t);
// A new handle on the same data with no graph history.
Tensor detach(const Tensor& t);

// ---- backward ----
// Accumulates d(root)/d(leaf) into every leaf's grad. grad_root defaults to ones (root must
// then have one element). The graph is freed afterwards unless retain_graph.
void backward(const Tensor& root, const Tensor& grad_root = Tensor(), bool retain_graph = false);

// ---- grad mode ----
bool grad_mode_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Turns grad mode on for a scope, e.g. inside a backward formula that must record a graph
// (activation checkpointing recomputes its forward during backward, where grad mode is off).
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

// ---- hooks ----
// A handle identifies a hook on the tensor it was registered on (handles are numbered per tensor).
using HookHandle = uint64_t;
// Called once per backward when a leaf's gradient for this pass is fully accumulated
// (data parallel bucketing and ZeRO-2 reduce-scatter hang on this).
HookHandle register_grad_ready_hook(const Tensor& leaf, std::function<void(const Tensor& leaf)> fn);
// Called with the gradient flowing into a non-leaf or leaf tensor; may return a replacement
// (undefined = keep).
HookHandle register_grad_hook(const Tensor& t, std::function<Tensor(const Tensor& grad)> fn);
void remove_hook(const Tensor& t, HookHandle handle);

// Identity on `tensors` whose backward calls fn once, when the gradients of all of them have
// arrived, before they flow further (module backward hooks are built on this).
std::vector<Tensor> backward_callback(const std::vector<Tensor>& tensors, std::function<void()> fn);

}  // namespace zt
