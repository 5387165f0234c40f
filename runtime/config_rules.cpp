// Cross-key config rules: the batch-size rule as DeepSpeed applies it
// (DeepSpeedConfig._set_batch_related_parameters), defaults that depend on the ZeRO stage, and
// conflicting settings. See config_rules.h.
#include "runtime/config_rules.h"

#include "core/error.h"

namespace zt {
namespace {

using nlohmann::json;

const std::string kTrain = "train_batch_size";
const std::string kMicro = "train_micro_batch_size_per_gpu";
const std::string kAccum = "gradient_accumulation_steps";

std::string world_term(const SettingTable& t) {
  return "data-parallel size " + std::to_string(t.world_size()) + " (world)";
}

// `total` must be a positive multiple of `factors`; else the derivation of `derived` fails.
int64_t derive_quotient(const SettingTable& t, const std::string& total,
                        const std::vector<std::string>& factors, const std::string& derived) {
  int64_t divisor = t.world_size();
  std::string terms;
  for (const auto& f : factors) {
    divisor *= t.integer(f);
    terms += t.term(f) + " x ";
  }
  const int64_t n = t.integer(total);
  if (n % divisor != 0 || n < divisor) {
    t.fail(t.term(total) + " is not a multiple of " + terms + world_term(t) + " = " +
           std::to_string(divisor) + ", so " + derived + " cannot be derived");
  }
  return n / divisor;
}

}  // namespace

const ConfigSetting* SettingTable::find(const std::string& key) const {
  for (const auto& s : settings_) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

const json& SettingTable::value(const std::string& key) const {
  static const json null_value;
  const ConfigSetting* s = find(key);
  return s ? s->value : null_value;
}

bool SettingTable::flag(const std::string& key) const {
  const json& v = value(key);
  return v.is_boolean() && v.get<bool>();
}

int64_t SettingTable::integer(const std::string& key) const { return value(key).get<int64_t>(); }
double SettingTable::number(const std::string& key) const { return value(key).get<double>(); }

std::string SettingTable::text(const std::string& key) const {
  const json& v = value(key);
  return v.is_string() ? v.get<std::string>() : "";
}

void SettingTable::set(const std::string& key, json value, ValueSource source) {
  for (auto& s : settings_) {
    if (s.key == key) {
      s.value = std::move(value);
      s.source = source;
      return;
    }
  }
  settings_.push_back({key, std::move(value), source});
}

std::string SettingTable::term(const std::string& key) const {
  const ConfigSetting* s = find(key);
  ZT_CHECK(s != nullptr, "no setting '", key, "'");
  return key + " " + s->value.dump() + " (" + value_source_name(s->source) + ")";
}

void SettingTable::fail(const std::string& message) const { ZT_FAIL(origin_, ": ", message); }

bool is_batch_key(const std::string& key) { return key == kTrain || key == kMicro || key == kAccum; }

void resolve_batch_sizes(SettingTable& t, const std::set<std::string>& unresolved_auto) {
  const bool train = !t.value(kTrain).is_null(), micro = !t.value(kMicro).is_null();
  const bool accum = !t.value(kAccum).is_null();
  const int64_t world = t.world_size();
  if (train && micro && accum) {
    const int64_t product = t.integer(kMicro) * t.integer(kAccum) * world;
    if (t.integer(kTrain) != product) {
      t.fail(t.term(kTrain) + " != " + t.term(kMicro) + " x " + t.term(kAccum) + " x " +
             world_term(t) + " = " + std::to_string(product));
    }
  } else if (train && micro) {
    t.set(kAccum, derive_quotient(t, kTrain, {kMicro}, kAccum), ValueSource::derived);
  } else if (train && accum) {
    t.set(kMicro, derive_quotient(t, kTrain, {kAccum}, kMicro), ValueSource::derived);
  } else if (micro && accum) {
    t.set(kTrain, t.integer(kMicro) * t.integer(kAccum) * world, ValueSource::derived);
  } else if (train) {  // DeepSpeed: no accumulation, the global batch split over the ranks
    t.set(kAccum, 1, ValueSource::default_value);
    t.set(kMicro, derive_quotient(t, kTrain, {kAccum}, kMicro), ValueSource::derived);
  } else if (micro) {
    t.set(kAccum, 1, ValueSource::default_value);
    t.set(kTrain, t.integer(kMicro) * world, ValueSource::derived);
  } else {
    std::string why = accum ? " (" + kAccum + " alone does not fix it)" : "";
    if (!unresolved_auto.empty()) why += " (\"auto\" batch sizes need values from the program)";
    t.fail("the batch size is not set: give " + kTrain + " or " + kMicro + why);
  }
}

void apply_derived_defaults(SettingTable& t) {
  const std::string overlap = "zero_optimization.overlap_comm";
  const ConfigSetting* s = t.find(overlap);
  if (s && s->source == ValueSource::default_value && t.integer("zero_optimization.stage") == 3) {
    t.set(overlap, true, ValueSource::default_value);
  }
}

void check_conflicts(const SettingTable& t) {
  if (t.flag("fp16.enabled") && t.flag("bf16.enabled")) {
    t.fail("fp16.enabled and bf16.enabled are both true; enable at most one of them");
  }
  if (t.flag("tensorboard.enabled")) {
    t.fail("tensorboard.enabled: TensorBoard output is not supported by zerotrain; set it to "
           "false and use csv_monitor instead");
  }
  const std::string stage = "zero_optimization.stage";
  const int64_t zero_stage = t.integer(stage);
  for (const std::string which : {"offload_optimizer", "offload_param"}) {
    const std::string device = "zero_optimization." + which + ".device";
    const std::string dev = t.text(device);
    // The offloaded optimizer state steps on the CPU (or through NVMe) at stages 1-3 alike;
    // parameters are partitioned only at stage 3.
    const int64_t needed = which == "offload_param" ? 3 : 1;
    if (dev != "none" && zero_stage < needed) {
      t.fail(device + " \"" + dev + "\" needs " + stage + (needed == 3 ? " 3" : " >= 1") +
             ", got " + t.term(stage));
    }
    const std::string path = "zero_optimization." + which + ".nvme_path";
    if (dev == "nvme" && t.text(path).empty()) {
      t.fail(path + " is required when " + device + " is \"nvme\"");
    }
  }
  const std::string offload = "zero_optimization.offload_optimizer.device";
  if (t.text(offload) != "none") {
    const std::string type = t.text("optimizer.type");
    if (!type.empty() && type != "Adam" && type != "AdamW") {
      t.fail(offload + " \"" + t.text(offload) + "\" steps the offloaded state with the CPU Adam, so it needs "
             "optimizer.type Adam or AdamW, got " + t.term("optimizer.type"));
    }
    if (t.integer("zero_optimization.sub_group_size") < 1) {
      t.fail("zero_optimization.sub_group_size must be at least 1 element with " + offload + " \"" +
             t.text(offload) + "\", got " + t.term("zero_optimization.sub_group_size"));
    }
  }
  if (t.flag("activation_checkpointing.cpu_checkpointing") &&
      !t.flag("activation_checkpointing.partition_activations")) {
    t.fail("activation_checkpointing.cpu_checkpointing needs "
           "activation_checkpointing.partition_activations to be true");
  }
  if (t.flag("optimizer.params.nesterov") &&
      (t.number("optimizer.params.momentum") <= 0 || t.number("optimizer.params.dampening") != 0)) {
    t.fail("optimizer.params.nesterov needs optimizer.params.momentum > 0 and "
           "optimizer.params.dampening 0, got " + t.term("optimizer.params.momentum") + " and " +
           t.term("optimizer.params.dampening"));
  }
  if (t.text("scheduler.type") == "OneCycle") {
    const std::string p = "scheduler.params.";
    if (t.number(p + "cycle_min_lr") > t.number(p + "cycle_max_lr")) {
      t.fail(t.term(p + "cycle_min_lr") + " > " + t.term(p + "cycle_max_lr"));
    }
    if (t.number(p + "cycle_min_mom") > t.number(p + "cycle_max_mom")) {
      t.fail(t.term(p + "cycle_min_mom") + " > " + t.term(p + "cycle_max_mom"));
    }
    for (const std::string stairs : {"cycle_first_stair_count", "cycle_second_stair_count"}) {
      const json& v = t.value(p + stairs);
      if (!v.is_null() && v.get<int64_t>() != 0) {
        t.fail(p + stairs + ": the staircase OneCycle is not supported; expected 0, got " + v.dump());
      }
    }
  }
}

}  // namespace zt
