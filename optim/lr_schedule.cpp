// Learning-rate schedules (DeepSpeed semantics, Note [Schedule steps] in optim/lr_schedule.h).
#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "optim/adam.h"

namespace zt {

// ---- LRSchedule ----

void LRSchedule::step() { step(last_step_ + 1); }

void LRSchedule::step(int64_t last_step) {
  last_step_ = last_step;
  apply();
}

void LRSchedule::apply() {
  for (size_t g = 0; g < optimizer_.param_groups().size(); ++g)
    optimizer_.set_lr(g, get_lr(last_step_, g));
}

std::vector<double> LRSchedule::last_lrs() const {
  std::vector<double> out;
  for (const auto& g : optimizer_.param_groups()) out.push_back(g.lr);
  return out;
}

void LRSchedule::load_state_dict(const LRScheduleState& state) {
  ZT_CHECK(state.last_step >= -1, "LRSchedule::load_state_dict: expected last_step >= -1, found ",
           state.last_step);
  step(state.last_step);
}

WarmupType parse_warmup_type(const std::string& name) {
  if (name == "log") return WarmupType::log;
  if (name == "linear") return WarmupType::linear;
  ZT_FAIL("warmup_type: expected \"log\" or \"linear\", found \"", name, "\"");
}

namespace {

// DeepSpeed's warmup fraction; last_step < 0 (before the first step) gives 0.
double warmup_fraction(WarmupType type, int64_t last_step, int64_t warmup_num_steps) {
  if (last_step < 0) return 0.0;
  if (type == WarmupType::log)
    return std::log(double(last_step + 1)) / std::log(double(warmup_num_steps));
  return double(last_step) / double(warmup_num_steps);
}

}  // namespace

// ---- WarmupLR / WarmupDecayLR ----

WarmupLR::WarmupLR(Optimizer& optimizer, const WarmupLROptions& options)
    : LRSchedule(optimizer), options_(options), type_(parse_warmup_type(options.warmup_type)) {
  options_.warmup_num_steps = std::max<int64_t>(2, options.warmup_num_steps);
  apply();
}

double WarmupLR::warmup_gamma(int64_t last_step) const {
  return warmup_fraction(type_, last_step, options_.warmup_num_steps);
}

double WarmupLR::get_lr(int64_t last_step, size_t) const {
  double gamma = last_step < options_.warmup_num_steps ? warmup_gamma(last_step) : 1.0;
  return options_.warmup_min_lr + (options_.warmup_max_lr - options_.warmup_min_lr) * gamma;
}

WarmupDecayLR::WarmupDecayLR(Optimizer& optimizer, const WarmupDecayLROptions& options)
    : WarmupLR(optimizer, options), total_num_steps_(options.total_num_steps) {
  ZT_CHECK(options.total_num_steps > 0, "WarmupDecayLR: expected total_num_steps > 0, found ",
           options.total_num_steps);
  apply();
}

double WarmupDecayLR::get_lr(int64_t last_step, size_t) const {
  double gamma;
  if (last_step < options_.warmup_num_steps) {
    gamma = warmup_gamma(last_step);
  } else {
    gamma = std::max(0.0, double(total_num_steps_ - last_step) /
                              std::max(1.0, double(total_num_steps_ - options_.warmup_num_steps)));
  }
  return options_.warmup_min_lr + (options_.warmup_max_lr - options_.warmup_min_lr) * gamma;
}

// ---- WarmupCosineLR ----

WarmupCosineLR::WarmupCosineLR(Optimizer& optimizer, const WarmupCosineLROptions& options)
    : LRSchedule(optimizer), options_(options), type_(parse_warmup_type(options.warmup_type)) {
  options_.warmup_num_steps = std::max<int64_t>(2, options.warmup_num_steps);
  ZT_CHECK(options.total_num_steps > options_.warmup_num_steps,
           "WarmupCosineLR: expected total_num_steps > warmup_num_steps, found total_num_steps=",
           options.total_num_steps, " warmup_num_steps=", options_.warmup_num_steps);
  for (const auto& g : optimizer.param_groups()) base_lrs_.push_back(g.lr);
  apply();
}

double WarmupCosineLR::get_lr_ratio(int64_t last_step) const {
  const int64_t warmup = options_.warmup_num_steps;
  if (last_step < warmup) {
    double gamma = warmup_fraction(type_, last_step, warmup);
    return options_.warmup_min_ratio + (1.0 - options_.warmup_min_ratio) * gamma;
  }
  const int64_t total = options_.total_num_steps - warmup;
  const int64_t s = std::min(last_step - warmup + 1, total);
  double cosine = (1.0 + std::cos(std::numbers::pi * double(s) / double(total))) / 2.0;
  return std::max(0.0, options_.cos_min_ratio + (1.0 - options_.cos_min_ratio) * cosine);
}

double WarmupCosineLR::get_lr(int64_t last_step, size_t group) const {
  ZT_CHECK(group < base_lrs_.size(), "WarmupCosineLR: group ", group, " out of range (",
           base_lrs_.size(), " groups)");
  return base_lrs_[group] * get_lr_ratio(last_step);
}

// ---- OneCycle ----

OneCycle::OneCycle(Optimizer& optimizer, const OneCycleOptions& options)
    : LRSchedule(optimizer), options_(options) {
  ZT_CHECK(options.cycle_first_step_size > 0, "OneCycle: expected cycle_first_step_size > 0, found ",
           options.cycle_first_step_size);
  double first = double(options.cycle_first_step_size);
  double second = options.cycle_second_step_size < 0 ? first : double(options.cycle_second_step_size);
  ZT_CHECK(second > 0, "OneCycle: expected cycle_second_step_size > 0, found ", second);
  ZT_CHECK(options.decay_step_size >= 0, "OneCycle: expected decay_step_size >= 0, found ",
           options.decay_step_size);
  total_size_ = first + second;
  step_ratio_ = first / total_size_;
  apply();
  constructed_ = true;
}

double OneCycle::scale_factor(int64_t last_step) const {
  double batch = double(last_step + 1);
  double cycle = std::floor(1.0 + batch / total_size_);
  double x = 1.0 + batch / total_size_ - cycle;
  return x <= step_ratio_ ? x / step_ratio_ : (x - 1.0) / (step_ratio_ - 1.0);
}

double OneCycle::get_lr(int64_t last_step, size_t) const {
  const double min_lr = options_.cycle_min_lr, max_lr = options_.cycle_max_lr;
  if (double(last_step) < total_size_) return min_lr + (max_lr - min_lr) * scale_factor(last_step);
  if (options_.decay_step_size == 0 || options_.decay_lr_rate == 0) return min_lr;
  double interval = (double(last_step) - total_size_ + 1.0) / double(options_.decay_step_size);
  return min_lr / (1.0 + options_.decay_lr_rate * interval);
}

double OneCycle::get_mom(int64_t last_step) const {
  const double min_mom = options_.cycle_min_mom, max_mom = options_.cycle_max_mom;
  if (double(last_step) < total_size_) return max_mom - (max_mom - min_mom) * scale_factor(last_step);
  if (options_.decay_step_size == 0 || options_.decay_mom_rate == 0) return max_mom;
  double interval = (double(last_step) - total_size_ + 1.0) / double(options_.decay_step_size);
  return max_mom * (1.0 + options_.decay_mom_rate * interval);
}

void OneCycle::apply() {
  LRSchedule::apply();
  auto* adam = dynamic_cast<Adam*>(&optimizer_);
  if (!options_.cycle_momentum || !adam) return;
  // DeepSpeed starts beta1 at cycle_min_mom on construction, then follows get_mom.
  adam->set_betas(constructed_ ? get_mom(last_step()) : options_.cycle_min_mom, 0.99);
}

}  // namespace zt
