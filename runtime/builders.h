// Builders: the optimizer, LR schedule, loss scaler and compute dtype that a Config asks for
// (DeepSpeed's optimizer/scheduler/fp16/bf16 sections). The engine calls these; programs that
// build their own optimizer or schedule pass it to initialize() instead.
#pragma once
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "runtime/config.h"
#include "zero/loss_scaler.h"

namespace zt {

// "Adam" (decoupled weight decay unless adam_w_mode is false, as DeepSpeed), "AdamW" or "SGD"
// over `groups` (groups with unset lr/weight_decay take the config's). An error for a config
// without an optimizer section.
std::unique_ptr<Optimizer> build_optimizer(const OptimizerConfig& config, std::vector<ParamGroup> groups);
// WarmupLR, WarmupDecayLR, WarmupCosineLR or OneCycle driving `optimizer`; null when the config
// has no scheduler section. A last_batch_iteration >= 0 resumes the schedule there.
std::unique_ptr<LRSchedule> build_scheduler(const SchedulerConfig& config, Optimizer& optimizer);
// fp16: the static scale (loss_scale > 0) or a dynamic scaler with 2^initial_scale_power,
// loss_scale_window, hysteresis, min_loss_scale and consecutive_hysteresis. bf16 and f32: 1.
LossScaler build_loss_scaler(const Config& config);
// f16 with fp16 enabled, bf16 with bf16 enabled, else f32.
DType compute_dtype(const Config& config);

}  // namespace zt
