// Config: the typed training configuration with DeepSpeed's ds_config keys and meanings, loaded
// from JSON or YAML. Parsing, defaults, validation and docs/config.md all come from the one schema
// in runtime/config_schema.cpp; this header is what the engine and the apps read.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace zt {

// Note [Config fields]
// Every field below is written by the schema (runtime/config_schema.cpp) when a config is
// loaded: its default, or the value from the file, the program ("auto") or a derivation. The
// fields therefore carry no initialisers of their own: one source of defaults, not two. Build a
// Config through load_config / parse_config / config_from_app_defaults, never by hand.

struct OptimizerConfig {
  std::string type;  // "" (none: the program supplies its optimizer), "Adam", "AdamW" or "SGD"
  double lr;
  std::array<double, 2> betas;
  double eps;
  double weight_decay;
  bool bias_correction;
  bool adam_w_mode;
  bool torch_adam;
  double momentum;
  double dampening;
  bool nesterov;

  bool enabled() const { return !type.empty(); }
  // DeepSpeed runs type "Adam" with decoupled (AdamW) weight decay unless adam_w_mode is false.
  bool decoupled_weight_decay() const { return type == "AdamW" || (type == "Adam" && adam_w_mode); }
};

struct SchedulerConfig {
  std::string type;  // "" (none), "WarmupLR", "WarmupDecayLR", "WarmupCosineLR" or "OneCycle"
  int64_t last_batch_iteration;
  double warmup_min_lr;
  double warmup_max_lr;
  int64_t warmup_num_steps;
  std::string warmup_type;  // "log" | "linear"
  int64_t total_num_steps;  // required by WarmupDecayLR and WarmupCosineLR, else 0
  double warmup_min_ratio;
  double cos_min_ratio;
  double cycle_min_lr;
  double cycle_max_lr;
  double decay_lr_rate;
  int64_t cycle_first_step_size;
  std::optional<int64_t> cycle_second_step_size;  // unset: same as cycle_first_step_size
  int64_t cycle_first_stair_count;
  std::optional<int64_t> cycle_second_stair_count;
  int64_t decay_step_size;
  bool cycle_momentum;
  double cycle_min_mom;
  double cycle_max_mom;
  double decay_mom_rate;

  bool enabled() const { return !type.empty(); }
};

struct Fp16Config {
  bool enabled;
  bool auto_cast;
  double loss_scale;  // 0: dynamic loss scaling
  int64_t initial_scale_power;
  int64_t loss_scale_window;
  int64_t hysteresis;
  bool consecutive_hysteresis;
  double min_loss_scale;

  bool dynamic_loss_scale() const { return loss_scale == 0.0; }
};

struct Bf16Config {
  bool enabled;
};

struct OffloadOptimizerConfig {
  std::string device;  // "none" | "cpu" | "nvme"
  std::string nvme_path;
  bool pin_memory;
  int64_t buffer_count;
  double ratio;
  bool fast_init;

  bool enabled() const { return device != "none"; }
};

struct OffloadParamConfig {
  std::string device;  // "none" | "cpu" | "nvme"
  std::string nvme_path;
  bool pin_memory;
  int64_t buffer_count;
  int64_t buffer_size;
  int64_t max_in_cpu;

  bool enabled() const { return device != "none"; }
};

struct ZeroConfig {
  int64_t stage;  // 0..3
  bool contiguous_gradients;
  bool overlap_comm;
  bool reduce_scatter;
  int64_t reduce_bucket_size;
  bool allgather_partitions;
  int64_t allgather_bucket_size;
  int64_t stage3_prefetch_bucket_size;
  int64_t stage3_param_persistence_threshold;
  int64_t stage3_max_live_parameters;
  int64_t stage3_max_reuse_distance;
  bool stage3_gather_16bit_weights_on_model_save;
  int64_t sub_group_size;
  bool round_robin_gradients;
  OffloadOptimizerConfig offload_optimizer;
  OffloadParamConfig offload_param;
};

