// The config schema table (DeepSpeed's keys, defaults and meanings; see config_schema.h) and the
// reference page generated from it. Defaults follow DeepSpeed's runtime/constants.py and its
// pydantic configs (zero/config.py, zero/offload_config.py, precision_config.py).
#include "runtime/config_schema.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace zt {
namespace {

using nlohmann::json;
using T = ValueType;

void assign_value(bool& field, const json& v) { field = v.get<bool>(); }
void assign_value(int64_t& field, const json& v) { field = v.get<int64_t>(); }
void assign_value(double& field, const json& v) { field = v.get<double>(); }
void assign_value(std::string& field, const json& v) { field = v.is_null() ? "" : v.get<std::string>(); }
void assign_value(std::array<double, 2>& field, const json& v) {
  field = {v.at(0).get<double>(), v.at(1).get<double>()};
}
void assign_value(std::optional<int64_t>& field, const json& v) {
  field = v.is_null() ? std::nullopt : std::optional<int64_t>(v.get<int64_t>());
}

// The Config member a key fills (see Note [Config fields] in config.h).
#define ZT_FIELD(member) +[](Config& c, const json& v) { assign_value(c.member, v); }

ValueRange at_least(double v) { return {v}; }
ValueRange above(double v) { return {v, ValueRange{}.max, true}; }
ValueRange between(double lo, double hi) { return {lo, hi}; }
ValueRange unit_open() { return {0.0, 1.0, false, true}; }  // [0, 1)

const std::vector<std::string> kAdam = {"Adam", "AdamW"};
const std::vector<std::string> kSGD = {"SGD"};
const std::vector<std::string> kWarmup = {"WarmupLR", "WarmupDecayLR"};
const std::vector<std::string> kWarmupAll = {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR"};
const std::vector<std::string> kTotal = {"WarmupDecayLR", "WarmupCosineLR"};
const std::vector<std::string> kCosine = {"WarmupCosineLR"};
const std::vector<std::string> kOneCycle = {"OneCycle"};
const std::vector<std::string> kDevices = {"none", "cpu", "nvme"};
constexpr int64_t k5e8 = 500000000, k1e9 = 1000000000;

std::vector<SchemaEntry> batch_and_top_level() {
  const std::string batch_doc = "derived (see Batch size)";
  return {
      {"train_batch_size", T::integer, nullptr, at_least(1), {}, kAcceptsAuto, {},
       "Global batch: samples per optimizer step over all data-parallel ranks.", batch_doc,
       ZT_FIELD(train_batch_size)},
      {"train_micro_batch_size_per_gpu", T::integer, nullptr, at_least(1), {}, kAcceptsAuto, {},
       "Samples per forward/backward on each rank.", batch_doc,
       ZT_FIELD(train_micro_batch_size_per_gpu)},
      {"gradient_accumulation_steps", T::integer, nullptr, at_least(1), {}, kAcceptsAuto, {},
       "Micro-batches accumulated before each optimizer step.", batch_doc,
       ZT_FIELD(gradient_accumulation_steps)},
      {"gradient_clipping", T::number, 0.0, at_least(0), {}, kAcceptsAuto, {},
       "Clip the global gradient norm to this value; 0 disables clipping.", "",
       ZT_FIELD(gradient_clipping)},
      {"steps_per_print", T::integer, 10, at_least(1), {}, 0, {},
       "Print a progress line every this many optimizer steps.", "", ZT_FIELD(steps_per_print)},
      {"wall_clock_breakdown", T::boolean, false, {}, {}, 0, {},
       "Time forward, backward, reduction and step separately and report them.", "",
       ZT_FIELD(wall_clock_breakdown)},
      {"memory_breakdown", T::boolean, false, {}, {}, 0, {},
       "Report device memory in use and its peak with each progress line.", "",
       ZT_FIELD(memory_breakdown)},
      {"seed", T::integer, 0, at_least(0), {}, 0, {},
       "Seed of every random generator (zerotrain key; DeepSpeed leaves seeding to the script).",
       "", ZT_FIELD(seed)},
      {"prescale_gradients", T::boolean, false, {}, {}, 0, {},
       "Divide gradients by the data-parallel size before the reduction instead of after.", "",
       ZT_FIELD(prescale_gradients)},
      {"gradient_predivide_factor", T::number, 1.0, above(0), {}, 0, {},
       "Divide gradients by this factor before the reduction and by world/factor after.", "",
       ZT_FIELD(gradient_predivide_factor)},
      {"communication_data_type", T::string, nullptr, {}, {"fp32", "fp16", "bf16"}, kNullable, {},
       "Data type of gradient reductions; null reduces in the compute dtype.", "",
       ZT_FIELD(communication_data_type)},
      {"dump_state", T::boolean, false, {}, {}, 0, {},
       "Print the resolved configuration once the engine is initialised.", "",
       ZT_FIELD(dump_state)},
      {"zero_allow_untested_optimizer", T::boolean, false, {}, {}, 0, {},
       "Accepted for DeepSpeed compatibility: ZeRO shards every zerotrain optimizer.", "",
       ZT_FIELD(zero_allow_untested_optimizer)},
  };
}

std::vector<SchemaEntry> optimizer_entries() {
  return {
      {"optimizer", T::object, nullptr, {}, {}, 0, {},
       "The optimizer the engine builds; leave it out to pass your own to zt::initialize.", "",
       nullptr},
      {"optimizer.type", T::string, nullptr, {}, {"Adam", "AdamW", "SGD"},
       kRequired | kCaseInsensitive, {}, "Optimizer name, case-insensitive as in DeepSpeed.", "",
       ZT_FIELD(optimizer.type)},
      {"optimizer.params", T::object, nullptr, {}, {}, 0, {},
       "Optimizer hyper-parameters; which keys apply depends on optimizer.type.", "", nullptr},
      {"optimizer.params.lr", T::number, 1e-3, at_least(0), {}, kAcceptsAuto, {},
       "Learning rate (a scheduler overrides it step by step).", "", ZT_FIELD(optimizer.lr)},
      {"optimizer.params.betas", T::number_pair, json::array({0.9, 0.999}), unit_open(), {},
       kAcceptsAuto, kAdam, "Decay rates [beta1, beta2] of the first and second moments.", "",
       ZT_FIELD(optimizer.betas)},
      {"optimizer.params.eps", T::number, 1e-8, above(0), {}, kAcceptsAuto, kAdam,
       "Added to the denominator for numerical stability.", "", ZT_FIELD(optimizer.eps)},
      {"optimizer.params.weight_decay", T::number, 0.0, at_least(0), {}, kAcceptsAuto, {},
       "Weight decay (decoupled for AdamW and for Adam with adam_w_mode; L2 otherwise).", "",
       ZT_FIELD(optimizer.weight_decay)},
      {"optimizer.params.bias_correction", T::boolean, true, {}, {}, 0, kAdam,
       "Correct the moment estimates for their zero initialisation.", "",
       ZT_FIELD(optimizer.bias_correction)},
      {"optimizer.params.adam_w_mode", T::boolean, true, {}, {}, 0, kAdam,
       "DeepSpeed's switch: type Adam applies decoupled (AdamW) weight decay unless this is false.",
       "", ZT_FIELD(optimizer.adam_w_mode)},
      {"optimizer.params.torch_adam", T::boolean, false, {}, {}, 0, kAdam,
       "Accepted for DeepSpeed compatibility; zerotrain has one Adam implementation.", "",
       ZT_FIELD(optimizer.torch_adam)},
      {"optimizer.params.momentum", T::number, 0.0, at_least(0), {}, kAcceptsAuto, kSGD,
       "Momentum factor.", "", ZT_FIELD(optimizer.momentum)},
      {"optimizer.params.dampening", T::number, 0.0, at_least(0), {}, 0, kSGD,
       "Dampening of the momentum.", "", ZT_FIELD(optimizer.dampening)},
      {"optimizer.params.nesterov", T::boolean, false, {}, {}, 0, kSGD,
       "Nesterov momentum (needs momentum > 0 and dampening 0).", "",
       ZT_FIELD(optimizer.nesterov)},
  };
}

std::vector<SchemaEntry> scheduler_entries() {
  const unsigned a = kAcceptsAuto;
  return {
      {"scheduler", T::object, nullptr, {}, {}, 0, {},
       "The learning-rate schedule, stepped after every optimizer step.", "", nullptr},
      {"scheduler.type", T::string, nullptr, {}, {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR",
       "OneCycle"}, kRequired, {}, "Schedule name (case-sensitive, as in DeepSpeed).", "",
       ZT_FIELD(scheduler.type)},
      {"scheduler.params", T::object, nullptr, {}, {}, 0, {},
       "Schedule parameters; which keys apply depends on scheduler.type.", "", nullptr},
      {"scheduler.params.last_batch_iteration", T::integer, -1, at_least(-1), {}, 0, {},
       "Steps already taken before this run (-1: start from the beginning).", "",
       ZT_FIELD(scheduler.last_batch_iteration)},
      {"scheduler.params.warmup_min_lr", T::number, 0.0, at_least(0), {}, a, kWarmup,
       "Learning rate at the start of warmup.", "", ZT_FIELD(scheduler.warmup_min_lr)},
      {"scheduler.params.warmup_max_lr", T::number, 0.001, at_least(0), {}, a, kWarmup,
       "Learning rate at the end of warmup.", "", ZT_FIELD(scheduler.warmup_max_lr)},
      {"scheduler.params.warmup_num_steps", T::integer, 1000, at_least(0), {}, a, kWarmupAll,
       "Length of the warmup in steps.", "", ZT_FIELD(scheduler.warmup_num_steps)},
      {"scheduler.params.warmup_type", T::string, "log", {}, {"log", "linear"}, 0, kWarmupAll,
       "Shape of the warmup curve.", "", ZT_FIELD(scheduler.warmup_type)},
      {"scheduler.params.total_num_steps", T::integer, nullptr, at_least(1), {}, a | kRequired,
       kTotal, "Total training steps; the decay reaches its end here.", "",
       ZT_FIELD(scheduler.total_num_steps)},
      {"scheduler.params.warmup_min_ratio", T::number, 0.0, between(0, 1), {}, 0, kCosine,
       "Starting learning rate as a fraction of optimizer.params.lr.", "",
       ZT_FIELD(scheduler.warmup_min_ratio)},
      {"scheduler.params.cos_min_ratio", T::number, 0.0001, between(0, 1), {}, 0, kCosine,
       "Final learning rate as a fraction of optimizer.params.lr.", "",
       ZT_FIELD(scheduler.cos_min_ratio)},
      {"scheduler.params.cycle_min_lr", T::number, nullptr, at_least(0), {}, a | kRequired,
       kOneCycle, "Lowest learning rate of the cycle.", "", ZT_FIELD(scheduler.cycle_min_lr)},
      {"scheduler.params.cycle_max_lr", T::number, nullptr, at_least(0), {}, a | kRequired,
       kOneCycle, "Highest learning rate of the cycle.", "", ZT_FIELD(scheduler.cycle_max_lr)},
      {"scheduler.params.decay_lr_rate", T::number, 0.0, at_least(0), {}, 0, kOneCycle,
       "Learning-rate decay rate after the cycle.", "", ZT_FIELD(scheduler.decay_lr_rate)},
      {"scheduler.params.cycle_first_step_size", T::integer, 2000, at_least(1), {}, 0, kOneCycle,
       "Steps of the rising half of the cycle.", "", ZT_FIELD(scheduler.cycle_first_step_size)},
      {"scheduler.params.cycle_second_step_size", T::integer, nullptr, at_least(1), {}, kNullable,
       kOneCycle, "Steps of the falling half; null: same as cycle_first_step_size.", "",
       ZT_FIELD(scheduler.cycle_second_step_size)},
      {"scheduler.params.cycle_first_stair_count", T::integer, 0, at_least(0), {}, 0, kOneCycle,
       "Staircase steps of the rising half; only 0 (no staircase) is supported.", "",
       ZT_FIELD(scheduler.cycle_first_stair_count)},
      {"scheduler.params.cycle_second_stair_count", T::integer, nullptr, at_least(0), {},
       kNullable, kOneCycle, "Staircase steps of the falling half; only null or 0 is supported.",
       "", ZT_FIELD(scheduler.cycle_second_stair_count)},
      {"scheduler.params.decay_step_size", T::integer, 0, at_least(0), {}, 0, kOneCycle,
       "Steps between decays after the cycle; 0 disables the decay.", "",
       ZT_FIELD(scheduler.decay_step_size)},
      {"scheduler.params.cycle_momentum", T::boolean, true, {}, {}, 0, kOneCycle,
       "Cycle Adam's beta1 inversely to the learning rate.", "",
       ZT_FIELD(scheduler.cycle_momentum)},
      {"scheduler.params.cycle_min_mom", T::number, 0.8, unit_open(), {}, 0, kOneCycle,
       "Lowest momentum of the cycle.", "", ZT_FIELD(scheduler.cycle_min_mom)},
      {"scheduler.params.cycle_max_mom", T::number, 0.9, unit_open(), {}, 0, kOneCycle,
       "Highest momentum of the cycle.", "", ZT_FIELD(scheduler.cycle_max_mom)},
      {"scheduler.params.decay_mom_rate", T::number, 0.0, at_least(0), {}, 0, kOneCycle,
       "Momentum decay rate after the cycle.", "", ZT_FIELD(scheduler.decay_mom_rate)},
  };
}

std::vector<SchemaEntry> precision_entries() {
  return {
      {"fp16", T::object, nullptr, {}, {}, 0, {},
       "fp16 mixed precision: fp16 compute, fp32 master weights, loss scaling.", "", nullptr},
      {"fp16.enabled", T::boolean, false, {}, {}, kAcceptsAuto, {}, "Train in fp16.", "",
       ZT_FIELD(fp16.enabled)},
      {"fp16.auto_cast", T::boolean, false, {}, {}, 0, {},
       "Cast the model inputs to fp16.", "", ZT_FIELD(fp16.auto_cast)},
      {"fp16.loss_scale", T::number, 0.0, at_least(0), {}, 0, {},
       "Static loss scale; 0 selects dynamic loss scaling.", "", ZT_FIELD(fp16.loss_scale)},
      {"fp16.initial_scale_power", T::integer, 16, between(0, 127), {}, 0, {},
       "Dynamic scaling starts at 2^initial_scale_power.", "", ZT_FIELD(fp16.initial_scale_power)},
      {"fp16.loss_scale_window", T::integer, 1000, at_least(1), {}, 0, {},
       "Overflow-free steps before the dynamic scale doubles.", "",
       ZT_FIELD(fp16.loss_scale_window)},
      {"fp16.hysteresis", T::integer, 2, at_least(1), {}, 0, {},
       "Overflows tolerated before the dynamic scale halves.", "", ZT_FIELD(fp16.hysteresis)},
      {"fp16.consecutive_hysteresis", T::boolean, false, {}, {}, 0, {},
       "Refill the hysteresis after every overflow-free step, not only when the scale grows.", "",
       ZT_FIELD(fp16.consecutive_hysteresis)},
      {"fp16.min_loss_scale", T::number, 1.0, above(0), {}, 0, {},
       "Lowest dynamic loss scale; going below it is an error.", "",
       ZT_FIELD(fp16.min_loss_scale)},
      {"bf16", T::object, nullptr, {}, {}, 0, {},
       "bf16 mixed precision: bf16 compute, fp32 master weights, no loss scaling.", "", nullptr},
      {"bf16.enabled", T::boolean, false, {}, {}, kAcceptsAuto, {}, "Train in bf16.", "",
       ZT_FIELD(bf16.enabled)},
  };
}

std::vector<SchemaEntry> offload_entries(const std::string& p, bool param) {
  std::vector<SchemaEntry> e = {
      {p + ".device", T::string, "none", {}, kDevices, 0, {},
       param ? "Where stage-3 parameters live between uses." : "Where optimizer state and its "
       "step live.", "", param ? ZT_FIELD(zero_optimization.offload_param.device)
                               : ZT_FIELD(zero_optimization.offload_optimizer.device)},
      {p + ".nvme_path", T::string, nullptr, {}, {}, kNullable, {},
       "Folder for the NVMe swap files; required when device is nvme.", "",
       param ? ZT_FIELD(zero_optimization.offload_param.nvme_path)
             : ZT_FIELD(zero_optimization.offload_optimizer.nvme_path)},
      {p + ".pin_memory", T::boolean, false, {}, {}, 0, {},
       "Page-lock the host buffers for faster transfers.", "",
       param ? ZT_FIELD(zero_optimization.offload_param.pin_memory)
             : ZT_FIELD(zero_optimization.offload_optimizer.pin_memory)},
      {p + ".buffer_count", T::integer, param ? 5 : 4, at_least(1), {}, 0, {},
       "Number of I/O buffers for NVMe transfers.", "",
       param ? ZT_FIELD(zero_optimization.offload_param.buffer_count)
             : ZT_FIELD(zero_optimization.offload_optimizer.buffer_count)},
  };
  if (param) {
    e.push_back({p + ".buffer_size", T::integer, 100000000, at_least(1), {}, 0, {},
                 "Elements per NVMe parameter chunk (capped at 1 MiB): the unit the parameter file is read "
                 "and written in, through buffer_count host buffers.", "",
                 ZT_FIELD(zero_optimization.offload_param.buffer_size)});
    e.push_back({p + ".max_in_cpu", T::integer, k1e9, at_least(0), {}, 0, {},
                 "DeepSpeed's host cache of NVMe parameters; accepted, not used (zerotrain keeps only the "
                 "buffers).", "",
                 ZT_FIELD(zero_optimization.offload_param.max_in_cpu)});
  } else {
    e.push_back({p + ".ratio", T::number, 1.0, between(0, 1), {}, 0, {},
                 "Fraction of the optimizer step run on the CPU.", "",
                 ZT_FIELD(zero_optimization.offload_optimizer.ratio)});
    e.push_back({p + ".fast_init", T::boolean, false, {}, {}, 0, {},
                 "Initialise NVMe-offloaded optimizer state without staging it through memory.",
                 "", ZT_FIELD(zero_optimization.offload_optimizer.fast_init)});
  }
  return e;
}

std::vector<SchemaEntry> zero_entries() {
  const std::string z = "zero_optimization";
  std::vector<SchemaEntry> e = {
      {z, T::object, nullptr, {}, {}, 0, {},
       "ZeRO: what is partitioned across the data-parallel ranks.", "", nullptr},
      {z + ".stage", T::integer, 0, between(0, 3), {}, 0, {},
       "0: replicated; 1: optimizer state; 2: + gradients; 3: + parameters.", "",
       ZT_FIELD(zero_optimization.stage)},
      {z + ".contiguous_gradients", T::boolean, true, {}, {}, 0, {},
       "Copy reduced gradients into one contiguous buffer.", "",
       ZT_FIELD(zero_optimization.contiguous_gradients)},
      {z + ".overlap_comm", T::boolean, false, {}, {}, 0, {},
       "Overlap gradient reduction with the backward pass.", "false; true at stage 3",
       ZT_FIELD(zero_optimization.overlap_comm)},
      {z + ".reduce_scatter", T::boolean, true, {}, {}, 0, {},
       "Reduce gradients with reduce-scatter instead of all-reduce.", "",
       ZT_FIELD(zero_optimization.reduce_scatter)},
      {z + ".reduce_bucket_size", T::integer, k5e8, at_least(1), {}, kAcceptsAuto, {},
       "Elements reduced at once (stage 2 with offload_optimizer: at most 2^26 per bucket).", "",
       ZT_FIELD(zero_optimization.reduce_bucket_size)},
      {z + ".allgather_partitions", T::boolean, true, {}, {}, 0, {},
       "All-gather updated parameters (false: a broadcast per rank).", "",
       ZT_FIELD(zero_optimization.allgather_partitions)},
      {z + ".allgather_bucket_size", T::integer, k5e8, at_least(1), {}, kAcceptsAuto, {},
       "Elements all-gathered at once.", "", ZT_FIELD(zero_optimization.allgather_bucket_size)},
      {z + ".stage3_prefetch_bucket_size", T::integer, 50000000, at_least(0), {}, kAcceptsAuto,
       {}, "Stage 3: parameter elements prefetched ahead of use.", "",
       ZT_FIELD(zero_optimization.stage3_prefetch_bucket_size)},
      {z + ".stage3_param_persistence_threshold", T::integer, 100000, at_least(0), {},
       kAcceptsAuto, {}, "Stage 3: parameters smaller than this stay unpartitioned.", "",
       ZT_FIELD(zero_optimization.stage3_param_persistence_threshold)},
      {z + ".stage3_max_live_parameters", T::integer, k1e9, at_least(0), {}, kAcceptsAuto, {},
       "Stage 3: most gathered parameter elements alive at once.", "",
       ZT_FIELD(zero_optimization.stage3_max_live_parameters)},
      {z + ".stage3_max_reuse_distance", T::integer, k1e9, at_least(0), {}, kAcceptsAuto, {},
       "Stage 3: a unit whose next use is at most this many gathered elements away (the rest of the forward, "
       "then backward) stays gathered after its forward; 0 releases every unit right after its use.", "",
       ZT_FIELD(zero_optimization.stage3_max_reuse_distance)},
      {z + ".stage3_gather_16bit_weights_on_model_save", T::boolean, false, {}, {}, 0, {},
       "Stage 3: gather the full 16-bit weights when saving the model.", "",
       ZT_FIELD(zero_optimization.stage3_gather_16bit_weights_on_model_save)},
      {z + ".sub_group_size", T::integer, k1e9, at_least(0), {}, 0, {},
       "Elements per optimizer sub-group stepped at once (bounds offload memory).", "",
       ZT_FIELD(zero_optimization.sub_group_size)},
      {z + ".round_robin_gradients", T::boolean, false, {}, {}, 0, {},
       "Stage 1/2 with offload: spread gradient copies over ranks round-robin.", "",
       ZT_FIELD(zero_optimization.round_robin_gradients)},
      {z + ".offload_optimizer", T::object, nullptr, {}, {}, 0, {},
       "ZeRO-Offload of the Adam state and step (stages 1-3; cpu or nvme).", "", nullptr},
  };
  for (auto& x : offload_entries(z + ".offload_optimizer", false)) e.push_back(std::move(x));
  e.push_back({z + ".offload_param", T::object, nullptr, {}, {}, 0, {},
               "ZeRO-Infinity offload of parameters (stage 3 only; cpu or nvme).", "", nullptr});
  for (auto& x : offload_entries(z + ".offload_param", true)) e.push_back(std::move(x));
  return e;
}

std::vector<SchemaEntry> monitor_entries() {
  std::vector<SchemaEntry> e = {
      {"csv_monitor", T::object, nullptr, {}, {}, 0, {},
       "Write the logged metrics as CSV files.", "", nullptr},
      {"csv_monitor.enabled", T::boolean, false, {}, {}, 0, {}, "Write CSV files.", "",
       ZT_FIELD(csv_monitor.enabled)},
      {"csv_monitor.output_path", T::string, "", {}, {}, 0, {},
       "Folder of the CSV files (\"\": the working directory).", "",
       ZT_FIELD(csv_monitor.output_path)},
      {"csv_monitor.job_name", T::string, "DeepSpeedJobName", {}, {}, 0, {},
       "Sub-folder naming this run.", "", ZT_FIELD(csv_monitor.job_name)},
      {"tensorboard", T::object, nullptr, {}, {}, 0, {},
       "Accepted so DeepSpeed configs load; TensorBoard output is not supported.", "", nullptr},
      {"tensorboard.enabled", T::boolean, false, {}, {}, 0, {},
       "Must be false: zerotrain writes no TensorBoard events (use csv_monitor).", "",
       ZT_FIELD(tensorboard.enabled)},
      {"tensorboard.output_path", T::string, "", {}, {}, 0, {}, "Ignored.", "",
       ZT_FIELD(tensorboard.output_path)},
      {"tensorboard.job_name", T::string, "DeepSpeedJobName", {}, {}, 0, {}, "Ignored.", "",
       ZT_FIELD(tensorboard.job_name)},
  };
  const std::string a = "activation_checkpointing";
  std::vector<SchemaEntry> ckpt = {
      {a, T::object, nullptr, {}, {}, 0, {},
       "Activation checkpointing: recompute activations in backward to save memory.", "",
       nullptr},
      {a + ".partition_activations", T::boolean, false, {}, {}, 0, {},
       "Partition checkpointed activations across model-parallel ranks.", "",
       ZT_FIELD(activation_checkpointing.partition_activations)},
      {a + ".contiguous_memory_optimization", T::boolean, false, {}, {}, 0, {},
       "Copy checkpoints into one contiguous buffer.", "",
       ZT_FIELD(activation_checkpointing.contiguous_memory_optimization)},
      {a + ".cpu_checkpointing", T::boolean, false, {}, {}, 0, {},
       "Keep partitioned checkpoints in host memory (needs partition_activations).", "",
       ZT_FIELD(activation_checkpointing.cpu_checkpointing)},
      {a + ".number_checkpoints", T::integer, nullptr, at_least(1), {}, kNullable, {},
       "Checkpoints per forward pass, for contiguous_memory_optimization.", "",
       ZT_FIELD(activation_checkpointing.number_checkpoints)},
      {a + ".synchronize_checkpoint_boundary", T::boolean, false, {}, {}, 0, {},
       "Synchronise the device at each checkpoint boundary.", "",
       ZT_FIELD(activation_checkpointing.synchronize_checkpoint_boundary)},
      {a + ".profile", T::boolean, false, {}, {}, 0, {},
       "Time the checkpointed forward and recompute passes.", "",
       ZT_FIELD(activation_checkpointing.profile)},
  };
  for (auto& x : ckpt) e.push_back(std::move(x));
  return e;
}

std::vector<SchemaEntry> build_schema() {
  std::vector<SchemaEntry> all;
  for (auto part : {batch_and_top_level(), optimizer_entries(), scheduler_entries(),
                    precision_entries(), zero_entries(), monitor_entries()}) {
    for (auto& e : part) all.push_back(std::move(e));
  }
  return all;
}

std::string format_bound(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(int64_t(v));
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

}  // namespace

bool ValueRange::contains(double v) const {
  if (min_exclusive ? !(v > min) : !(v >= min)) return false;
  if (max_exclusive ? !(v < max) : !(v <= max)) return false;
  return true;
}

std::string ValueRange::describe() const {
  const bool has_min = std::isfinite(min), has_max = std::isfinite(max);
  if (has_min && has_max) {
    if (!min_exclusive && !max_exclusive) return format_bound(min) + " to " + format_bound(max);
    return format_bound(min) + (min_exclusive ? " < x " : " <= x ") + (max_exclusive ? "< " : "<= ") +
           format_bound(max);
  }
  if (has_min) return (min_exclusive ? "> " : ">= ") + format_bound(min);
  if (has_max) return (max_exclusive ? "< " : "<= ") + format_bound(max);
  return "";
}

const std::vector<SchemaEntry>& config_schema() {
  static const std::vector<SchemaEntry> schema = build_schema();
  return schema;
}

const SchemaEntry* find_schema_entry(const std::string& key) {
  for (const auto& e : config_schema()) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

std::vector<std::string> schema_children(const std::string& parent) {
  std::vector<std::string> out;
  const std::string prefix = parent.empty() ? "" : parent + ".";
  for (const auto& e : config_schema()) {
    if (e.key.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = e.key.substr(prefix.size());
    if (!rest.empty() && rest.find('.') == std::string::npos) out.push_back(rest);
  }
  return out;
}

const char* value_type_name(ValueType type) {
  switch (type) {
    case ValueType::boolean: return "boolean";
    case ValueType::integer: return "integer";
    case ValueType::number: return "number";
    case ValueType::string: return "string";
    case ValueType::number_pair: return "[number, number]";
    case ValueType::object: return "object";
  }
  return "?";
}

std::string variant_selector(const std::string& key) {
  const auto pos = key.find(".params.");
  return pos == std::string::npos ? "" : key.substr(0, pos) + ".type";
}

}  // namespace zt
