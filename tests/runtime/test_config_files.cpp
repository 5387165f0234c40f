// Config sources: YAML and JSON give the same config, "auto" values resolved from the program,
// the app-defaults path, every example in configs/ loads, and docs/config.md is the page the
// schema generates.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "runtime/config.h"
#include "runtime/config_schema.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The source tree: ZT_SOURCE_DIR under ctest, else found from this file's path.
fs::path source_dir() {
  if (const char* dir = std::getenv("ZT_SOURCE_DIR")) return dir;
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path.string());
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// Settings as a comparable JSON object {key: [value, source]}.
json settings_of(const zt::Config& c) {
  json out = json::object();
  for (const auto& s : c.settings) out[s.key] = json::array({s.value, zt::value_source_name(s.source)});
  return out;
}

const char* kJson = R"({
  "train_batch_size": 64,
  "gradient_accumulation_steps": 2,
  "gradient_clipping": 1.0,
  "optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "betas": [0.9, 0.95], "weight_decay": 0.1}},
  "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 1000, "warmup_num_steps": 10,
                                                    "warmup_type": "linear"}},
  "fp16": {"enabled": true, "min_loss_scale": 0.5},
  "zero_optimization": {"stage": 3, "reduce_bucket_size": 5e8,
                        "offload_param": {"device": "nvme", "nvme_path": "/local_nvme"}},
  "communication_data_type": null,
  "csv_monitor": {"enabled": true, "job_name": "run"}
})";

const char* kYaml = R"(# the same config as kJson
train_batch_size: 64
gradient_accumulation_steps: 2
gradient_clipping: 1.0
optimizer:
  type: AdamW
  params: {lr: 3.0e-4, betas: [0.9, 0.95], weight_decay: 0.1}
scheduler:
  type: WarmupDecayLR
  params:
    total_num_steps: 1000
    warmup_num_steps: 10
    warmup_type: linear
fp16:
  enabled: true
  min_loss_scale: 0.5
zero_optimization:
  stage: 3
  reduce_bucket_size: 5e8
  offload_param:
    device: nvme
    nvme_path: /local_nvme
communication_data_type: ~
csv_monitor:
  enabled: true
  job_name: "run"
)";

}  // namespace

TEST_CASE("config files: YAML and JSON resolve to the same config") {
  const zt::Config j = zt::parse_config(kJson, zt::ConfigFormat::json, 4);
  const zt::Config y = zt::parse_config(kYaml, zt::ConfigFormat::yaml, 4);
  CHECK(settings_of(j) == settings_of(y));
  CHECK(j.train_micro_batch_size_per_gpu == 8);
  CHECK(y.train_micro_batch_size_per_gpu == 8);
  CHECK(y.zero_optimization.reduce_bucket_size == 500000000);
  CHECK(y.optimizer.betas == std::array<double, 2>{0.9, 0.95});
  CHECK(y.zero_optimization.offload_param.nvme_path == "/local_nvme");
  CHECK(y.csv_monitor.job_name == "run");
  // Detection by content: a JSON object starts with '{', anything else is YAML.
  CHECK(settings_of(zt::parse_config(kJson, zt::ConfigFormat::detect, 4)) == settings_of(j));
  CHECK(settings_of(zt::parse_config(kYaml, zt::ConfigFormat::detect, 4)) == settings_of(j));
}

TEST_CASE("config files: an empty YAML document needs only a batch size") {
  CHECK_THROWS_AS(zt::parse_config("", zt::ConfigFormat::yaml), zt::Error);
  const zt::Config c = zt::parse_config("train_micro_batch_size_per_gpu: 2\n", zt::ConfigFormat::yaml, 2);
  CHECK(c.train_batch_size == 4);
}

