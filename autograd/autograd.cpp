// Per-tensor autograd state (requires_grad, grad, detach), grad mode, graph wiring for ops
// (connect), leaf gradient accumulation (AccumulateGrad) and hooks. The engine is in engine.cpp.
#include "autograd/autograd.h"

#include "autograd/meta.h"
#include "core/ops.h"

namespace zt {
namespace autograd {
namespace {

// Accumulates the gradient reaching a leaf into its .grad and then fires its grad-ready hooks;
// see Note [Graph ownership] in meta.h for why there is one per leaf and graph.
struct AccumulateGrad final : Node {
  explicit AccumulateGrad(Tensor leaf_tensor) : Node("AccumulateGrad", 1), leaf(std::move(leaf_tensor)) {}
  Grads apply(Grads& grads) override;
  Tensor leaf;
};

// True when nothing else can see g's memory, so it can become the grad without a copy.
bool can_steal(const Tensor& g) {
  return g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && !g.impl().autograd &&
         g.is_contiguous() && g.offset() == 0 && g.nbytes() == g.storage()->bytes();
}

Grads AccumulateGrad::apply(Grads& grads) {
  AutogradMeta& m = *meta_of(leaf);
  Tensor g = std::move(grads[0]);
  for (size_t i = 0; i < m.grad_hooks.size(); ++i) {
    Tensor replaced = m.grad_hooks[i].second(g);
    if (replaced.defined()) g = std::move(replaced);
  }
  ZT_CHECK(g.shape() == leaf.shape() && g.dtype() == leaf.dtype(),
           "backward: the gradient for a leaf of shape ", shape_str(leaf.shape()), " and dtype ",
           dtype_name(leaf.dtype()), " has shape ", shape_str(g.shape()), " and dtype ",
           dtype_name(g.dtype()));
  if (!m.grad.defined()) {
    // A fresh tensor owned by this leaf alone, accounted as gradient memory.
    if (can_steal(g)) {
      g.set_memory_category(MemoryCategory::gradients);
      m.grad = std::move(g);
    } else {
      MemoryCategoryScope scope(MemoryCategory::gradients);
      m.grad = raw::clone(g);
    }
  } else {
    raw::binary_(BinaryOp::add, m.grad, g);
  }
  for (size_t i = 0; i < m.ready_hooks.size(); ++i) m.ready_hooks[i].second(leaf);
  return {};
}

thread_local bool grad_mode = true;

}  // namespace

Node::~Node() {
  // Destroys the chain of nodes only this one owns iteratively: a recursive destructor would
  // overflow the stack on deep graphs (a 10k-op chain).
  std::vector<std::shared_ptr<Node>> owned;
  auto take_unique = [&owned](std::vector<Edge>& edges) {
    for (Edge& e : edges) {
      if (e.node && e.node.use_count() == 1) owned.push_back(std::move(e.node));
    }
  };
  take_unique(next);
  while (!owned.empty()) {
    std::shared_ptr<Node> n = std::move(owned.back());
    owned.pop_back();
    take_unique(n->next);
  }
}

void throw_released(const char* op_name) {
  ZT_FAIL("backward through '", op_name, "' a second time: its saved tensors were freed by the "
          "first backward; pass retain_graph=true to the first one");
}

AutogradMeta& ensure_meta(const Tensor& t) {
  auto& slot = t.impl().autograd;
  if (!slot) slot = std::make_shared<AutogradMeta>();
  return *static_cast<AutogradMeta*>(slot.get());
}

bool needs_graph_list(const std::vector<Tensor>& inputs) {
  if (!grad_mode_enabled()) return false;
  for (const Tensor& t : inputs) {
    if (tensor_requires_grad(t)) return true;
  }
  return false;
}

Edge gradient_edge(const Tensor& t) {
  AutogradMeta* m = meta_of(t);
  if (m->grad_fn) return {m->grad_fn, m->output_nr};
  std::shared_ptr<Node> acc = m->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t);
    m->grad_accumulator = acc;
  }
  return {std::move(acc), 0};
}

void connect(const std::shared_ptr<Node>& node, const Tensor* const* inputs, size_t num_inputs,
             Tensor* outputs, size_t num_outputs) {
  node->next.resize(num_inputs);
  uint64_t bits = 0;
  for (size_t i = 0; i < num_inputs; ++i) {
    if (!tensor_requires_grad(*inputs[i])) continue;
    node->next[i] = gradient_edge(*inputs[i]);
    if (i < 64) bits |= uint64_t(1) << i;
  }
  node->needs.bits = bits;
  for (size_t j = 0; j < num_outputs; ++j) {
    Tensor& out = outputs[j];
    if (!out.defined()) continue;
    // Raw ops may hand back an input itself (to() with the same dtype, contiguous() of a
    // contiguous tensor); the output must be its own tensor to carry its own history.
    bool aliases = out.impl().autograd != nullptr;
    for (size_t i = 0; i < num_inputs && !aliases; ++i) aliases = out.same_impl(*inputs[i]);
    if (aliases) out = detach(out);
    auto meta = std::make_shared<AutogradMeta>();
    meta->requires_grad = true;
    meta->grad_fn = node;
    meta->output_nr = uint32_t(j);
    out.impl().autograd = std::move(meta);
  }
}

}  // namespace autograd

using autograd::AutogradMeta;
using autograd::meta_of;

bool requires_grad(const Tensor& t) { return autograd::tensor_requires_grad(t); }

