// Internal autograd structures: the per-tensor AutogradMeta, graph Nodes and Edges, and the
// helpers differentiable ops use to record a node (make_node). Not part of the public API.
//
// Note [Graph ownership]
// A non-leaf tensor owns its grad_fn Node; a Node owns the Nodes of its inputs through its
// edges, so the graph lives as long as some output does. A leaf that requires grad is reached
// through an AccumulateGrad node that holds the leaf strongly, while the leaf's meta only holds
// it weakly (no cycle). Every use of a leaf within a live graph shares one AccumulateGrad, so the
// engine sums all contributions before accumulating, and grad-ready hooks fire once per pass.
// Backward closures save detached handles of non-leaf tensors (save_for_backward), never the
// tensor itself: a saved output would otherwise own its own Node (a cycle), and saved inputs
// would make graph destruction recurse through closures instead of edges.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#include "autograd/autograd.h"
#include "core/tensor.h"

namespace zt::autograd {

struct Node;

// Where a gradient goes: input `input_nr` of `node` (node null = the input needs no gradient).
struct Edge {
  std::shared_ptr<Node> node;
  uint32_t input_nr = 0;
};

// A hook on the gradient arriving at one of a node's inputs (registered on a non-leaf tensor).
struct PreHook {
  HookHandle handle;
  uint32_t input_nr;
  std::function<Tensor(const Tensor&)> fn;
};

// Which inputs of a node want a gradient; backward closures skip the others.
struct Needs {
  uint64_t bits = 0;
  bool operator[](size_t i) const { return i >= 64 || ((bits >> i) & 1u); }
};

using Grads = std::vector<Tensor>;

// A backward function. "Inputs" of a Node are the gradients of its forward outputs
// (num_inputs of them); it returns one gradient per forward input, i.e. per edge in `next`.
struct Node {
  explicit Node(const char* op_name, uint32_t inputs) : name(op_name), num_inputs(inputs) {}
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // grads: one per forward output (undefined where none arrived; at least one is defined).
  virtual Grads apply(Grads& grads) = 0;
  // Whether the engine calls apply_folding instead of apply (Note [Folded gradients] in
  // engine.cpp).
  virtual bool folds_pending() const { return false; }
  // pending[i]: the gradient already waiting where edge i's result goes (undefined where none
  // waits). A node that adds pending[i] into its result i in the same pass resets pending[i], and
  // the engine stores that result instead of adding it.
  virtual Grads apply_folding(Grads& grads, Grads& pending) { return apply(grads); }
  // Frees what backward saved (after a pass without retain_graph).
  virtual void release_saved() {}

  const char* name;
  uint32_t num_inputs;
  Needs needs;
  std::vector<Edge> next;
  std::vector<PreHook> pre_hooks;

  // Per-pass engine state (see engine.cpp); reset at the end of every pass.
  Grads buffer;
  int pending = 0;
  bool in_pass = false;
};

// The per-tensor autograd state hung in TensorImpl::autograd.
struct AutogradMeta : AutogradSlot {
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  uint32_t output_nr = 0;         // which output of grad_fn this tensor is
  std::weak_ptr<Node> grad_accumulator;  // leaves only: see Note [Graph ownership]
  HookHandle next_handle = 1;
  std::vector<std::pair<HookHandle, std::function<Tensor(const Tensor&)>>> grad_hooks;  // leaves
  std::vector<std::pair<HookHandle, std::function<void(const Tensor&)>>> ready_hooks;
};

inline AutogradMeta* meta_of(const Tensor& t) {
  // Only this layer writes the slot, so the static cast is safe.
  return static_cast<AutogradMeta*>(t.impl().autograd.get());
}
AutogradMeta& ensure_meta(const Tensor& t);

inline bool tensor_requires_grad(const Tensor& t) {
  if (!t.defined()) return false;
  const AutogradMeta* m = meta_of(t);
  return m && m->requires_grad;
}

// True when grad mode is on and some input requires grad: the test every op makes before it
// builds a closure, so inference pays almost nothing.
template <typename... Ts>
bool needs_graph(const Ts&... inputs) {
  return grad_mode_enabled() && (tensor_requires_grad(inputs) || ...);
}
bool needs_graph_list(const std::vector<Tensor>& inputs);

// A handle on an input's data without its graph (see Note [Graph ownership]). An op's own
// output must be saved as detach(out): it has no history yet when the closure is built.
inline Tensor save_for_backward(const Tensor& t) {
  if (!t.defined()) return t;
  const AutogradMeta* m = meta_of(t);
  return (m && m->grad_fn) ? detach(t) : t;
}

// The edge a gradient for t flows along (creating a leaf's AccumulateGrad on first use).
Edge gradient_edge(const Tensor& t);

// Wires `node` to its inputs and makes it the grad_fn of `outputs` (which are replaced by fresh
// aliases when they share a TensorImpl with a tensor that already has autograd state).
void connect(const std::shared_ptr<Node>& node, const Tensor* const* inputs, size_t num_inputs,
             Tensor* outputs, size_t num_outputs);

[[noreturn]] void throw_released(const char* op_name);

// A Node around a closure. F is called as fn(grad, needs) for single-output nodes or
// fn(grads, needs) for multi-output ones, and returns one gradient per input. A single-output F
// taking fn(grad, needs, pending) folds pending gradients (Node::apply_folding).
template <typename F>
struct LambdaNode final : Node {
  static constexpr bool kFolds = std::is_invocable_v<F&, const Tensor&, Needs, Grads&>;
  LambdaNode(const char* op_name, uint32_t inputs, F&& f) : Node(op_name, inputs), fn(std::move(f)) {}
  Grads apply(Grads& grads) override {
    if (!fn) throw_released(name);
    if constexpr (kFolds) {
      Grads none(next.size());
      return (*fn)(grads[0], needs, none);
    } else if constexpr (std::is_invocable_v<F&, const Tensor&, Needs>) {
      return (*fn)(grads[0], needs);
    } else {
      return (*fn)(grads, needs);
    }
  }
  bool folds_pending() const override { return kFolds; }
  Grads apply_folding(Grads& grads, Grads& pending) override {
    if constexpr (kFolds) {
      if (!fn) throw_released(name);
      return (*fn)(grads[0], needs, pending);
    } else {
      return apply(grads);
    }
  }
  void release_saved() override { fn.reset(); }
  std::optional<F> fn;
};

// Records a single-output op: out = op(inputs...) with backward closure fn (see LambdaNode).
// Callers test needs_graph(...) first, so the closure is only built when it is used.
template <typename F>
Tensor make_node(const char* op_name, Tensor out, std::initializer_list<const Tensor*> inputs,
                 F&& fn) {
  auto node = std::make_shared<LambdaNode<std::decay_t<F>>>(op_name, 1, std::forward<F>(fn));
  connect(node, inputs.begin(), inputs.size(), &out, 1);
  return out;
}

// Records an op with several outputs and/or a list of inputs.
template <typename F>
std::vector<Tensor> make_node(const char* op_name, std::vector<Tensor> outs,
                              const std::vector<Tensor>& inputs, F&& fn) {
  auto node = std::make_shared<LambdaNode<std::decay_t<F>>>(op_name, uint32_t(outs.size()),
                                                            std::forward<F>(fn));
  std::vector<const Tensor*> ptrs(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) ptrs[i] = &inputs[i];
  connect(node, ptrs.data(), ptrs.size(), outs.data(), outs.size());
  return outs;
}

}  // namespace zt::autograd