TEST_CASE("config files: auto values are resolved from the program") {
  const std::string text = R"({
    "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
    "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                  "weight_decay": "auto"}},
    "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto",
                  "warmup_num_steps": "auto", "total_num_steps": "auto"}},
    "fp16": {"enabled": "auto"}, "bf16": {"enabled": "auto"},
    "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto",
                          "stage3_prefetch_bucket_size": "auto",
                          "stage3_param_persistence_threshold": "auto"}
  })";
  zt::ConfigOptions options;
  options.world_size = 2;
  options.auto_values = {
      {"train_micro_batch_size_per_gpu", 8}, {"gradient_accumulation_steps", 4},
      {"gradient_clipping", 1.0}, {"optimizer.params.lr", 2e-4},
      {"optimizer.params.betas", json::array({0.9, 0.98})}, {"optimizer.params.eps", 1e-6},
      {"optimizer.params.weight_decay", 0.01}, {"scheduler.params.warmup_min_lr", 0.0},
      {"scheduler.params.warmup_max_lr", 2e-4}, {"scheduler.params.warmup_num_steps", 50},
      {"scheduler.params.total_num_steps", 500}, {"fp16.enabled", false}, {"bf16.enabled", true},
      // Hugging Face's rule for a hidden size of 1024: h^2, 0.9 h^2, 10 h.
      {"zero_optimization.reduce_bucket_size", 1048576},
      {"zero_optimization.stage3_prefetch_bucket_size", 943718},
      {"zero_optimization.stage3_param_persistence_threshold", 10240}};
  const zt::Config c = zt::parse_config(text, zt::ConfigFormat::json, options);
  CHECK(c.train_batch_size == 64);  // 8 x 4 x 2, derived: the program gave micro and accumulation
  CHECK(c.setting("train_batch_size").source == zt::ValueSource::derived);
  CHECK(c.setting("optimizer.params.lr").source == zt::ValueSource::auto_value);
  CHECK(c.gradient_clipping == 1.0);
  CHECK(c.optimizer.lr == 2e-4);
  CHECK(c.optimizer.betas == std::array<double, 2>{0.9, 0.98});
  CHECK(c.optimizer.eps == 1e-6);
  CHECK(c.optimizer.weight_decay == 0.01);
  CHECK(c.scheduler.warmup_max_lr == 2e-4);
  CHECK(c.scheduler.warmup_num_steps == 50);
  CHECK(c.scheduler.total_num_steps == 500);
  CHECK_FALSE(c.fp16.enabled);
  CHECK(c.bf16.enabled);
  CHECK(c.zero_optimization.reduce_bucket_size == 1048576);
  CHECK(c.zero_optimization.stage3_prefetch_bucket_size == 943718);
  CHECK(c.zero_optimization.stage3_param_persistence_threshold == 10240);
  // A conflict among program-supplied values is still a conflict.
  options.auto_values["fp16.enabled"] = true;
  CHECK_THROWS_WITH_AS(zt::parse_config(text, zt::ConfigFormat::json, options),
                       doctest::Contains("fp16.enabled and bf16.enabled are both true"), zt::Error);
}

TEST_CASE("config files: auto bucket sizes from the hidden size, as Hugging Face sets them") {
  zt::ConfigOptions options;
  options.auto_values["zero_optimization.reduce_bucket_size"] = 1000;  // the program's own value wins
  zt::add_hidden_size_auto_values(options, 1024);
  const zt::Config c = zt::parse_config(
      R"({"train_batch_size": 8, "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto",
          "stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto"}})",
      zt::ConfigFormat::json, options);
  CHECK(c.zero_optimization.reduce_bucket_size == 1000);
  CHECK(c.zero_optimization.stage3_prefetch_bucket_size == 943718);  // int(0.9 x 1024^2)
  CHECK(c.zero_optimization.stage3_param_persistence_threshold == 10240);
  CHECK_THROWS_AS(zt::add_hidden_size_auto_values(options, 0), zt::Error);
}

