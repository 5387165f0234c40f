// The backward engine: counts how many gradients each node of the graph reachable from the
// root will receive (iterative DFS), then runs nodes from a ready stack once all of their
// gradients have been summed. Nothing recurses, so graphs of any depth are fine.
#include "autograd/meta.h"
#include "core/factory.h"
#include "core/ops.h"

namespace zt {
namespace autograd {
namespace {

// Clears the per-pass state of every node the pass touched, also when a backward throws.
struct PassState {
  std::vector<Node*> nodes;
  ~PassState() {
    for (Node* n : nodes) {
      n->buffer.clear();
      n->pending = 0;
      n->in_pass = false;
    }
  }
  void visit(Node* n) {
    n->in_pass = true;
    nodes.push_back(n);
  }
};

void count_dependencies(Node* root, PassState& pass) {
  pass.visit(root);
  std::vector<Node*> stack{root};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next) {
      Node* m = e.node.get();
      if (!m) continue;
      ++m->pending;
      if (!m->in_pass) {
        pass.visit(m);
        stack.push_back(m);
      }
    }
  }
}

// Sums a gradient into input `input_nr` of node m.
void add_to_buffer(Node* m, uint32_t input_nr, Tensor g, const char* from) {
  if (m->buffer.empty()) m->buffer.resize(m->num_inputs);
  ZT_CHECK(input_nr < m->num_inputs, "backward: '", from, "' sends a gradient to input ", input_nr,
           " of '", m->name, "', which has ", m->num_inputs);
  Tensor& slot = m->buffer[input_nr];
  if (!slot.defined()) {
    slot = std::move(g);
    return;
  }
  ZT_CHECK(slot.shape() == g.shape(), "backward: gradients summed for '", m->name,
           "' disagree in shape: ", shape_str(slot.shape()), " vs ", shape_str(g.shape()),
           " (the latter from '", from, "')");
  slot = raw::add(slot, g);
}

// Applies the grad hooks registered on non-leaf tensors to the gradients arriving at n.
void run_pre_hooks(Node* n, Grads& grads) {
  for (size_t i = 0; i < n->pre_hooks.size(); ++i) {
    const PreHook& h = n->pre_hooks[i];
    Tensor& g = grads[h.input_nr];
    if (!g.defined()) continue;
    Tensor replaced = h.fn(g);
    if (replaced.defined()) g = std::move(replaced);
  }
}

// Note [Folded gradients]
// A tensor used twice (a residual stream: x feeds a layer norm and the add after its branch) gets
// two gradients, summed here by a separate add. A node that can add a waiting gradient into its
// own result in the same pass over memory (folds_pending: the layer norm's backward) is handed,
// for each edge, the gradient already waiting at that edge's destination; where it folded one in,
// its result replaces the waiting one. Only the first of several edges to one destination gets
// it, so a gradient is never folded in twice.
Grads pending_at_edges(const Node* n) {
  Grads pending(n->next.size());
  for (size_t i = 0; i < n->next.size(); ++i) {
    const Edge& e = n->next[i];
    if (!e.node || e.input_nr >= e.node->buffer.size()) continue;
    bool first = true;
    for (size_t j = 0; j < i; ++j)
      first = first && !(n->next[j].node == e.node && n->next[j].input_nr == e.input_nr);
    if (first) pending[i] = e.node->buffer[e.input_nr];
  }
  return pending;
}

void run_node(Node* n, std::vector<Node*>& ready, bool retain_graph) {
  Grads grads = std::move(n->buffer);
  grads.resize(n->num_inputs);
  run_pre_hooks(n, grads);
  bool any = false;
  for (const Tensor& g : grads) any = any || g.defined();
  Grads outs;
  std::vector<bool> folded;  // sized only for folding nodes: no allocation per ordinary node
  if (any) {
    if (n->folds_pending()) {
      Grads pending = pending_at_edges(n);
      folded.resize(pending.size());
      for (size_t i = 0; i < pending.size(); ++i) folded[i] = pending[i].defined();  // waiting
      outs = n->apply_folding(grads, pending);
      for (size_t i = 0; i < pending.size(); ++i)  // taken by the node and folded into its result
        folded[i] = folded[i] && !pending[i].defined() && i < outs.size() && outs[i].defined();
    } else {
      outs = n->apply(grads);
    }
    ZT_CHECK(outs.size() == n->next.size() || n->next.empty(), "backward of '", n->name,
             "' returned ", outs.size(), " gradients for ", n->next.size(), " inputs");
  }
  if (!retain_graph) n->release_saved();
  for (size_t i = 0; i < n->next.size(); ++i) {
    const Edge& e = n->next[i];
    Node* m = e.node.get();
    if (!m) continue;
    if (any && outs[i].defined()) {
      if (!folded.empty() && folded[i]) {
        Tensor& slot = m->buffer[e.input_nr];
        ZT_CHECK(slot.shape() == outs[i].shape(), "backward: '", n->name, "' folded a gradient of shape ",
                 shape_str(outs[i].shape()), " into one of shape ", shape_str(slot.shape()), " for '", m->name, "'");
        slot = std::move(outs[i]);
      } else {
        add_to_buffer(m, e.input_nr, std::move(outs[i]), n->name);
      }
    }
    if (--m->pending == 0) ready.push_back(m);
  }
}

}  // namespace
}  // namespace autograd

void backward(const Tensor& root, const Tensor& grad_root, bool retain_graph) {
  using namespace autograd;
  ZT_CHECK(root.defined(), "backward: the root tensor is undefined");
  ZT_CHECK(requires_grad(root), "backward: the root tensor does not require grad (it was computed "
           "under NoGradGuard, detached, or from inputs none of which require grad)");
  Tensor seed = grad_root;
  if (!seed.defined()) {
    ZT_CHECK(root.numel() == 1, "backward: grad_root may be omitted only for a root with one "
             "element, but the root has shape ", shape_str(root.shape()),
             "; pass a grad_root of that shape");
    seed = ones(root.shape(), TensorOptions(root.dtype(), root.device()));
  } else {
    ZT_CHECK(seed.shape() == root.shape() && seed.dtype() == root.dtype(),
             "backward: expected grad_root of shape ", shape_str(root.shape()), " and dtype ",
             dtype_name(root.dtype()), ", found ", shape_str(seed.shape()), " and ",
             dtype_name(seed.dtype()));
  }
  Edge root_edge = gradient_edge(root);
  NoGradGuard no_grad;  // backward formulas never record a graph
  PassState pass;
  count_dependencies(root_edge.node.get(), pass);
  add_to_buffer(root_edge.node.get(), root_edge.input_nr, std::move(seed), "backward");
  std::vector<Node*> ready{root_edge.node.get()};
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    run_node(n, ready, retain_graph);
  }
}

}  // namespace zt
