// Config defaults: every schema key's default against DeepSpeed's documented value (a hand-written
// table that must list every key), and every typed Config field as the schema fills it.
#include <doctest/doctest.h>

#include <map>

#include "core/error.h"
#include "runtime/config.h"
#include "runtime/config_schema.h"

namespace {

using nlohmann::json;

// DeepSpeed's defaults (runtime/constants.py, zero/config.py, zero/offload_config.py,
// precision_config.py, lr_schedules.py, torch.optim); null: no default (derived, required or
// nullable).
const std::map<std::string, json>& expected_defaults() {
  static const std::map<std::string, json> d = {
      {"train_batch_size", nullptr},
      {"train_micro_batch_size_per_gpu", nullptr},
      {"gradient_accumulation_steps", nullptr},
      {"gradient_clipping", 0.0},
      {"steps_per_print", 10},
      {"wall_clock_breakdown", false},
      {"memory_breakdown", false},
      {"seed", 0},
      {"prescale_gradients", false},
      {"gradient_predivide_factor", 1.0},
      {"communication_data_type", nullptr},
      {"dump_state", false},
      {"zero_allow_untested_optimizer", false},
      {"optimizer.type", nullptr},
      {"optimizer.params.lr", 0.001},
      {"optimizer.params.betas", json::array({0.9, 0.999})},
      {"optimizer.params.eps", 1e-8},
      {"optimizer.params.weight_decay", 0.0},
      {"optimizer.params.bias_correction", true},
      {"optimizer.params.adam_w_mode", true},
      {"optimizer.params.torch_adam", false},
      {"optimizer.params.momentum", 0.0},
      {"optimizer.params.dampening", 0.0},
      {"optimizer.params.nesterov", false},
      {"scheduler.type", nullptr},
      {"scheduler.params.last_batch_iteration", -1},
      {"scheduler.params.warmup_min_lr", 0.0},
      {"scheduler.params.warmup_max_lr", 0.001},
      {"scheduler.params.warmup_num_steps", 1000},
      {"scheduler.params.warmup_type", "log"},
      {"scheduler.params.total_num_steps", nullptr},
      {"scheduler.params.warmup_min_ratio", 0.0},
      {"scheduler.params.cos_min_ratio", 0.0001},
      {"scheduler.params.cycle_min_lr", nullptr},
      {"scheduler.params.cycle_max_lr", nullptr},
      {"scheduler.params.decay_lr_rate", 0.0},
      {"scheduler.params.cycle_first_step_size", 2000},
      {"scheduler.params.cycle_second_step_size", nullptr},
      {"scheduler.params.cycle_first_stair_count", 0},
      {"scheduler.params.cycle_second_stair_count", nullptr},
      {"scheduler.params.decay_step_size", 0},
      {"scheduler.params.cycle_momentum", true},
      {"scheduler.params.cycle_min_mom", 0.8},
      {"scheduler.params.cycle_max_mom", 0.9},
      {"scheduler.params.decay_mom_rate", 0.0},
      {"fp16.enabled", false},
      {"fp16.auto_cast", false},
      {"fp16.loss_scale", 0.0},
      {"fp16.initial_scale_power", 16},
      {"fp16.loss_scale_window", 1000},
      {"fp16.hysteresis", 2},
      {"fp16.consecutive_hysteresis", false},
      {"fp16.min_loss_scale", 1.0},
      {"bf16.enabled", false},
      {"zero_optimization.stage", 0},
      {"zero_optimization.contiguous_gradients", true},
      {"zero_optimization.overlap_comm", false},
      {"zero_optimization.reduce_scatter", true},
      {"zero_optimization.reduce_bucket_size", 500000000},
      {"zero_optimization.allgather_partitions", true},
      {"zero_optimization.allgather_bucket_size", 500000000},
      {"zero_optimization.stage3_prefetch_bucket_size", 50000000},
      {"zero_optimization.stage3_param_persistence_threshold", 100000},
      {"zero_optimization.stage3_max_live_parameters", 1000000000},
      {"zero_optimization.stage3_max_reuse_distance", 1000000000},
      {"zero_optimization.stage3_gather_16bit_weights_on_model_save", false},
      {"zero_optimization.sub_group_size", 1000000000},
      {"zero_optimization.round_robin_gradients", false},
      {"zero_optimization.offload_optimizer.device", "none"},
      {"zero_optimization.offload_optimizer.nvme_path", nullptr},
      {"zero_optimization.offload_optimizer.pin_memory", false},
      {"zero_optimization.offload_optimizer.buffer_count", 4},
      {"zero_optimization.offload_optimizer.ratio", 1.0},
      {"zero_optimization.offload_optimizer.fast_init", false},
      {"zero_optimization.offload_param.device", "none"},
      {"zero_optimization.offload_param.nvme_path", nullptr},
      {"zero_optimization.offload_param.pin_memory", false},
      {"zero_optimization.offload_param.buffer_count", 5},
      {"zero_optimization.offload_param.buffer_size", 100000000},
      {"zero_optimization.offload_param.max_in_cpu", 1000000000},
      {"csv_monitor.enabled", false},
      {"csv_monitor.output_path", ""},
      {"csv_monitor.job_name", "DeepSpeedJobName"},
      {"tensorboard.enabled", false},
      {"tensorboard.output_path", ""},
      {"tensorboard.job_name", "DeepSpeedJobName"},
      {"activation_checkpointing.partition_activations", false},
      {"activation_checkpointing.contiguous_memory_optimization", false},
      {"activation_checkpointing.cpu_checkpointing", false},
      {"activation_checkpointing.number_checkpoints", nullptr},
      {"activation_checkpointing.synchronize_checkpoint_boundary", false},
      {"activation_checkpointing.profile", false},
  };
  return d;
}

zt::Config parse(const std::string& text, int64_t world = 1) {
  return zt::parse_config(text, zt::ConfigFormat::json, world);
}

}  // namespace

