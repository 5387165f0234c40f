// Builders: Config sections -> optimizer, schedule, loss scaler and compute dtype.
#include "runtime/builders.h"

#include <cmath>

#include "core/error.h"
#include "optim/adam.h"
#include "optim/sgd.h"

namespace zt {

std::unique_ptr<Optimizer> build_optimizer(const OptimizerConfig& config, std::vector<ParamGroup> groups) {
  ZT_CHECK(config.enabled(), "initialize: the config has no \"optimizer\" section and the program passed "
           "no optimizer; add {\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": ...}}}");
  if (config.type == "SGD") {
    SGDOptions o;
    o.lr = config.lr;
    o.momentum = config.momentum;
    o.dampening = config.dampening;
    o.weight_decay = config.weight_decay;
    o.nesterov = config.nesterov;
    return std::make_unique<SGD>(std::move(groups), o);
  }
  ZT_CHECK(config.type == "Adam" || config.type == "AdamW", "optimizer.type: expected Adam, AdamW or SGD, found '",
           config.type, "'");
  ZT_CHECK(config.bias_correction, "optimizer.params.bias_correction: only true is supported (Adam here "
           "always corrects the moment bias), found false");
  AdamWOptions o;
  o.lr = config.lr;
  o.beta1 = config.betas[0];
  o.beta2 = config.betas[1];
  o.eps = config.eps;
  o.weight_decay = config.weight_decay;
  if (config.decoupled_weight_decay()) return std::make_unique<AdamW>(std::move(groups), o);
  return std::make_unique<Adam>(std::move(groups), static_cast<const AdamOptions&>(o));
}

namespace {

void fill_warmup(WarmupLROptions& o, const SchedulerConfig& c) {
  o.warmup_min_lr = c.warmup_min_lr;
  o.warmup_max_lr = c.warmup_max_lr;
  o.warmup_num_steps = c.warmup_num_steps;
  o.warmup_type = c.warmup_type;
}

std::unique_ptr<LRSchedule> make_schedule(const SchedulerConfig& c, Optimizer& optimizer) {
  if (c.type == "WarmupLR") {
    WarmupLROptions o;
    fill_warmup(o, c);
    return std::make_unique<WarmupLR>(optimizer, o);
  }
  if (c.type == "WarmupDecayLR") {
    WarmupDecayLROptions o;
    fill_warmup(o, c);
    o.total_num_steps = c.total_num_steps;
    return std::make_unique<WarmupDecayLR>(optimizer, o);
  }
  if (c.type == "WarmupCosineLR") {
    WarmupCosineLROptions o;
    o.total_num_steps = c.total_num_steps;
    o.warmup_min_ratio = c.warmup_min_ratio;
    o.warmup_num_steps = c.warmup_num_steps;
    o.cos_min_ratio = c.cos_min_ratio;
    o.warmup_type = c.warmup_type;
    return std::make_unique<WarmupCosineLR>(optimizer, o);
  }
  ZT_CHECK(c.type == "OneCycle", "scheduler.type: expected WarmupLR, WarmupDecayLR, WarmupCosineLR or "
           "OneCycle, found '", c.type, "'");
  OneCycleOptions o;
  o.cycle_min_lr = c.cycle_min_lr;
  o.cycle_max_lr = c.cycle_max_lr;
  o.decay_lr_rate = c.decay_lr_rate;
  o.cycle_first_step_size = c.cycle_first_step_size;
  o.cycle_second_step_size = c.cycle_second_step_size.value_or(-1);
  o.decay_step_size = c.decay_step_size;
  o.cycle_momentum = c.cycle_momentum;
  o.cycle_min_mom = c.cycle_min_mom;
  o.cycle_max_mom = c.cycle_max_mom;
  o.decay_mom_rate = c.decay_mom_rate;
  return std::make_unique<OneCycle>(optimizer, o);
}

}  // namespace

std::unique_ptr<LRSchedule> build_scheduler(const SchedulerConfig& config, Optimizer& optimizer) {
  if (!config.enabled()) return nullptr;
  std::unique_ptr<LRSchedule> schedule = make_schedule(config, optimizer);
  if (config.last_batch_iteration >= 0) schedule->step(config.last_batch_iteration);
  return schedule;
}

LossScaler build_loss_scaler(const Config& config) {
  if (!config.fp16.enabled) return LossScaler(1.0);
  if (!config.fp16.dynamic_loss_scale()) return LossScaler(config.fp16.loss_scale);
  DynamicLossScaleOptions o;
  o.initial_scale = std::ldexp(1.0, int(config.fp16.initial_scale_power));
  o.scale_window = config.fp16.loss_scale_window;
  o.hysteresis = config.fp16.hysteresis;
  o.min_scale = config.fp16.min_loss_scale;
  o.consecutive_hysteresis = config.fp16.consecutive_hysteresis;
  return LossScaler(o);
}

DType compute_dtype(const Config& config) {
  if (config.fp16.enabled) return DType::f16;
  if (config.bf16.enabled) return DType::bf16;
  return DType::f32;
}

}  // namespace zt