TEST_CASE("config files: the app's defaults when there is no --config") {
  zt::ConfigOptions options;
  options.world_size = 2;
  const json defaults = {{"train_micro_batch_size_per_gpu", 32},
                         {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 1e-3}}}}}};
  const zt::Config c = zt::config_from_app_defaults(defaults, options);
  CHECK(c.origin == "<app defaults>");
  CHECK(c.train_batch_size == 64);
  CHECK(c.optimizer.type == "Adam");
  CHECK(c.setting("optimizer.params.lr").source == zt::ValueSource::app);
  CHECK(c.setting("steps_per_print").source == zt::ValueSource::default_value);
  // App defaults are held to the schema like any file.
  CHECK_THROWS_WITH_AS(zt::config_from_app_defaults({{"train_micro_batch_size_per_gpu", 32}, {"sead", 1}}, options),
                       doctest::Contains("<app defaults>: unknown key 'sead' (did you mean 'seed'?)"),
                       zt::Error);
}

TEST_CASE("config files: every example config loads") {
  const fs::path dir = source_dir() / "configs";
  REQUIRE(fs::is_directory(dir));
  int loaded = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string ext = entry.path().extension().string();
    if (ext != ".json" && ext != ".yaml" && ext != ".yml") continue;
    INFO(entry.path().string());
    for (int64_t world : {1, 2}) {
      const zt::Config c = zt::load_config(entry.path().string(), world);
      CHECK(c.train_batch_size ==
            c.train_micro_batch_size_per_gpu * c.gradient_accumulation_steps * world);
      CHECK(c.origin == entry.path().string());
    }
    ++loaded;
  }
  CHECK(loaded >= 4);
}

TEST_CASE("config files: the classic MNIST config") {
  const zt::Config c = zt::load_config((source_dir() / "configs" / "mnist_ds_config.json").string(), 2);
  CHECK(c.train_batch_size == 128);
  CHECK(c.train_micro_batch_size_per_gpu == 64);
  CHECK(c.gradient_accumulation_steps == 1);
  CHECK(c.optimizer.type == "Adam");
  CHECK(c.optimizer.lr == 0.00015);
  CHECK(c.zero_optimization.stage == 2);
  CHECK(c.fp16.enabled);
  CHECK(c.fp16.dynamic_loss_scale());
}

TEST_CASE("config files: the ZeRO-3 offload YAML example") {
  const zt::Config c = zt::load_config((source_dir() / "configs" / "zero3_offload.yaml").string(), 4);
  CHECK(c.gradient_accumulation_steps == 4);  // 64 / (4 x 4)
  CHECK(c.zero_optimization.stage == 3);
  CHECK(c.zero_optimization.offload_optimizer.device == "cpu");
  CHECK(c.zero_optimization.offload_param.device == "cpu");
  CHECK(c.zero_optimization.stage3_prefetch_bucket_size == 50000000);
  CHECK(c.scheduler.type == "WarmupDecayLR");
  CHECK(c.scheduler.total_num_steps == 2000);
}

TEST_CASE("config files: docs/config.md is the page the schema generates") {
  const std::string committed = read_text(source_dir() / "docs" / "config.md");
  const std::string generated = zt::config_reference_markdown();
  CHECK_MESSAGE(committed == generated,
                "docs/config.md is stale: regenerate it with `build/bin/zt-config --docs > docs/config.md`");
  // Every key of the schema is documented.
  for (const auto& e : zt::config_schema()) {
    CHECK_MESSAGE(generated.find("`" + e.key + "`") != std::string::npos, e.key);
  }
}

TEST_CASE("config files: describe lists each setting with its source") {
  const zt::Config c = zt::parse_config(R"({"train_batch_size": 16})", zt::ConfigFormat::json, 2);
  const std::string text = c.describe();
  CHECK(text.find("train_batch_size") != std::string::npos);
  CHECK(text.find("= 16  (config)") != std::string::npos);
  CHECK(text.find("= 8  (derived)") != std::string::npos);
  CHECK(text.find("= 1  (default)") != std::string::npos);
  size_t lines = 0;
  for (char ch : text) lines += ch == '\n';
  CHECK(lines == c.settings.size());
}
