// Optimizer: the base of SGD/Adam/AdamW over parameter groups, with per-parameter state
// (moments, step counts) that state_dict()/load_state_dict() save and restore exactly.
//
// Note [Optimizer updates]
// step() runs under NoGradGuard. CPU parameters in f32/f64 are updated by one fused loop over
// contiguous data (param, grad and state of one dtype); other devices and dtypes go through raw
// in-place ops (core/ops.h), which every backend implements. Parameters whose gradient is
// undefined are skipped and their step count does not advance, as in PyTorch.
//
// Note [Folded gradient scaling]
// A mixed-precision step used to widen the reduced 16-bit gradients into an fp32 copy, then
// multiply that copy by 1 / loss scale and by the clipping coefficient in two more passes, then
// step. An optimizer that supports_scaled_gradients() (Adam, AdamW) instead takes the gradients as
// they are, 16-bit included (step_with_gradients), with those factors (GradientScale in
// core/adam_scalars.h) and applies them in its own pass with the same roundings: widen, times
// unscale, times clip, each factor rounded to the parameter's dtype, each product rounded, each
// skipped when 1. Its results are those of the separate passes bit for bit, without the 4 bytes
// per parameter of the fp32 copy and three passes over memory. ZeRO uses it (zero/
// sharded_optimizer.h); optimizers without it (SGD) keep the fp32 copy.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/adam_scalars.h"
#include "nn/module.h"

namespace zt {

struct ParamGroup {
  // A negative lr or weight_decay means "unset": the optimizer's options fill it in.
  static constexpr double kUnset = -1.0;
  std::vector<Tensor> params;
  double lr = kUnset;
  double weight_decay = kUnset;
};

// Two groups chosen by name, shape and layer type, never by index: group 0 decays (weight
// matrices), group 1 does not: 1-D params, names ending in "bias", and every parameter of a
// LayerNorm or Embedding (as minGPT). Both groups are always present (either may be empty).
std::vector<ParamGroup> make_param_groups(Module& module, double weight_decay);

// Everything an exact resume needs. Tensors: "state.<group>.<index>.<name>" (clones);
// scalars: "state.<group>.<index>.step", "group.<g>.lr", "group.<g>.weight_decay", "step".
struct OptimizerState {
  TensorDict tensors;
  std::map<std::string, double> scalars;
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient.
  void step();
  // Whether step_with_gradients() is available (Note [Folded gradient scaling]).
  virtual bool supports_scaled_gradients() const { return false; }
  // One update from `grads` instead of the parameters' gradients: grads[g][i] for
  // param_groups()[g].params[i] (its shape, device and dtype, or f16/bf16 for an f32 parameter;
  // undefined: skipped), each read as times `scale` (Note [Folded gradient scaling]). The
  // parameters' own gradients are not read. Only where supports_scaled_gradients().
  void step_with_gradients(const std::vector<std::vector<Tensor>>& grads, const GradientScale& scale);
  // Clears every parameter's gradient (to undefined).
  void zero_grad();

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  double lr(size_t group = 0) const;
  void set_lr(size_t group, double lr);
  void set_lr(double lr);  // every group
  int64_t step_count() const { return step_count_; }

  // Asks the optimizer to write every update of `param` also into `copy` (same numel, contiguous,
  // f16/bf16), rounded, in the same pass: the compute-dtype weights of mixed precision, which
  // then need no separate copy from the fp32 masters. False when this optimizer cannot (the
  // caller copies them itself); Adam and AdamW can.
  virtual bool set_model_copy(const Tensor& param, const Tensor& copy) { return false; }

  OptimizerState state_dict() const;
  // Errors when the parameter layout (group count, sizes, shapes) differs from the saved one.
  void load_state_dict(const OptimizerState& state);

 protected:
  struct ParamState {
    int64_t step = 0;
    TensorDict buffers;  // "exp_avg", "momentum_buffer", ...: tagged optimizer_state
  };
  // Updates one parameter; state.step has already been advanced.
  virtual void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                      ParamState& state) = 0;
  // Fills unset lr/weight_decay of every group (called by derived constructors).
  void fill_group_defaults(double lr, double weight_decay);
  // A zero-filled state tensor shaped like param, tagged MemoryCategory::optimizer_state.
  static Tensor make_state_like(const Tensor& param);
  // Whether param/grad/state can take the fused CPU loop (Note [Optimizer updates]).
  static bool fused_eligible(const Tensor& param, const Tensor& grad);
  // The factors update() applies to its gradient: step_with_gradients()'s, else none.
  const GradientScale& gradient_scale() const { return gradient_scale_; }

 private:
  // The step of every parameter with a gradient: grads[g][i] when given, else .grad().
  void step_from(const std::vector<std::vector<Tensor>>* grads);

  std::vector<ParamGroup> groups_;
  std::vector<std::vector<ParamState>> state_;  // [group][param]
  int64_t step_count_ = 0;
  GradientScale gradient_scale_;
};

}  // namespace zt
