// Engine: the training loop's one object (DESIGN.md §6), DeepSpeed's `deepspeed.initialize`.
//
//   auto engine = zt::initialize(model, config, {.communicator = mpi.world()});
//   for (...) {
//     Tensor loss = cross_entropy(engine->forward(x), y);   // x: this rank's micro-batch
//     engine->backward(loss);
//     engine->step();   // acts only at the gradient accumulation boundary
//   }
//
// The engine orchestrates parts that live in their own files: the precision optimizer with its
// master weights and loss scaler, which also reduces the gradients (the flat ZeRO optimizer of
// zero/sharded_optimizer.h at every stage, stage 0 unpartitioned, chosen by
// zero_optimization.stage and built by runtime/engine_zero.h with offload_optimizer/offload_param;
// for a stage-0 model whose parameters differ in dtype or device, zero/mixed_precision.h with
// the data parallelism of parallel/data_parallel.h),
// the optimizer and schedule built from the config (runtime/builders.h), and the monitor
// (runtime/monitor.h). A program's optimizer may have several parameter groups (weight decay on
// matrices only); ZeRO lays the parameters out by those groups (Note [ZeRO parameter groups]).
//
// Communicators: options.communicator is the bootstrap (MPI). Tensors travel on
// device_communicator(bootstrap, model device) (parallel/device_communicator.h): the bootstrap
// itself for a CPU model, NCCL for a CUDA one; DataParallel, ZeRO and the monitor's loss average
// use it, the checkpoint files' synchronisation uses the bootstrap.
//
// Note [Engine step]
// backward(loss) multiplies the loss by loss_scale / gradient_accumulation_steps and runs
// backward; the ZeRO optimizer is told set_syncing(boundary) before and after_backward() after
// every backward, so off the accumulation boundary gradients accumulate locally and are reduced
// once (DataParallel, where used, runs that backward inside no_sync). step() off the boundary only counts the micro-step.
// At the boundary: finish the gradient reduction, unscale into the fp32 masters, check every
// gradient for inf/NaN (non-finite: skip the update, log one line, leave the schedule where it
// is, count a skipped step; the dynamic loss scale backs off), clip by gradient_clipping,
// optimizer step, copy back to the model dtype, schedule step, zero gradients. global_step and
// global_samples advance at every boundary, applied or skipped, as in DeepSpeed.
//
// Checkpoints (runtime/checkpoint.h) hold the model, the fp32 masters, the optimizer state, the
// schedule, the loss scaler, the default RNG's state and the step counters, plus the program's
// client_state (its data-loader position, for one). save and load are called on every rank.
// With ZeRO each rank writes its shard per parameter (runtime/zero_checkpoint.h), so the
// checkpoint loads at another data-parallel size; ZeRO-3 writes the partitioned weights the same
// way, or gathered whole when zero_optimization.stage3_gather_16bit_weights_on_model_save is set.
//
// With fp16 or bf16 enabled, initialize converts the model to that dtype; the parameters it had
// in f32 become the fp32 masters, so an optimizer built over them by the program keeps working.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "nn/module.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "parallel/communicator.h"
#include "parallel/data_parallel.h"
#include "runtime/config.h"
#include "runtime/monitor.h"
#include "zero/mixed_precision.h"
#include "zero/sharded_optimizer.h"

namespace zt {

struct InitOptions {
  // The program's own optimizer/schedule; null: built from the config's sections. Giving one
  // when the config also has that section is an error (which would win is not obvious).
  std::shared_ptr<Optimizer> optimizer;
  std::shared_ptr<LRSchedule> scheduler;
  // The data-parallel group (its size must be the config's world size); null: a world of one.
  std::shared_ptr<Communicator> communicator;
  // Periodic lines and CSV rows from steps_per_print / csv_monitor. Programs with a log format
  // of their own turn it off; skipped steps are logged either way.
  bool monitor = true;
  int64_t total_steps = 0;  // > 0: a progress bar with ETA on a terminal
  std::FILE* log = stdout;
};

class Engine {
 public:
  Engine(std::shared_ptr<Module> model, const Config& config, InitOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // The model's forward (through DataParallel when there are several ranks). Inputs are the
  // program's to cast to dtype(), as in DeepSpeed.
  Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }
  // See Note [Engine step].
  void backward(const Tensor& loss);
  void step();

