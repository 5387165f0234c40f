// docs/config.md, generated from the config schema (`zt-config --docs > docs/config.md`); a test
// checks that the committed page equals this output, so the reference cannot drift.
#include <sstream>

#include "runtime/config_schema.h"

namespace zt {
namespace {

std::string code(const std::string& s) { return "`" + s + "`"; }

std::string default_text(const SchemaEntry& e) {
  if (!e.default_doc.empty()) return e.default_doc;
  if (e.type == ValueType::object) return "";
  if (!e.default_value.is_null()) return code(e.default_value.dump());
  if (e.has(kNullable)) return code("null");
  return e.has(kRequired) ? "required" : "none";
}

std::string allowed_text(const SchemaEntry& e) {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  for (const auto& c : e.choices) add(code("\"" + c + "\""));
  if (e.type == ValueType::integer || e.type == ValueType::number ||
      e.type == ValueType::number_pair) {
    const std::string r = e.range.describe();
    if (!r.empty()) add(r);
  }
  if (e.has(kNullable)) add(code("null"));
  if (e.has(kAcceptsAuto)) add(code("\"auto\""));
  if (e.has(kCaseInsensitive)) out += " (any case)";
  return out;
}

std::string description(const SchemaEntry& e) {
  std::string prefix;
  for (const auto& v : e.variants) prefix += (prefix.empty() ? "" : ", ") + v;
  return prefix.empty() ? e.help : "*" + prefix + ":* " + e.help;
}

void table_header(std::ostringstream& os) {
  os << "| Key | Type | Default | Allowed | Description |\n";
  os << "|---|---|---|---|---|\n";
}

void table_row(std::ostringstream& os, const SchemaEntry& e) {
  os << "| " << code(e.key) << " | " << value_type_name(e.type) << " | " << default_text(e)
     << " | " << allowed_text(e) << " | " << description(e) << " |\n";
}

const char* kIntro = R"(# Configuration reference

<!-- Generated from runtime/config_schema.cpp by `zt-config --docs > docs/config.md`.
     Do not edit by hand: a test checks that this page equals the generated one. -->

zerotrain reads DeepSpeed's `ds_config` keys with DeepSpeed's meanings and defaults, so an
existing `ds_config.json` works unchanged. Configs are JSON, or YAML with the same keys (chosen by
the extension `.yaml`/`.yml`, else by content). Check a file and see every resolved value and where
it came from with `zt-config --check FILE [--world-size N]`.

- Unknown or misspelt keys, at any level, are errors that name the full dotted key and suggest
  the closest valid one. Duplicate keys are errors.
- Values are checked for type and range; numbers written as `5e8` are accepted for integers.
- `"auto"` (as written by Hugging Face integrations) is accepted where the Allowed column says so.
  The program supplies the value (`ConfigOptions::auto_values`); an `"auto"` batch size it does not
  supply is derived from the other two; any other unresolved `"auto"` is an error.
- Keys under `optimizer.params` and `scheduler.params` apply only to the types named in italics.
- Conflicting settings are errors naming both keys: `fp16` and `bf16` both enabled,
  `offload_param` below stage 3, `offload_optimizer` at stage 0 (or with an optimizer other than
  Adam/AdamW, or `sub_group_size` 0), `nvme` without `nvme_path`, `cpu_checkpointing` without
  `partition_activations`, `nesterov` without momentum, a OneCycle minimum above its maximum, and
  an enabled `tensorboard`.

## From C++

```cpp
#include "runtime/config.h"

zt::ConfigOptions options;
options.world_size = data_parallel_size;
options.auto_values["optimizer.params.lr"] = 3e-4;     // replaces "lr": "auto"
zt::add_hidden_size_auto_values(options, hidden_size);  // the "auto" ZeRO bucket sizes
zt::Config config = zt::load_config("ds_config.json", options);
config.zero_optimization.stage;                          // typed fields, every default filled
config.setting("train_batch_size").source;               // config, default, derived, auto, ...
```

Without a config file, `zt::config_from_app_defaults(json, options)` resolves the program's own
defaults (written as a ds_config object) through the same checks.

## Batch size

`train_batch_size = train_micro_batch_size_per_gpu x gradient_accumulation_steps x data-parallel
size`, as in DeepSpeed. Any two of the three batch keys imply the third; with only
`train_batch_size`, or only `train_micro_batch_size_per_gpu`, `gradient_accumulation_steps` is 1.
Giving neither of those two is an error. When all three are given the equation is checked, and the
error shows each term and where it came from:

```
train_batch_size 64 (config) != train_micro_batch_size_per_gpu 8 (config) x gradient_accumulation_steps 2 (config) x data-parallel size 2 (world) = 32
```
)";

}  // namespace

std::string config_reference_markdown() {
  std::ostringstream os;
  os << kIntro;
  os << "\n## Top-level keys\n\n";
  table_header(os);
  for (const auto& e : config_schema()) {
    if (e.key.find('.') == std::string::npos && e.type != ValueType::object) table_row(os, e);
  }
  for (const auto& section : config_schema()) {
    if (section.key.find('.') != std::string::npos || section.type != ValueType::object) continue;
    os << "\n## " << code(section.key) << "\n\n" << section.help << "\n\n";
    table_header(os);
    for (const auto& e : config_schema()) {
      if (e.key.rfind(section.key + ".", 0) == 0) table_row(os, e);
    }
  }
  return os.str();
}

}  // namespace zt
