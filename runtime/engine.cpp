// Engine: orchestrates forward, backward and the optimizer step (Note [Engine step] in
// runtime/engine.h). Everything it drives lives elsewhere; this file only puts it in order.
#include "runtime/engine.h"

#include <chrono>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "core/ops.h"
#include "parallel/device_communicator.h"
#include "runtime/builders.h"
#include "runtime/engine_zero.h"

namespace zt {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Adds the seconds of its scope to `total`.
class ScopedTimer {
 public:
  explicit ScopedTimer(double& total) : total_(total), start_(now_seconds()) {}
  ~ScopedTimer() { total_ += now_seconds() - start_; }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  double& total_;
  double start_;
};

}  // namespace

Engine::Engine(std::shared_ptr<Module> model, const Config& config, InitOptions options)
    : model_(std::move(model)), config_(config), bootstrap_(options.communicator) {
  ZT_CHECK(model_ != nullptr, "initialize: expected a model, found null");
  ZT_CHECK(!model_->parameters().empty(), "initialize: the model has no parameters to train");
  const int64_t world = bootstrap_ ? bootstrap_->size() : 1;
  ZT_CHECK(config_.world_size == world, "initialize: the config was resolved for a data-parallel size of ",
           config_.world_size, " but the communicator has ", world, " ranks; load it with world_size ", world);
  // CPU tensors travel on the bootstrap itself, CUDA tensors on NCCL (collective).
  comm_ = device_communicator(bootstrap_, model_->parameters().front().device());
  dtype_ = compute_dtype(config_);
  std::vector<Tensor> originals = model_->parameters();
  // The program's optimizer groups, named before the dtype move replaces the tensors it holds.
  std::vector<std::vector<std::string>> param_groups;
  const bool zero = uses_zero_optimizer(config_, *model_);
  if (options.optimizer && zero) param_groups = parameter_group_names(*model_, *options.optimizer);
  // The model computes in the config's dtype; its f32 parameters live on as the masters.
  if (dtype_ != DType::f32) model_->to(dtype_);
  // DataParallel holds the parameter tensors: build it after the dtype move.
  // The ZeRO optimizer reduces gradients itself (zero/sharded_optimizer.h).
  if (world > 1 && !zero) dp_ = std::make_unique<DataParallel>(model_, comm_);
  build_precision(std::move(originals), std::move(param_groups));
  build_optimizer(options);
  monitor_lines_ = options.monitor;
  MonitorOptions mo = monitor_options_from_config(config_, !bootstrap_ || bootstrap_->rank() == 0);
  if (!options.monitor) {
    mo.steps_per_print = 0;
    mo.csv_path.clear();
  }
  mo.total_steps = options.total_steps;
  mo.out = options.log;
  monitor_ = std::make_unique<Monitor>(mo);
  window_start_ = now_seconds();
}

Engine::~Engine() = default;

void Engine::build_precision(std::vector<Tensor> originals, std::vector<std::vector<std::string>> param_groups) {
  std::unique_ptr<ShardedOptimizer> sharded =
      build_sharded_optimizer(config_, model_, comm_, originals, std::move(param_groups));
  if (sharded) {
    sharded_ = sharded.get();
    precision_ = std::move(sharded);
    return;
  }
  MixedPrecisionOptions mp;
  mp.params = model_->parameters();
  if (dtype_ != DType::f32) {
    bool originals_f32 = true;
    for (const Tensor& t : originals) originals_f32 = originals_f32 && t.dtype() == DType::f32;
    // A model already in the compute dtype gets fresh f32 copies instead.
    if (originals_f32 && !originals.front().same_impl(mp.params.front())) mp.masters = std::move(originals);
  }
  precision_ = std::make_unique<MixedPrecisionOptimizer>(std::move(mp), build_loss_scaler(config_));
}

void Engine::build_optimizer(InitOptions& options) {
  if (options.optimizer) {
    ZT_CHECK(!config_.optimizer.enabled(), "initialize: the program passed an optimizer and the config (",
             config_.origin, ") has an \"optimizer\" section (", config_.optimizer.type,
             "); remove one of them");
    optimizer_ = options.optimizer;
    precision_->bind(*optimizer_);
  } else if (sharded_) {  // one group per master range (Note [ZeRO parameter groups])
    std::vector<ParamGroup> groups;
    for (const Tensor& master : sharded_->master_parameters()) groups.push_back(ParamGroup{{master}});
    optimizer_ = zt::build_optimizer(config_.optimizer, std::move(groups));
    precision_->bind(*optimizer_);  // lets Adam write the compute-dtype weights in its own pass
  } else {
    optimizer_ = zt::build_optimizer(config_.optimizer, {ParamGroup{precision_->master_parameters()}});
  }
  if (options.scheduler) {
    ZT_CHECK(!config_.scheduler.enabled(), "initialize: the program passed a schedule and the config (",
             config_.origin, ") has a \"scheduler\" section (", config_.scheduler.type, "); remove one of them");
    scheduler_ = options.scheduler;
  } else {
    scheduler_ = build_scheduler(config_.scheduler, *optimizer_);
  }
}

