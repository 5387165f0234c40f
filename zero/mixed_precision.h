// Mixed precision (DESIGN.md §5): the model computes in bf16/f16 while fp32 master copies of its
// parameters take the optimizer step. PrecisionOptimizer is the seam the engine talks to. The
// engine normally steps the flat ZeRO optimizer (zero/sharded_optimizer.h; stage 0 unpartitioned);
// MixedPrecisionOptimizer, one master per tensor, is its stage-0 fallback for models whose
// trainable parameters differ in dtype or device (runtime/engine_zero.h uses_zero_optimizer).
//
// Note [Precision step]
// The engine drives one optimizer step at the accumulation boundary as
//   scale the loss by loss_scale() in backward
//   unscale_gradients()   model grads (any dtype) -> fp32 master grads / scale; false when any
//                         gradient is inf or NaN (then the caller skips the step)
//   update_loss_scale(overflow)
//   clip_gradients(max)   global-norm clipping of the master grads
//   step(optimizer)       optimizer update of the masters, copied back into the model's dtype
//   zero_grad()
// An f32 model is its own master: gradients are unscaled in place and the optimizer updates the
// parameters directly.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "optim/optimizer.h"
#include "zero/loss_scaler.h"

namespace zt {

class PrecisionOptimizer {
 public:
  virtual ~PrecisionOptimizer() = default;

  // The tensors the optimizer updates (fp32 masters, or the model's own parameters).
  virtual std::vector<Tensor> master_parameters() const = 0;
  // Points a caller-built optimizer (over the model's parameters or the masters) at the masters.
  // It must not have taken a step yet: its state would belong to other tensors.
  virtual void bind(Optimizer& optimizer) const = 0;

  virtual LossScaler& loss_scaler() = 0;
  double loss_scale() { return loss_scaler().scale(); }
  // Reports the step's overflow to the scaler; returns what changed (LossScaler::update).
  std::string update_loss_scale(bool overflow) { return loss_scaler().update(overflow); }

  // See Note [Precision step].
  virtual bool unscale_gradients() = 0;
  virtual double clip_gradients(double max_norm) = 0;
  virtual void step(Optimizer& optimizer) = 0;
  virtual void zero_grad() = 0;
};

struct MixedPrecisionOptions {
  // The model's parameters (in its compute dtype) and, parallel to them, fp32 tensors holding
  // their values; an empty `masters` makes fp32 copies. For an f32 model pass no masters: the
  // parameters serve as their own.
  std::vector<Tensor> params;
  std::vector<Tensor> masters;
};

// Every rank keeps all masters, one fp32 tensor per parameter.
class MixedPrecisionOptimizer final : public PrecisionOptimizer {
 public:
  MixedPrecisionOptimizer(MixedPrecisionOptions options, LossScaler scaler);

  std::vector<Tensor> master_parameters() const override { return masters_; }
  void bind(Optimizer& optimizer) const override;
  LossScaler& loss_scaler() override { return scaler_; }
  bool unscale_gradients() override;
  double clip_gradients(double max_norm) override;
  void step(Optimizer& optimizer) override;
  void zero_grad() override;

  // Whether masters are separate fp32 tensors (false for an f32 model).
  bool has_separate_masters() const { return separate_; }

 private:
  std::vector<Tensor> params_;
  std::vector<Tensor> masters_;
  std::vector<Tensor> master_grads_;  // fp32 gradients for one step (separate masters only)
  bool separate_ = false;
  LossScaler scaler_;
};

}  // namespace zt
