// Bad configs: a table of mistakes (misspelt and misplaced keys, wrong types, out-of-range values,
// conflicts, unknown optimizer, malformed JSON/YAML), each checked for the exact key and wording
// its message must carry; none may crash or pass.
#include <doctest/doctest.h>

#include "core/error.h"
#include "runtime/config.h"

namespace {

struct BadConfig {
  const char* name;
  zt::ConfigFormat format;
  const char* text;
  std::vector<std::string> expected;  // substrings of the message, in order
};

using F = zt::ConfigFormat;

const std::vector<BadConfig>& bad_configs() {
  static const std::vector<BadConfig> table = {
      // Unknown and misspelt keys, with hints, at every level.
      {"misspelt top-level key", F::json, R"({"train_batch_size": 8, "gradient_clippng": 1.0})",
       {"unknown key 'gradient_clippng'", "did you mean 'gradient_clipping'?"}},
      {"misspelt nested key", F::json, R"({"train_batch_size": 8, "zero_optimization": {"stgae": 2}})",
       {"unknown key 'zero_optimization.stgae'", "did you mean 'zero_optimization.stage'?"}},
      {"misspelt key two levels down", F::json,
       R"({"train_batch_size": 8, "zero_optimization": {"stage": 3, "offload_param": {"devise": "cpu"}}})",
       {"unknown key 'zero_optimization.offload_param.devise'",
        "did you mean 'zero_optimization.offload_param.device'?"}},
      {"misspelt optimizer param", F::json,
       R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"lr": 0.1, "weight_decya": 0.1}}})",
       {"unknown key 'optimizer.params.weight_decya'", "did you mean 'optimizer.params.weight_decay'?"}},
      {"misspelt scheduler param", F::json,
       R"({"train_batch_size": 8, "scheduler": {"type": "WarmupLR", "params": {"warmup_num_step": 10}}})",
       {"unknown key 'scheduler.params.warmup_num_step'", "did you mean 'scheduler.params.warmup_num_steps'?"}},
      {"misspelt fp16 key", F::json, R"({"train_batch_size": 8, "fp16": {"enabled": true, "loss_scale_windw": 10}})",
       {"unknown key 'fp16.loss_scale_windw'", "did you mean 'fp16.loss_scale_window'?"}},
      {"key in the wrong section", F::json, R"({"train_batch_size": 8, "stage": 2})",
       {"unknown key 'stage'", "did you mean 'zero_optimization.stage'?"}},
      {"section key at the top level", F::json, R"({"train_batch_size": 8, "enabled": true})",
       {"unknown key 'enabled' (did you mean one of 'fp16.enabled', 'bf16.enabled'", "'csv_monitor.enabled'"}},
      {"British spelling of a section", F::json, R"({"train_batch_size": 8, "zero_optimisation": {"stage": 1}})",
       {"unknown key 'zero_optimisation' (did you mean 'zero_optimization'?)"}},
      {"unknown key far from any", F::json, R"({"train_batch_size": 8, "flops_profiler_xyz": {}})",
       {"unknown key 'flops_profiler_xyz'", "the keys allowed at the top level are", "zero_optimization"}},
      {"unknown key in a section lists the section's keys", F::json,
       R"({"train_batch_size": 8, "bf16": {"enabled": true, "xyzzy": 1}})",
       {"unknown key 'bf16.xyzzy'", "the keys allowed under 'bf16' are enabled"}},
      {"param of another optimizer", F::json,
       R"({"train_batch_size": 8, "optimizer": {"type": "AdamW", "params": {"momentum": 0.9}}})",
       {"optimizer.params.momentum does not apply to optimizer.type AdamW", "it is a parameter of SGD"}},
      {"param of another scheduler", F::json,
       R"({"train_batch_size": 8, "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0, "cycle_max_lr": 1, "total_num_steps": 5}}})",
       {"scheduler.params.total_num_steps does not apply to scheduler.type OneCycle"}},
      // Wrong types.
      {"string for a number", F::json, R"({"train_batch_size": 8, "gradient_clipping": "abc"})",
       {"gradient_clipping: expected a number >= 0, got string \"abc\""}},
      {"string for an integer", F::json, R"({"train_batch_size": "64"})",
       {"train_batch_size: expected an integer >= 1, got string \"64\""}},
      {"number for a boolean", F::json, R"({"train_batch_size": 8, "fp16": {"enabled": 1}})",
       {"fp16.enabled: expected true or false, got number 1"}},
      {"object expected", F::json, R"({"train_batch_size": 8, "zero_optimization": 2})",
       {"zero_optimization: expected an object of settings, got number 2"}},
      {"betas of the wrong length", F::json,
       R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"betas": [0.9]}}})",
       {"optimizer.params.betas: expected a list of 2 numbers", "got a list of 1 values"}},
      {"fractional integer", F::json, R"({"train_batch_size": 8, "steps_per_print": 2.5})",
       {"steps_per_print: expected an integer >= 1, got number 2.5"}},
      {"null where no null is allowed", F::json, R"({"train_batch_size": 8, "seed": null})",
       {"seed: expected an integer >= 0, got null"}},
      {"auto where DeepSpeed does not take it", F::json, R"({"train_batch_size": 8, "steps_per_print": "auto"})",
       {"steps_per_print: \"auto\" is not accepted here; expected an integer >= 1"}},
      // Out of range.
      {"zero stage 4", F::json, R"({"train_batch_size": 8, "zero_optimization": {"stage": 4}})",
       {"zero_optimization.stage: expected an integer from 0 to 3, got number 4"}},
      {"negative bucket size", F::json,
       R"({"train_batch_size": 8, "zero_optimization": {"reduce_bucket_size": -1}})",
       {"zero_optimization.reduce_bucket_size: expected an integer >= 1, got number -1"}},
      {"negative learning rate", F::json,
       R"({"train_batch_size": 8, "optimizer": {"type": "SGD", "params": {"lr": -0.1}}})",
       {"optimizer.params.lr: expected a number >= 0, got number -0.1"}},
      {"beta of 1", F::json,
       R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"betas": [0.9, 1.0]}}})",
       {"optimizer.params.betas: expected a list of 2 numbers each with 0 <= x < 1"}},
      {"zero eps", F::json, R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"eps": 0}}})",
       {"optimizer.params.eps: expected a number > 0, got number 0"}},
      {"negative hysteresis", F::json, R"({"train_batch_size": 8, "fp16": {"hysteresis": -2}})",
       {"fp16.hysteresis: expected an integer >= 1, got number -2"}},
      // Unknown values.
      {"unknown optimizer", F::json, R"({"train_batch_size": 8, "optimizer": {"type": "Lamb"}})",
       {"optimizer.type: unknown value \"Lamb\"; expected one of Adam, AdamW, SGD"}},
      {"misspelt optimizer", F::json, R"({"train_batch_size": 8, "optimizer": {"type": "adamww"}})",
       {"optimizer.type: unknown value \"adamww\"", "did you mean \"AdamW\"?"}},
      {"scheduler names are case-sensitive", F::json, R"({"train_batch_size": 8, "scheduler": {"type": "warmuplr"}})",
       {"scheduler.type: unknown value \"warmuplr\"", "did you mean \"WarmupLR\"?"}},
      {"unknown offload device", F::json,
       R"({"train_batch_size": 8, "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "gpu"}}})",
       {"zero_optimization.offload_optimizer.device: unknown value \"gpu\"; expected one of none, cpu, nvme"}},
      // Missing required keys.
      {"optimizer without a type", F::json, R"({"train_batch_size": 8, "optimizer": {"params": {"lr": 0.1}}})",
       {"optimizer.type is required: choose one of Adam, AdamW, SGD"}},
      {"decay schedule without total steps", F::json,
       R"({"train_batch_size": 8, "scheduler": {"type": "WarmupDecayLR"}})",
       {"scheduler.params.total_num_steps is required when scheduler.type is WarmupDecayLR"}},
      {"OneCycle without its bounds", F::json,
       R"({"train_batch_size": 8, "scheduler": {"type": "OneCycle", "params": {"cycle_max_lr": 0.1}}})",
       {"scheduler.params.cycle_min_lr is required when scheduler.type is OneCycle"}},
      // Conflicts name both keys.
      {"fp16 and bf16", F::json,
       R"({"train_batch_size": 8, "fp16": {"enabled": true}, "bf16": {"enabled": true}})",
       {"fp16.enabled and bf16.enabled are both true"}},
      {"offload_param below stage 3", F::json,
       R"({"train_batch_size": 8, "zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}})",
       {"zero_optimization.offload_param.device \"cpu\" needs zero_optimization.stage 3, got "
        "zero_optimization.stage 2 (config)"}},
      {"offload_optimizer at stage 0", F::json,
       R"({"train_batch_size": 8, "zero_optimization": {"offload_optimizer": {"device": "cpu"}}})",
       {"zero_optimization.offload_optimizer.device \"cpu\" needs zero_optimization.stage >= 1, got "
        "zero_optimization.stage 0 (default)"}},
      {"optimizer offload with SGD", F::json,
       R"({"train_batch_size": 8, "optimizer": {"type": "SGD", "params": {"lr": 0.1}},
           "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "nvme", "nvme_path": "/x"}}})",
       {"zero_optimization.offload_optimizer.device \"nvme\" steps the offloaded state with the CPU Adam, so it "
        "needs optimizer.type Adam or AdamW, got optimizer.type \"SGD\" (config)"}},
      {"optimizer offload with sub_group_size 0", F::json,
       R"({"train_batch_size": 8, "zero_optimization": {"stage": 1, "sub_group_size": 0,
           "offload_optimizer": {"device": "cpu"}}})",
       {"zero_optimization.sub_group_size must be at least 1 element with zero_optimization.offload_optimizer.device "
        "\"cpu\", got zero_optimization.sub_group_size 0 (config)"}},
      {"nvme without a path", F::json,
       R"({"train_batch_size": 8, "zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}}})",
       {"zero_optimization.offload_param.nvme_path is required when zero_optimization.offload_param.device is \"nvme\""}},
      {"tensorboard enabled", F::json, R"({"train_batch_size": 8, "tensorboard": {"enabled": true}})",
       {"tensorboard.enabled: TensorBoard output is not supported"}},
      {"cpu checkpointing without partitioning", F::json,
       R"({"train_batch_size": 8, "activation_checkpointing": {"cpu_checkpointing": true}})",
       {"activation_checkpointing.cpu_checkpointing needs activation_checkpointing.partition_activations"}},
      {"nesterov without momentum", F::json,
       R"({"train_batch_size": 8, "optimizer": {"type": "SGD", "params": {"nesterov": true}}})",
       {"optimizer.params.nesterov needs optimizer.params.momentum > 0",
        "optimizer.params.momentum 0.0 (default)"}},
      {"OneCycle min above max", F::json,
       R"({"train_batch_size": 8, "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.1, "cycle_max_lr": 0.01}}})",
       {"scheduler.params.cycle_min_lr 0.1 (config) > scheduler.params.cycle_max_lr 0.01 (config)"}},
      {"OneCycle staircase", F::json,
       R"({"train_batch_size": 8, "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0, "cycle_max_lr": 1, "cycle_first_stair_count": 2}}})",
       {"scheduler.params.cycle_first_stair_count: the staircase OneCycle is not supported"}},
      {"unresolved auto", F::json,
       R"({"train_batch_size": 8, "optimizer": {"type": "AdamW", "params": {"lr": "auto"}}})",
       {"optimizer.params.lr is \"auto\" but the program supplies no value for it"}},
      // Malformed documents.
      {"JSON missing comma", F::json, "{\n  \"train_batch_size\": 8\n  \"seed\": 1\n}",
       {"<config>:3:", "JSON syntax error"}},
      {"JSON trailing comma", F::json, "{\"train_batch_size\": 8,\n}", {"<config>:2:", "JSON syntax error"}},
      {"JSON duplicate key", F::json, R"({"train_batch_size": 8, "zero_optimization": {"stage": 1, "stage": 2}})",
       {"duplicate key 'zero_optimization.stage'"}},
      {"JSON list at the top", F::json, "[1, 2]", {"expected a mapping of keys to values at the top level"}},
      {"YAML bad indentation", F::yaml, "train_batch_size: 8\nfp16:\n  enabled: true\n loss_scale: 0\n",
       {"<config>:4:", "YAML syntax error"}},
      {"YAML unclosed list", F::yaml, "train_batch_size: 8\noptimizer:\n  type: Adam\n  params:\n    betas: [0.9, 0.99\n",
       {"YAML syntax error"}},
      {"YAML duplicate key", F::yaml, "train_batch_size: 8\nseed: 1\nseed: 2\n", {"<config>:3:1: duplicate key 'seed'"}},
      {"YAML key that is not a scalar", F::yaml, "train_batch_size: 8\n? [a, b]\n: 1\n",
       {"<config>:2:3: YAML error", "keys must be plain names"}},
      {"YAML misspelt key", F::yaml, "train_batch_size: 8\nzero_optimization:\n  stagee: 2\n",
       {"unknown key 'zero_optimization.stagee'", "did you mean 'zero_optimization.stage'?"}},
      {"YAML quoted number stays a string", F::yaml, "train_batch_size: \"8\"\n",
       {"train_batch_size: expected an integer >= 1, got string \"8\""}},
  };
  return table;
}

