// Learning-rate schedules with DeepSpeed's names and semantics (deepspeed/runtime/lr_schedules.py):
// WarmupLR, WarmupDecayLR, WarmupCosineLR and OneCycle (its learning-rate part).
//
// Note [Schedule steps]
// As in DeepSpeed, a schedule tracks last_batch_iteration (here last_step), starting at -1.
// Construction writes get_lr(-1) into the optimizer; each step() advances last_step and writes
// get_lr(last_step). The engine calls step() after each optimizer step, so optimizer step k
// (0-based) runs with get_lr(k - 1).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace zt {

struct LRScheduleState {
  int64_t last_step = -1;  // DeepSpeed's last_batch_iteration
};

// A schedule drives the learning rates of an optimizer it does not own (it must outlive the
// schedule).
class LRSchedule {
 public:
  virtual ~LRSchedule() = default;
  LRSchedule(const LRSchedule&) = delete;
  LRSchedule& operator=(const LRSchedule&) = delete;

  // The learning rate of `group` once `last_step` steps have been taken (a pure function).
  virtual double get_lr(int64_t last_step, size_t group = 0) const = 0;
  void step();                    // last_step + 1
  void step(int64_t last_step);   // jump to last_step
  int64_t last_step() const { return last_step_; }
  std::vector<double> last_lrs() const;  // what was last written into each group

  LRScheduleState state_dict() const { return {last_step_}; }
  // Restores last_step and writes its learning rate into the optimizer.
  void load_state_dict(const LRScheduleState& state);

 protected:
  explicit LRSchedule(Optimizer& optimizer) : optimizer_(optimizer) {}
  // Writes get_lr(last_step_) into every group; derived constructors call it once.
  virtual void apply();
  Optimizer& optimizer_;

 private:
  int64_t last_step_ = -1;
};

enum class WarmupType { log, linear };
WarmupType parse_warmup_type(const std::string& name);  // "log" | "linear"

// lr = min + (max - min) * gamma; gamma = log(step + 1) / log(warmup_num_steps) ("log") or
// step / warmup_num_steps ("linear") while step < warmup_num_steps, then 1.
struct WarmupLROptions {
  double warmup_min_lr = 0.0;
  double warmup_max_lr = 0.001;
  int64_t warmup_num_steps = 1000;  // raised to 2 when smaller, as DeepSpeed does
  std::string warmup_type = "log";
};

class WarmupLR : public LRSchedule {
 public:
  WarmupLR(Optimizer& optimizer, const WarmupLROptions& options);
  double get_lr(int64_t last_step, size_t group = 0) const override;

 protected:
  // gamma in [0, 1] during warmup; steps past warmup are the caller's.
  double warmup_gamma(int64_t last_step) const;
  WarmupLROptions options_;
  WarmupType type_;
};

// WarmupLR, then gamma = max(0, (total - step) / max(1, total - warmup)) after warmup.
struct WarmupDecayLROptions : WarmupLROptions {
  int64_t total_num_steps = 0;
};

class WarmupDecayLR : public WarmupLR {
 public:
  WarmupDecayLR(Optimizer& optimizer, const WarmupDecayLROptions& options);
  double get_lr(int64_t last_step, size_t group = 0) const override;

 private:
  int64_t total_num_steps_;
};

// lr = base_lr(group) * ratio, base_lr taken from the optimizer at construction. Warmup:
// ratio = warmup_min_ratio + (1 - warmup_min_ratio) * gamma. Then cosine:
// ratio = cos_min_ratio + (1 - cos_min_ratio) * (1 + cos(pi * s / (total - warmup))) / 2 with
// s = step - warmup + 1. Past total_num_steps s is held at total - warmup, so the lr stays at
// cos_min_ratio instead of DeepSpeed's cosine rising again.
struct WarmupCosineLROptions {
  int64_t total_num_steps = 0;
  double warmup_min_ratio = 0.0;
  int64_t warmup_num_steps = 1000;
  double cos_min_ratio = 0.0001;
  std::string warmup_type = "log";
};

class WarmupCosineLR : public LRSchedule {
 public:
  WarmupCosineLR(Optimizer& optimizer, const WarmupCosineLROptions& options);
  double get_lr(int64_t last_step, size_t group = 0) const override;
  double get_lr_ratio(int64_t last_step) const;

 private:
  WarmupCosineLROptions options_;
  WarmupType type_;
  std::vector<double> base_lrs_;
};

// One triangular cycle cycle_min_lr -> cycle_max_lr (cycle_first_step_size steps) -> back
// (cycle_second_step_size steps), then lr = cycle_min_lr / (1 + decay_lr_rate * n /
// decay_step_size) with n steps past the cycle (no decay when decay_step_size or decay_lr_rate
// is 0). With cycle_momentum, Adam's beta1 moves inversely, cycle_max_mom -> cycle_min_mom ->
// back, then cycle_max_mom * (1 + decay_mom_rate * n / decay_step_size); DeepSpeed sets beta2
// to 0.99 meanwhile, and so do we. Optimizers without betas (SGD) are left alone, as DeepSpeed
// does when the optimizer has no "betas".
struct OneCycleOptions {
  double cycle_min_lr = 0.0;
  double cycle_max_lr = 0.0;
  double decay_lr_rate = 0.0;
  int64_t cycle_first_step_size = 2000;
  int64_t cycle_second_step_size = -1;  // -1: same as cycle_first_step_size
  int64_t decay_step_size = 0;
  bool cycle_momentum = true;
  double cycle_min_mom = 0.8;
  double cycle_max_mom = 0.9;
  double decay_mom_rate = 0.0;
};

class OneCycle : public LRSchedule {
 public:
  OneCycle(Optimizer& optimizer, const OneCycleOptions& options);
  double get_lr(int64_t last_step, size_t group = 0) const override;
  // beta1 after last_step steps (meaningful when cycle_momentum is on).
  double get_mom(int64_t last_step) const;

 protected:
  void apply() override;

 private:
  double scale_factor(int64_t last_step) const;  // position in the triangle, 0..1
  OneCycleOptions options_;
  double total_size_, step_ratio_;
  bool constructed_ = false;
};

}  // namespace zt
