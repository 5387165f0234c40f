// Activation checkpointing: see Note [Checkpoint recompute] in autograd/checkpoint.h.
#include "autograd/checkpoint.h"

#include <memory>
#include <utility>

#include "autograd/meta.h"
#include "core/generator.h"

namespace zt {
namespace {

// Sets a generator to a saved state for a scope and puts it back afterwards (also on throw),
// so recomputing does not disturb the draws that follow the backward pass.
class GeneratorStateScope {
 public:
  GeneratorStateScope(Generator& gen, uint64_t seed, uint64_t offset)
      : gen_(gen), seed_(gen.seed()), offset_(gen.offset()) {
    gen_.set_state(seed, offset);
  }
  ~GeneratorStateScope() { gen_.set_state(seed_, offset_); }
  GeneratorStateScope(const GeneratorStateScope&) = delete;
  GeneratorStateScope& operator=(const GeneratorStateScope&) = delete;

 private:
  Generator& gen_;
  uint64_t seed_, offset_;
};

using MultiFn = std::function<Tensor(const std::vector<Tensor>&)>;

// What the checkpoint node keeps between forward and backward: fn, the inputs' data (no graph
// history, see Note [Graph ownership] in autograd/meta.h) and the generator state.
struct CheckpointState {
  MultiFn fn;
  std::vector<Tensor> inputs;
  uint64_t seed = 0, offset = 0;
};

autograd::Grads recompute_and_backward(const CheckpointState& st, const Tensor& grad_out,
                                       autograd::Needs needs) {
  std::vector<Tensor> inputs(st.inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    inputs[i] = detach(st.inputs[i]);
    if (needs[i] && inputs[i].defined()) set_requires_grad(inputs[i], true);
  }
  Tensor out;
  {
    GeneratorStateScope rng(default_generator(), st.seed, st.offset);
    EnableGradGuard grad_on;
    out = st.fn(inputs);
  }
  ZT_CHECK(out.defined() && out.shape() == grad_out.shape(),
           "checkpoint: the recomputed output has shape ",
           out.defined() ? shape_str(out.shape()) : std::string("(undefined)"),
           " but the forward's had ", shape_str(grad_out.shape()),
           "; fn must compute the same thing both times");
  // Nothing inside fn needs a gradient (frozen parameters, inputs without grad): done.
  if (requires_grad(out)) backward(out, grad_out);
  autograd::Grads grads(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    if (needs[i] && inputs[i].defined()) grads[i] = grad(inputs[i]);
  return grads;
}

}  // namespace

Tensor checkpoint(MultiFn fn, const std::vector<Tensor>& inputs) {
  ZT_CHECK(fn, "checkpoint: fn is empty");
  // fn may use parameters that require grad even when no input does, so the node is recorded
  // whenever grad mode is on; its backward finds out what needs a gradient.
  if (!grad_mode_enabled()) return fn(inputs);
  auto state = std::make_shared<CheckpointState>();
  const Generator& gen = default_generator();
  state->seed = gen.seed();
  state->offset = gen.offset();
  Tensor out;
  {
    NoGradGuard no_grad;
    out = fn(inputs);
  }
  ZT_CHECK(out.defined(), "checkpoint: fn returned an undefined tensor");
  state->inputs.reserve(inputs.size());
  for (const Tensor& t : inputs) state->inputs.push_back(autograd::save_for_backward(t));
  state->fn = std::move(fn);
  auto outs = autograd::make_node(
      "checkpoint", std::vector<Tensor>{out}, inputs,
      [state](const Tensor& grad_out, autograd::Needs needs) {
        return recompute_and_backward(*state, grad_out, needs);
      });
  return outs[0];
}

Tensor checkpoint(std::function<Tensor(const Tensor&)> fn, const Tensor& input) {
  ZT_CHECK(fn, "checkpoint: fn is empty");
  return checkpoint(MultiFn([fn = std::move(fn)](const std::vector<Tensor>& xs) { return fn(xs[0]); }),
                    std::vector<Tensor>{input});
}

}  // namespace zt