struct MonitorOutputConfig {  // csv_monitor and tensorboard share DeepSpeed's three keys
  bool enabled;
  std::string output_path;
  std::string job_name;
};

struct ActivationCheckpointingConfig {
  bool partition_activations;
  bool contiguous_memory_optimization;
  bool cpu_checkpointing;
  std::optional<int64_t> number_checkpoints;
  bool synchronize_checkpoint_boundary;
  bool profile;
};

enum class ConfigFormat { json, yaml, detect };

// Where a resolved value came from: shown by `zt-config --check` and in batch-size errors.
enum class ValueSource { default_value, config, app, auto_value, derived, world };
const char* value_source_name(ValueSource source);  // "default", "config", "app", "auto", ...

struct ConfigSetting {
  std::string key;  // dotted path, e.g. "zero_optimization.offload_optimizer.device"
  nlohmann::json value;
  ValueSource source;
};

// What the program contributes: the data-parallel size, and the values that replace "auto"
// (keyed by dotted path, e.g. {"optimizer.params.lr", 3e-4}). An "auto" batch size with no value
// here is derived from the other two batch keys; any other unresolved "auto" is an error.
struct ConfigOptions {
  int64_t world_size = 1;  // the data-parallel size
  std::map<std::string, nlohmann::json> auto_values;
};

// Fills the "auto" ZeRO bucket sizes from the model's hidden size h as Hugging Face's DeepSpeed
// integration does: reduce_bucket_size h^2, stage3_prefetch_bucket_size 0.9 h^2,
// stage3_param_persistence_threshold 10 h. Values already in options are kept.
void add_hidden_size_auto_values(ConfigOptions& options, int64_t hidden_size);

struct Config {
  int64_t train_batch_size;
  int64_t train_micro_batch_size_per_gpu;
  int64_t gradient_accumulation_steps;
  OptimizerConfig optimizer;
  SchedulerConfig scheduler;
  Fp16Config fp16;
  Bf16Config bf16;
  ZeroConfig zero_optimization;
  double gradient_clipping;  // 0: no clipping
  int64_t steps_per_print;
  bool wall_clock_breakdown;
  bool memory_breakdown;
  MonitorOutputConfig csv_monitor;
  MonitorOutputConfig tensorboard;
  ActivationCheckpointingConfig activation_checkpointing;
  int64_t seed;
  bool prescale_gradients;
  double gradient_predivide_factor;
  std::string communication_data_type;  // "" (the compute dtype), "fp32", "fp16" or "bf16"
  bool dump_state;
  bool zero_allow_untested_optimizer;

  std::string origin;  // the file name, or "<app defaults>"
  int64_t world_size;
  // Every key that applies to this config, in schema order, with its value and its source.
  std::vector<ConfigSetting> settings;

  // The resolved setting of a dotted key; throws when the key does not apply to this config.
  const ConfigSetting& setting(const std::string& key) const;
  // One line per setting: "key = value  (source)".
  std::string describe() const;
};

// Reads a JSON or YAML file (chosen by extension .json/.yaml/.yml, else by content).
Config load_config(const std::string& path, int64_t world_size = 1);
Config load_config(const std::string& path, const ConfigOptions& options);
// `origin` names the text in error messages ("ds_config.json: unknown key ...").
Config parse_config(const std::string& text, ConfigFormat format, int64_t world_size = 1);
Config parse_config(const std::string& text, ConfigFormat format, const ConfigOptions& options,
                    const std::string& origin = "<config>");
// The configuration used when an app is given no --config: the app's own defaults, written as a
// ds_config object (e.g. {"train_micro_batch_size_per_gpu": 32, "optimizer": {...}}), validated
// like a file; its values are reported with source "app".
Config config_from_app_defaults(const nlohmann::json& app_defaults, const ConfigOptions& options);

// The text of a config file as a JSON tree: syntax errors name origin:line:column. Exposed for
// tools that inspect a config before resolving it.
nlohmann::json parse_config_document(const std::string& text, ConfigFormat format,
                                     const std::string& origin);

}  // namespace zt