TEST_CASE("config: the schema's defaults are DeepSpeed's, for every key") {
  size_t keys = 0;
  for (const auto& e : zt::config_schema()) {
    if (e.type == zt::ValueType::object) continue;
    ++keys;
    INFO(e.key);
    const auto it = expected_defaults().find(e.key);
    REQUIRE_MESSAGE(it != expected_defaults().end(), "schema key without an expected default");
    CHECK(e.default_value == it->second);
  }
  CHECK(keys == expected_defaults().size());
}

TEST_CASE("config: a resolved setting for every applicable key, defaults marked as such") {
  const zt::Config c = parse(R"({"train_micro_batch_size_per_gpu": 4})");
  for (const auto& s : c.settings) {
    if (s.key.find("batch") != std::string::npos || s.key == "gradient_accumulation_steps") continue;
    INFO(s.key);
    CHECK(s.source == zt::ValueSource::default_value);
    CHECK(s.value == expected_defaults().at(s.key));
  }
  // Without an optimizer or scheduler their params do not apply; every other key does.
  CHECK_THROWS_AS(c.setting("optimizer.params.lr"), zt::Error);
  CHECK(c.setting("optimizer.type").value.is_null());
  CHECK(c.setting("zero_optimization.offload_param.max_in_cpu").value == 1000000000);
}

TEST_CASE("config: typed fields hold the defaults") {
  const zt::Config c = parse(R"({"train_micro_batch_size_per_gpu": 4})");
  CHECK(c.train_batch_size == 4);
  CHECK(c.train_micro_batch_size_per_gpu == 4);
  CHECK(c.gradient_accumulation_steps == 1);
  CHECK(c.gradient_clipping == 0.0);
  CHECK(c.steps_per_print == 10);
  CHECK_FALSE(c.wall_clock_breakdown);
  CHECK_FALSE(c.memory_breakdown);
  CHECK(c.seed == 0);
  CHECK_FALSE(c.prescale_gradients);
  CHECK(c.gradient_predivide_factor == 1.0);
  CHECK(c.communication_data_type.empty());
  CHECK_FALSE(c.dump_state);
  CHECK_FALSE(c.zero_allow_untested_optimizer);
  CHECK_FALSE(c.optimizer.enabled());
  CHECK_FALSE(c.scheduler.enabled());
  CHECK_FALSE(c.fp16.enabled);
  CHECK_FALSE(c.fp16.auto_cast);
  CHECK(c.fp16.loss_scale == 0.0);
  CHECK(c.fp16.dynamic_loss_scale());
  CHECK(c.fp16.initial_scale_power == 16);
  CHECK(c.fp16.loss_scale_window == 1000);
  CHECK(c.fp16.hysteresis == 2);
  CHECK_FALSE(c.fp16.consecutive_hysteresis);
  CHECK(c.fp16.min_loss_scale == 1.0);
  CHECK_FALSE(c.bf16.enabled);
  const zt::ZeroConfig& z = c.zero_optimization;
  CHECK(z.stage == 0);
  CHECK(z.contiguous_gradients);
  CHECK_FALSE(z.overlap_comm);
  CHECK(z.reduce_scatter);
  CHECK(z.reduce_bucket_size == 500000000);
  CHECK(z.allgather_partitions);
  CHECK(z.allgather_bucket_size == 500000000);
  CHECK(z.stage3_prefetch_bucket_size == 50000000);
  CHECK(z.stage3_param_persistence_threshold == 100000);
  CHECK(z.stage3_max_live_parameters == 1000000000);
  CHECK(z.stage3_max_reuse_distance == 1000000000);
  CHECK_FALSE(z.stage3_gather_16bit_weights_on_model_save);
  CHECK(z.sub_group_size == 1000000000);
  CHECK_FALSE(z.round_robin_gradients);
  CHECK(z.offload_optimizer.device == "none");
  CHECK_FALSE(z.offload_optimizer.enabled());
  CHECK(z.offload_optimizer.nvme_path.empty());
  CHECK_FALSE(z.offload_optimizer.pin_memory);
  CHECK(z.offload_optimizer.buffer_count == 4);
  CHECK(z.offload_optimizer.ratio == 1.0);
  CHECK_FALSE(z.offload_optimizer.fast_init);
  CHECK(z.offload_param.device == "none");
  CHECK(z.offload_param.nvme_path.empty());
  CHECK_FALSE(z.offload_param.pin_memory);
  CHECK(z.offload_param.buffer_count == 5);
  CHECK(z.offload_param.buffer_size == 100000000);
  CHECK(z.offload_param.max_in_cpu == 1000000000);
  CHECK_FALSE(c.csv_monitor.enabled);
  CHECK(c.csv_monitor.output_path.empty());
  CHECK(c.csv_monitor.job_name == "DeepSpeedJobName");
  CHECK_FALSE(c.tensorboard.enabled);
  CHECK(c.tensorboard.job_name == "DeepSpeedJobName");
  const zt::ActivationCheckpointingConfig& a = c.activation_checkpointing;
  CHECK_FALSE(a.partition_activations);
  CHECK_FALSE(a.contiguous_memory_optimization);
  CHECK_FALSE(a.cpu_checkpointing);
  CHECK_FALSE(a.number_checkpoints.has_value());
  CHECK_FALSE(a.synchronize_checkpoint_boundary);
  CHECK_FALSE(a.profile);
  CHECK(c.world_size == 1);
  CHECK(c.origin == "<config>");
}

