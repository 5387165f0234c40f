// LossScaler: static and dynamic loss scaling with DeepSpeed's rules (Note [Dynamic loss scale
// rules] in zero/loss_scaler.h).
#include "zero/loss_scaler.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace zt {

namespace {
std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace

LossScaler::LossScaler(double static_scale) {
  ZT_CHECK(std::isfinite(static_scale) && static_scale > 0,
           "LossScaler: expected a positive finite static loss scale, found ", static_scale);
  state_.scale = static_scale;
}

LossScaler::LossScaler(const DynamicLossScaleOptions& options) : dynamic_(true), options_(options) {
  ZT_CHECK(std::isfinite(options.initial_scale) && options.initial_scale > 0,
           "LossScaler: expected a positive finite initial scale, found ", options.initial_scale);
  ZT_CHECK(options.scale_window > 0, "LossScaler: expected scale_window > 0, found ", options.scale_window);
  ZT_CHECK(options.hysteresis > 0, "LossScaler: expected hysteresis > 0, found ", options.hysteresis);
  ZT_CHECK(options.min_scale > 0, "LossScaler: expected min_scale > 0, found ", options.min_scale);
  ZT_CHECK(options.scale_factor > 1, "LossScaler: expected scale_factor > 1, found ", options.scale_factor);
  state_.scale = options.initial_scale;
  state_.hysteresis_left = options.hysteresis;
}

std::string LossScaler::update(bool overflow) {
  if (!dynamic_) return "";
  LossScalerState& s = state_;
  std::string change;
  if (overflow) {
    if (options_.hysteresis == 1 || s.hysteresis_left == 1) {
      ZT_CHECK(s.scale != options_.min_scale, "loss scale: gradients overflowed at the minimum loss scale ",
               options_.min_scale, " (fp16.min_loss_scale); the scale cannot be reduced any further. "
               "Lower the learning rate, enable gradient_clipping or train in bf16");
      const double next = std::max(s.scale / options_.scale_factor, options_.min_scale);
      change = "loss scale " + number(s.scale) + " -> " + number(next);
      s.scale = next;
    } else {
      change = "loss scale stays " + number(s.scale) + ", hysteresis " + std::to_string(s.hysteresis_left) +
               " -> " + std::to_string(s.hysteresis_left - 1);
      --s.hysteresis_left;
    }
    s.last_overflow_iteration = s.iteration;
  } else {
    if (options_.consecutive_hysteresis) s.hysteresis_left = options_.hysteresis;
    const int64_t stable = s.iteration - s.last_overflow_iteration - 1;
    if (stable > 0 && stable % options_.scale_window == 0) {
      if (!options_.consecutive_hysteresis) s.hysteresis_left = options_.hysteresis;
      change = "loss scale " + number(s.scale) + " -> " + number(s.scale * options_.scale_factor);
      s.scale *= options_.scale_factor;
    }
  }
  ++s.iteration;
  return change;
}

void LossScaler::load_state_dict(const LossScalerState& state) {
  ZT_CHECK(std::isfinite(state.scale) && state.scale > 0,
           "LossScaler::load_state_dict: expected a positive finite scale, found ", state.scale);
  ZT_CHECK(dynamic_ || state.scale == state_.scale, "LossScaler::load_state_dict: this scaler is static at ",
           state_.scale, " but the saved scale is ", state.scale);
  state_ = state;
}

}  // namespace zt