Tensor Engine::forward(const Tensor& x) {
  ScopedTimer timer(times_.forward);
  return dp_ ? (*dp_)(x) : (*model_)(x);
}

void Engine::backward(const Tensor& loss) {
  ZT_CHECK(loss.defined() && loss.numel() == 1, "Engine::backward: expected a scalar loss, found ",
           loss.defined() ? loss.str() : std::string("an undefined tensor"));
  ScopedTimer timer(times_.backward);
  if (monitor_lines_) {
    Tensor value = raw::to(raw::reshape(loss, {1}), DType::f64);
    loss_sum_ = loss_sum_.defined() ? raw::add(loss_sum_, value) : raw::clone(value);
    ++losses_;
  }
  const Tensor scaled = mul(loss, precision_->loss_scale() / double(config_.gradient_accumulation_steps));
  if (sharded_) sharded_->set_syncing(is_gradient_accumulation_boundary());
  if (dp_ && !is_gradient_accumulation_boundary()) {
    auto no_sync = dp_->no_sync();
    zt::backward(scaled);
  } else {
    zt::backward(scaled);
  }
  if (sharded_) sharded_->after_backward();
}

bool Engine::is_gradient_accumulation_boundary() const {
  return (micro_step_ + 1) % config_.gradient_accumulation_steps == 0;
}

void Engine::step() {
  step_applied_ = false;
  if (is_gradient_accumulation_boundary()) {
    take_step();
    ++global_step_;
    global_samples_ += config_.train_batch_size;
    window_samples_ += config_.train_batch_size;
    if (monitor_lines_ && monitor_->reports_at(global_step_)) report();
    monitor_->progress(global_step_);
  }
  ++micro_step_;
}

void Engine::take_step() {
  if (dp_) {
    ScopedTimer timer(times_.reduction);
    dp_->finish_gradient_reduction();
  }
  if (sharded_) {
    ScopedTimer timer(times_.reduction);
    sharded_->finish_gradient_reduction();
  }
  ScopedTimer timer(times_.step);
  const bool finite = precision_->unscale_gradients();
  const std::string scale_change = precision_->update_loss_scale(!finite);
  if (finite) {
    if (config_.gradient_clipping > 0) precision_->clip_gradients(config_.gradient_clipping);
    precision_->step(*optimizer_);
    if (scheduler_) scheduler_->step();
    step_applied_ = true;
  } else {
    ++skipped_steps_;
    monitor_->skipped_step(global_step_ + 1, scale_change);
  }
  precision_->zero_grad();
}

// Collective over the data-parallel group: every rank reports at the same steps.
void Engine::report() {
  double loss = 0;
  if (losses_ > 0) {
    // Averaged on the model's device, where the communicator's collectives run.
    Tensor mean = raw::to(raw::mul(loss_sum_, 1.0 / double(losses_)), device());
    if (comm_ && comm_->size() > 1) comm_->all_reduce(mean, CommReduceOp::avg);
    loss = raw::to(mean, Device::cpu()).item();
  }
  const double now = now_seconds();
  MonitorRecord r;
  r.step = global_step_;
  r.loss = loss;
  r.lr = optimizer_->lr();
  r.loss_scale = precision_->loss_scale();
  r.samples = window_samples_;
  r.seconds = now - window_start_;
  const int64_t steps = std::max<int64_t>(1, config_.steps_per_print);
  r.times = {times_.forward / steps, times_.backward / steps, times_.reduction / steps, times_.step / steps};
  r.memory = allocator_for(device()).stats();
  monitor_->report(r);
  loss_sum_ = Tensor();
  losses_ = 0;
  window_samples_ = 0;
  window_start_ = now;
  times_ = {};
}

Device Engine::device() const { return model_->parameters().front().device(); }

TensorDict Engine::module_state_dict() {
  return sharded_ ? sharded_->model_state(/*gather_partitioned=*/true) : model_->state_dict();
}

double Engine::loss_scale() const { return precision_->loss_scale(); }

std::unique_ptr<Engine> initialize(std::shared_ptr<Module> model, const Config& config, InitOptions options) {
  return std::make_unique<Engine>(std::move(model), config, std::move(options));
}

}  // namespace zt