TEST_CASE("config: optimizer defaults per type") {
  const zt::Config adam = parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam"}})");
  CHECK(adam.optimizer.type == "Adam");
  CHECK(adam.optimizer.lr == 1e-3);
  CHECK(adam.optimizer.betas[0] == 0.9);
  CHECK(adam.optimizer.betas[1] == 0.999);
  CHECK(adam.optimizer.eps == 1e-8);
  CHECK(adam.optimizer.weight_decay == 0.0);
  CHECK(adam.optimizer.bias_correction);
  CHECK(adam.optimizer.adam_w_mode);
  CHECK_FALSE(adam.optimizer.torch_adam);
  CHECK(adam.optimizer.decoupled_weight_decay());  // DeepSpeed's adam_w_mode default
  CHECK_THROWS_AS(adam.setting("optimizer.params.momentum"), zt::Error);

  const zt::Config l2 = parse(
      R"({"train_batch_size": 8, "optimizer": {"type": "adam", "params": {"adam_w_mode": false}}})");
  CHECK(l2.optimizer.type == "Adam");
  CHECK_FALSE(l2.optimizer.decoupled_weight_decay());

  const zt::Config sgd = parse(R"({"train_batch_size": 8, "optimizer": {"type": "sgd"}})");
  CHECK(sgd.optimizer.type == "SGD");
  CHECK(sgd.optimizer.lr == 1e-3);
  CHECK(sgd.optimizer.momentum == 0.0);
  CHECK(sgd.optimizer.dampening == 0.0);
  CHECK_FALSE(sgd.optimizer.nesterov);
  CHECK_FALSE(sgd.optimizer.decoupled_weight_decay());
  CHECK_THROWS_AS(sgd.setting("optimizer.params.betas"), zt::Error);
}

TEST_CASE("config: scheduler defaults per type") {
  auto sched = [](const std::string& type, const std::string& params) {
    return parse(R"({"train_batch_size": 8, "scheduler": {"type": ")" + type + R"(", "params": )" +
                 params + "}}");
  };
  const zt::Config w = sched("WarmupLR", "{}");
  CHECK(w.scheduler.type == "WarmupLR");
  CHECK(w.scheduler.warmup_min_lr == 0.0);
  CHECK(w.scheduler.warmup_max_lr == 0.001);
  CHECK(w.scheduler.warmup_num_steps == 1000);
  CHECK(w.scheduler.warmup_type == "log");
  CHECK(w.scheduler.last_batch_iteration == -1);

  const zt::Config d = sched("WarmupDecayLR", R"({"total_num_steps": 5000})");
  CHECK(d.scheduler.total_num_steps == 5000);
  CHECK(d.scheduler.warmup_max_lr == 0.001);

  const zt::Config cos = sched("WarmupCosineLR", R"({"total_num_steps": 100})");
  CHECK(cos.scheduler.warmup_min_ratio == 0.0);
  CHECK(cos.scheduler.cos_min_ratio == 0.0001);
  CHECK(cos.scheduler.warmup_num_steps == 1000);
  CHECK_THROWS_AS(cos.setting("scheduler.params.warmup_max_lr"), zt::Error);

  const zt::Config one = sched("OneCycle", R"({"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3})");
  CHECK(one.scheduler.cycle_min_lr == 1e-4);
  CHECK(one.scheduler.cycle_max_lr == 1e-3);
  CHECK(one.scheduler.decay_lr_rate == 0.0);
  CHECK(one.scheduler.cycle_first_step_size == 2000);
  CHECK_FALSE(one.scheduler.cycle_second_step_size.has_value());
  CHECK(one.scheduler.cycle_first_stair_count == 0);
  CHECK_FALSE(one.scheduler.cycle_second_stair_count.has_value());
  CHECK(one.scheduler.decay_step_size == 0);
  CHECK(one.scheduler.cycle_momentum);
  CHECK(one.scheduler.cycle_min_mom == 0.8);
  CHECK(one.scheduler.cycle_max_mom == 0.9);
  CHECK(one.scheduler.decay_mom_rate == 0.0);
}

