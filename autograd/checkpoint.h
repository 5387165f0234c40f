// Activation checkpointing (DESIGN.md §3): run a piece of the forward without keeping its
// intermediate activations, and recompute them during backward. Only the inputs and the default
// generator's (seed, offset) are kept, so the recompute draws the same dropout masks and the
// gradients are bitwise those of the plain forward.
//
// Note [Checkpoint recompute]
// The forward runs fn under NoGradGuard and records one "checkpoint" node whose edges lead to
// the inputs. Its backward restores the generator state of the forward, re-runs fn with grad
// mode on over detached copies of the inputs, puts the generator back where it was, and runs a
// nested backward from the recomputed output with the incoming gradient. That nested pass
// accumulates into every parameter fn touches (firing their grad-ready hooks as usual) and into
// the detached inputs, whose gradients the node hands on to the outer graph.
#pragma once
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace zt {

// y = fn(input), recomputed in backward. fn must be deterministic given the default generator's
// state (dropout through default_generator() is; a private Generator is not restored). fn runs
// twice, so module forward hooks inside it fire twice. Without grad mode it is just fn(input).
Tensor checkpoint(std::function<Tensor(const Tensor&)> fn, const Tensor& input);

// The same for several inputs (each gets a gradient when it requires one).
Tensor checkpoint(std::function<Tensor(const std::vector<Tensor>&)> fn,
                  const std::vector<Tensor>& inputs);

}  // namespace zt