  Device device() const;
  DType dtype() const { return dtype_; }
  int64_t global_step() const { return global_step_; }
  int64_t global_samples() const { return global_samples_; }
  int64_t micro_step() const { return micro_step_; }
  int64_t skipped_steps() const { return skipped_steps_; }
  // Whether the last step() updated the parameters (false off the boundary and when skipped).
  bool was_step_applied() const { return step_applied_; }
  double loss_scale() const;
  // Whether the next step() is at the accumulation boundary.
  bool is_gradient_accumulation_boundary() const;
  int64_t gradient_accumulation_steps() const { return config_.gradient_accumulation_steps; }
  int64_t train_batch_size() const { return config_.train_batch_size; }
  int64_t train_micro_batch_size_per_gpu() const { return config_.train_micro_batch_size_per_gpu; }
  double lr() const { return optimizer_->lr(); }

  // Writes <dir>/<tag> and publishes it as <dir>/latest once every rank has written.
  void save_checkpoint(const std::string& dir, const std::string& tag,
                       const nlohmann::json& client_state = nlohmann::json::object());
  // Restores what save_checkpoint wrote (tag "": the latest) and returns its client_state.
  nlohmann::json load_checkpoint(const std::string& dir, const std::string& tag = "");

  // The model's parameters and buffers, whole, as state_dict() names them. Collective at ZeRO
  // stage 3, whose partitioned parameters are gathered (clones): every rank must call it.
  TensorDict module_state_dict();

  void train() { model_->train(); }
  void eval() { model_->eval(); }

  Module& module() { return *model_; }
  const Config& config() const { return config_; }
  Optimizer& optimizer() { return *optimizer_; }
  LRSchedule* scheduler() { return scheduler_.get(); }  // null without a schedule
  PrecisionOptimizer& precision() { return *precision_; }
  Monitor& monitor() { return *monitor_; }
  // Seconds per phase accumulated since the last monitor report.
  const StepTimes& step_times() const { return times_; }

 private:
  void build_precision(std::vector<Tensor> originals, std::vector<std::vector<std::string>> param_groups);
  void build_optimizer(InitOptions& options);
  void take_step();
  void report();
  TensorDict master_state() const;  // masters under their parameters' names (empty for f32)

  std::shared_ptr<Module> model_;
  Config config_;
  DType dtype_ = DType::f32;
  std::shared_ptr<Communicator> bootstrap_;  // the program's (MPI); checkpoint synchronisation
  std::shared_ptr<Communicator> comm_;       // the model device's: DataParallel, ZeRO, the monitor
  std::unique_ptr<DataParallel> dp_;
  std::unique_ptr<PrecisionOptimizer> precision_;
  ShardedOptimizer* sharded_ = nullptr;  // precision_ when it is the flat ZeRO optimizer
  std::shared_ptr<Optimizer> optimizer_;
  std::shared_ptr<LRSchedule> scheduler_;
  std::unique_ptr<Monitor> monitor_;
  bool monitor_lines_ = true;

  int64_t global_step_ = 0, global_samples_ = 0, micro_step_ = 0, skipped_steps_ = 0;
  bool step_applied_ = false;
  // Monitor window: losses summed on the device since the last report, and their count.
  Tensor loss_sum_;
  int64_t losses_ = 0, window_samples_ = 0;
  double window_start_ = 0;
  StepTimes times_;
};

// DeepSpeed's deepspeed.initialize: the engine for `model` trained as `config` says.
std::unique_ptr<Engine> initialize(std::shared_ptr<Module> model, const Config& config, InitOptions options = {});

}  // namespace zt