std::string error_of(const std::string& text, zt::ConfigFormat format) {
  try {
    zt::parse_config(text, format, zt::ConfigOptions{1, {}});
  } catch (const zt::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("config errors: every bad config fails with the key and the reason") {
  CHECK(bad_configs().size() >= 30);
  for (const auto& bad : bad_configs()) {
    INFO(std::string(bad.name));
    const std::string message = error_of(bad.text, bad.format);
    INFO(message);
    REQUIRE_FALSE(message.empty());
    CHECK(message.rfind("<config>", 0) == 0);  // every message names the config it is about
    size_t from = 0;
    for (const auto& part : bad.expected) {
      const size_t at = message.find(part, from);
      CHECK_MESSAGE(at != std::string::npos, "missing: " << part);
      if (at != std::string::npos) from = at + part.size();
    }
  }
}

TEST_CASE("config errors: the file name and line of a syntax error") {
  try {
    zt::parse_config("{\n  \"train_batch_size\": 8,\n  \"fp16\": {\"enabled\": tru}\n}", F::json,
                     zt::ConfigOptions{1, {}}, "ds_config.json");
    FAIL("expected an error");
  } catch (const zt::Error& e) {
    CHECK(std::string(e.what()).rfind("ds_config.json:3:", 0) == 0);
  }
}

TEST_CASE("config errors: load_config reports a missing file") {
  try {
    zt::load_config("/nonexistent/ds_config.json");
    FAIL("expected an error");
  } catch (const zt::Error& e) {
    CHECK(std::string(e.what()).find("cannot open config file '/nonexistent/ds_config.json'") !=
          std::string::npos);
  }
}

TEST_CASE("config errors: auto_values may only name keys that accept auto") {
  zt::ConfigOptions options;
  options.auto_values["steps_per_print"] = 5;
  try {
    zt::parse_config(R"({"train_batch_size": 8})", F::json, options);
    FAIL("expected an error");
  } catch (const zt::Error& e) {
    CHECK(std::string(e.what()).find("auto_values names 'steps_per_print'") != std::string::npos);
  }
}

TEST_CASE("config errors: truncated and corrupted files fail cleanly, never crash") {
  // Every prefix of a valid JSON and YAML config, and each with one byte replaced: each parse
  // either succeeds or throws zt::Error (any other exception fails the test).
  const std::string json_text = R"({"train_batch_size": 16, "optimizer": {"type": "Adam", "params": {"lr": 1e-3, "betas": [0.9, 0.99]}}, "fp16": {"enabled": true}, "zero_optimization": {"stage": 2, "reduce_bucket_size": 5e8}})";
  const std::string yaml_text =
      "train_batch_size: 16\noptimizer:\n  type: Adam\n  params: {lr: 1.0e-3, betas: [0.9, 0.99]}\n"
      "fp16:\n  enabled: true\nzero_optimization:\n  stage: 2\n  reduce_bucket_size: 5e8\n";
  int errors = 0, parsed = 0;
  auto attempt = [&](const std::string& text, zt::ConfigFormat format) {
    try {
      zt::parse_config(text, format, zt::ConfigOptions{2, {}});
      ++parsed;
    } catch (const zt::Error&) {
      ++errors;
    }
  };
  for (const auto& [text, format] : {std::pair{json_text, F::json}, std::pair{yaml_text, F::yaml}}) {
    for (size_t n = 0; n <= text.size(); ++n) attempt(text.substr(0, n), format);
    for (size_t i = 0; i < text.size(); ++i) {
      for (char c : {'"', '{', ':', '-', 'x', '\t'}) {
        std::string corrupted = text;
        corrupted[i] = c;
        attempt(corrupted, format);
      }
    }
  }
  CHECK(parsed >= 2);  // the whole files
  CHECK(errors > 1000);
}