const Tensor& set_requires_grad(const Tensor& t, bool value) {
  ZT_CHECK(t.defined(), "set_requires_grad: the tensor is undefined");
  AutogradMeta* m = meta_of(t);
  if (m && m->grad_fn) {
    ZT_CHECK(value, "set_requires_grad(false): expected a leaf tensor, but this one is the "
             "output of '", m->grad_fn->name, "'; use detach() to cut it from the graph");
    return t;
  }
  if (!value && !m) return t;
  ZT_CHECK(!value || is_floating(t.dtype()),
           "set_requires_grad: only floating-point tensors can require grad, found dtype ",
           dtype_name(t.dtype()));
  autograd::ensure_meta(t).requires_grad = value;
  return t;
}

Tensor grad(const Tensor& t) {
  AutogradMeta* m = meta_of(t);
  return m ? m->grad : Tensor();
}

void set_grad(const Tensor& t, const Tensor& g) {
  if (g.defined()) {
    ZT_CHECK(g.shape() == t.shape(), "set_grad: expected a gradient of shape ", shape_str(t.shape()),
             ", found ", shape_str(g.shape()));
    ZT_CHECK(g.dtype() == t.dtype(), "set_grad: expected a gradient of dtype ",
             dtype_name(t.dtype()), ", found ", dtype_name(g.dtype()));
  } else if (!meta_of(t)) {
    return;
  }
  autograd::ensure_meta(t).grad = g;
}

bool is_leaf(const Tensor& t) {
  AutogradMeta* m = meta_of(t);
  return !m || !m->grad_fn;
}

Tensor detach(const Tensor& t) {
  if (!t.defined()) return t;
  return Tensor::view_of(t.storage(), t.shape(), t.strides(), t.offset(), t.dtype());
}

bool grad_mode_enabled() { return autograd::grad_mode; }

NoGradGuard::NoGradGuard() : previous_(autograd::grad_mode) { autograd::grad_mode = false; }
NoGradGuard::~NoGradGuard() { autograd::grad_mode = previous_; }
EnableGradGuard::EnableGradGuard() : previous_(autograd::grad_mode) { autograd::grad_mode = true; }
EnableGradGuard::~EnableGradGuard() { autograd::grad_mode = previous_; }

HookHandle register_grad_ready_hook(const Tensor& leaf, std::function<void(const Tensor& leaf)> fn) {
  ZT_CHECK(requires_grad(leaf) && is_leaf(leaf),
           "register_grad_ready_hook: expected a leaf tensor that requires grad (a parameter), "
           "found ", requires_grad(leaf) ? "a non-leaf tensor" : "a tensor that does not require grad");
  AutogradMeta& m = *meta_of(leaf);
  HookHandle h = m.next_handle++;
  m.ready_hooks.emplace_back(h, std::move(fn));
  return h;
}

HookHandle register_grad_hook(const Tensor& t, std::function<Tensor(const Tensor& grad)> fn) {
  ZT_CHECK(requires_grad(t), "register_grad_hook: expected a tensor that requires grad, found one "
           "that does not (no gradient will ever flow into it)");
  AutogradMeta& m = *meta_of(t);
  HookHandle h = m.next_handle++;
  if (m.grad_fn) {
    m.grad_fn->pre_hooks.push_back({h, m.output_nr, std::move(fn)});
  } else {
    m.grad_hooks.emplace_back(h, std::move(fn));
  }
  return h;
}

void remove_hook(const Tensor& t, HookHandle handle) {
  AutogradMeta* m = t.defined() ? meta_of(t) : nullptr;
  ZT_CHECK(m, "remove_hook: the tensor has no hooks (handle ", handle, ")");
  auto erase_from = [](auto& hooks, auto matches) {
    for (auto it = hooks.begin(); it != hooks.end(); ++it) {
      if (matches(*it)) {
        hooks.erase(it);
        return true;
      }
    }
    return false;
  };
  auto by_handle = [handle](const auto& p) { return p.first == handle; };
  bool removed = erase_from(m->grad_hooks, by_handle) || erase_from(m->ready_hooks, by_handle);
  if (!removed && m->grad_fn) {
    uint32_t nr = m->output_nr;
    removed = erase_from(m->grad_fn->pre_hooks, [handle, nr](const autograd::PreHook& p) {
      return p.handle == handle && p.input_nr == nr;
    });
  }
  ZT_CHECK(removed, "remove_hook: no hook with handle ", handle, " is registered on this tensor");
}

std::vector<Tensor> backward_callback(const std::vector<Tensor>& tensors, std::function<void()> fn) {
  if (!autograd::needs_graph_list(tensors)) return tensors;
  std::vector<Tensor> inputs, outs;
  std::vector<size_t> positions;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!requires_grad(tensors[i])) continue;
    inputs.push_back(tensors[i]);
    outs.push_back(detach(tensors[i]));
    positions.push_back(i);
  }
  // One node for all of them: the engine runs it once, after every gradient reaching any of
  // its outputs has been summed.
  outs = autograd::make_node("backward_callback", std::move(outs), inputs,
                             [fn = std::move(fn)](const autograd::Grads& grads, autograd::Needs) {
                               fn();
                               return grads;
                             });
  std::vector<Tensor> result = tensors;
  for (size_t k = 0; k < positions.size(); ++k) result[positions[k]] = outs[k];
  return result;
}

}  // namespace zt