TEST_CASE("config: overlap_comm defaults to true at stage 3 only") {
  CHECK_FALSE(parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": 2}})").zero_optimization.overlap_comm);
  const zt::Config s3 = parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": 3}})");
  CHECK(s3.zero_optimization.overlap_comm);
  CHECK(s3.setting("zero_optimization.overlap_comm").source == zt::ValueSource::default_value);
  const zt::Config off = parse(
      R"({"train_batch_size": 8, "zero_optimization": {"stage": 3, "overlap_comm": false}})");
  CHECK_FALSE(off.zero_optimization.overlap_comm);
  CHECK(off.setting("zero_optimization.overlap_comm").source == zt::ValueSource::config);
}

TEST_CASE("config: given values reach the typed fields") {
  const zt::Config c = parse(R"({
    "train_batch_size": 32, "gradient_clipping": 0.5, "steps_per_print": 7, "seed": 99,
    "communication_data_type": "bf16", "wall_clock_breakdown": true,
    "optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "betas": [0.8, 0.95], "eps": 1e-6,
                  "weight_decay": 0.1}},
    "fp16": {"enabled": true, "loss_scale": 128, "initial_scale_power": 12, "loss_scale_window": 500,
             "hysteresis": 4, "min_loss_scale": 0.25, "auto_cast": true},
    "zero_optimization": {"stage": 3, "reduce_bucket_size": 2e8, "stage3_max_live_parameters": 3e8,
      "offload_optimizer": {"device": "nvme", "nvme_path": "/local_nvme", "buffer_count": 8},
      "offload_param": {"device": "cpu", "pin_memory": true}},
    "activation_checkpointing": {"number_checkpoints": 4},
    "csv_monitor": {"enabled": true, "output_path": "out/", "job_name": "run1"}
  })",
                           2);
  CHECK(c.train_micro_batch_size_per_gpu == 16);
  CHECK(c.gradient_clipping == 0.5);
  CHECK(c.steps_per_print == 7);
  CHECK(c.seed == 99);
  CHECK(c.communication_data_type == "bf16");
  CHECK(c.wall_clock_breakdown);
  CHECK(c.optimizer.type == "AdamW");
  CHECK(c.optimizer.lr == 3e-4);
  CHECK(c.optimizer.betas == std::array<double, 2>{0.8, 0.95});
  CHECK(c.optimizer.eps == 1e-6);
  CHECK(c.optimizer.weight_decay == 0.1);
  CHECK(c.fp16.enabled);
  CHECK(c.fp16.auto_cast);
  CHECK(c.fp16.loss_scale == 128.0);
  CHECK_FALSE(c.fp16.dynamic_loss_scale());
  CHECK(c.fp16.initial_scale_power == 12);
  CHECK(c.fp16.loss_scale_window == 500);
  CHECK(c.fp16.hysteresis == 4);
  CHECK(c.fp16.min_loss_scale == 0.25);
  CHECK(c.zero_optimization.stage == 3);
  CHECK(c.zero_optimization.reduce_bucket_size == 200000000);
  CHECK(c.zero_optimization.stage3_max_live_parameters == 300000000);
  CHECK(c.zero_optimization.offload_optimizer.device == "nvme");
  CHECK(c.zero_optimization.offload_optimizer.nvme_path == "/local_nvme");
  CHECK(c.zero_optimization.offload_optimizer.buffer_count == 8);
  CHECK(c.zero_optimization.offload_param.enabled());
  CHECK(c.zero_optimization.offload_param.pin_memory);
  CHECK(c.activation_checkpointing.number_checkpoints == 4);
  CHECK(c.csv_monitor.enabled);
  CHECK(c.csv_monitor.output_path == "out/");
  CHECK(c.csv_monitor.job_name == "run1");
  CHECK(c.world_size == 2);
}
