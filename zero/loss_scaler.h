// LossScaler: the loss scale of fp16 training, static or dynamic, with DeepSpeed's exact rules
// (deepspeed/runtime/fp16/loss_scaler.py, DynamicLossScaler.update_scale). Self-contained: the
// engine asks for scale() before backward and reports each step's overflow through update().
//
// Note [Dynamic loss scale rules]
// The scale starts at initial_scale (2^initial_scale_power). update(overflow) once per optimizer
// step (iteration i, counted from 0):
// - overflow: when hysteresis is 1 or the hysteresis counter is down to 1, the scale halves, but
//   not below min_scale; a scale already at min_scale cannot halve and is an error (DeepSpeed's
//   raise_error_at_min_scale). Otherwise the counter drops by one and the scale stays. Either
//   way i becomes the last overflow iteration.
// - no overflow: with consecutive_hysteresis the counter is refilled. stable = i - last_overflow
//   - 1; when stable > 0 and stable % scale_window == 0 the scale doubles and (without
//   consecutive_hysteresis) the counter is refilled.
// The static scaler never changes and never fails.
#pragma once
#include <cstdint>
#include <string>

namespace zt {

struct DynamicLossScaleOptions {
  double initial_scale = 65536.0;  // 2^16, DeepSpeed's initial_scale_power default
  int64_t scale_window = 1000;
  int64_t hysteresis = 2;          // DeepSpeed's delayed_shift
  double min_scale = 1.0;
  bool consecutive_hysteresis = false;
  double scale_factor = 2.0;
};

// Everything an exact resume needs.
struct LossScalerState {
  double scale = 1.0;
  int64_t iteration = 0;
  int64_t last_overflow_iteration = -1;
  int64_t hysteresis_left = 1;
};

class LossScaler {
 public:
  // A static scale (1: no scaling, as for f32 and bf16 training).
  explicit LossScaler(double static_scale = 1.0);
  explicit LossScaler(const DynamicLossScaleOptions& options);

  double scale() const { return state_.scale; }
  bool dynamic() const { return dynamic_; }
  int64_t hysteresis_left() const { return state_.hysteresis_left; }

  // Records the outcome of one step and returns a short description of what happened to the
  // scale ("reduced 1024 -> 512", "hysteresis 2 -> 1", "" when nothing changed). Throws
  // zt::Error when an overflow would take the scale below min_scale.
  std::string update(bool overflow);

  LossScalerState state_dict() const { return state_; }
  void load_state_dict(const LossScalerState& state);

 private:
  bool dynamic_ = false;
  DynamicLossScaleOptions options_;
  LossScalerState state_;
};

}  // namespace zt
