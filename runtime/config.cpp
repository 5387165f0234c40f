// Resolving a config document against the schema: every key checked (name, type, range,
// choices, "auto"), defaults filled, the batch-size rule applied, conflicts rejected, and the
// typed Config filled through each schema entry's field binding.
#include "runtime/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "runtime/args.h"
#include "runtime/config_rules.h"
#include "runtime/config_schema.h"

namespace zt {
namespace {

using nlohmann::json;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

// How a value reads in an error: string "abc", number 2.5, true, null, an object, a list of 3.
std::string describe_json(const json& v) {
  if (v.is_string()) return "string " + v.dump();
  if (v.is_number()) return "number " + v.dump();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_null()) return "null";
  if (v.is_object()) return "an object";
  return "a list of " + std::to_string(v.size()) + " values";
}

std::string expectation(const SchemaEntry& e) {
  std::string range = e.range.describe();
  if (range.find('x') != std::string::npos) range = "with " + range;
  else if (range.find(" to ") != std::string::npos) range = "from " + range;
  const std::string tail = range.empty() ? "" : " " + range;
  switch (e.type) {
    case ValueType::boolean: return "true or false";
    case ValueType::integer: return "an integer" + tail;
    case ValueType::number: return "a number" + tail;
    case ValueType::string:
      return e.choices.empty() ? "a string" : "one of " + join(e.choices, ", ");
    case ValueType::number_pair: return "a list of 2 numbers" + (tail.empty() ? "" : " each" + tail);
    case ValueType::object: return "an object of settings";
  }
  return "?";
}

class Resolver {
 public:
  Resolver(const json& doc, ValueSource source, const ConfigOptions& options, std::string origin)
      : doc_(doc), source_(source), options_(options), origin_(std::move(origin)) {}

  Config run() {
    ZT_CHECK(options_.world_size >= 1, origin_, ": the data-parallel size must be >= 1, got ",
             options_.world_size);
    for (const auto& [key, value] : options_.auto_values) {
      const SchemaEntry* e = find_schema_entry(key);
      ZT_CHECK(e && e->has(kAcceptsAuto), "ConfigOptions::auto_values names '", key,
               "', which is not a config key that accepts \"auto\"");
    }
    read_variant("optimizer.type");
    read_variant("scheduler.type");
    walk(doc_, "");
    collect_settings();
    SettingTable table(settings_, origin_, options_.world_size);
    resolve_batch_sizes(table, unresolved_auto_);
    apply_derived_defaults(table);
    check_conflicts(table);
    return build();
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { ZT_FAIL(origin_, ": ", msg); }

  bool section_present(const std::string& key) const {
    return doc_.contains(key.substr(0, key.find('.')));
  }

  // The optimizer/scheduler type decides which params keys exist, so it is read first.
  void read_variant(const std::string& key) {
    const std::string section = key.substr(0, key.find('.'));
    if (!doc_.contains(section) || !doc_[section].is_object() || !doc_[section].contains("type")) {
      return;
    }
    variants_[key] = check_value(*find_schema_entry(key), doc_[section]["type"], key).get<std::string>();
  }

  void walk(const json& object, const std::string& path) {
    for (const auto& [name, value] : object.items()) {
      const std::string key = path.empty() ? name : path + "." + name;
      const SchemaEntry* e = find_schema_entry(key);
      if (e == nullptr) unknown_key(key, path, name);
      check_variant(*e);
      if (e->type == ValueType::object) {
        if (!value.is_object()) fail(key + ": expected an object of settings, got " + describe_json(value));
        walk(value, key);
      } else {
        take_value(*e, value);
      }
    }
  }

  [[noreturn]] void unknown_key(const std::string& key, const std::string& path, const std::string& name) {
    std::vector<std::string> candidates;
    for (const auto& c : schema_children(path)) {
      const SchemaEntry* e = find_schema_entry(path.empty() ? c : path + "." + c);
      if (applies(*e)) candidates.push_back(c);
    }
    std::string hint = closest_match(name, candidates);
    if (!hint.empty()) hint = path.empty() ? hint : path + "." + hint;
    if (hint.empty()) {  // the right name in the wrong place, e.g. "stage" at the top level
      std::vector<std::string> elsewhere;
      for (const auto& e : config_schema()) {
        if (e.key.size() > name.size() && e.key.ends_with("." + name)) elsewhere.push_back("'" + e.key + "'");
      }
      if (elsewhere.size() == 1) hint = elsewhere[0].substr(1, elsewhere[0].size() - 2);
      if (elsewhere.size() > 1) {
        fail("unknown key '" + key + "' (did you mean one of " + join(elsewhere, ", ") + "?)");
      }
    }
    if (!hint.empty()) fail("unknown key '" + key + "' (did you mean '" + hint + "'?)");
    fail("unknown key '" + key + "'; the keys allowed " +
         (path.empty() ? std::string("at the top level") : "under '" + path + "'") + " are " +
         join(candidates, ", "));
  }

  // Whether a key belongs to the active optimizer/scheduler type (keys elsewhere always do).
  bool applies(const SchemaEntry& e) const {
    const std::string selector = variant_selector(e.key);
    if (selector.empty() || e.variants.empty()) return true;
    const auto it = variants_.find(selector);
    return it != variants_.end() && std::count(e.variants.begin(), e.variants.end(), it->second);
  }

  void check_variant(const SchemaEntry& e) const {
    const std::string selector = variant_selector(e.key);
    if (selector.empty() || applies(e)) return;
    const auto it = variants_.find(selector);
    if (it == variants_.end()) fail(e.key + " is given but " + selector + " is not");
    fail(e.key + " does not apply to " + selector + " " + it->second + " (it is a parameter of " +
         join(e.variants, ", ") + ")");
  }

  void take_value(const SchemaEntry& e, const json& value) {
    if (value.is_string() && value.get<std::string>() == "auto") {
      if (!e.has(kAcceptsAuto)) {
        fail(e.key + ": \"auto\" is not accepted here; expected " + expectation(e));
      }
      const auto it = options_.auto_values.find(e.key);
      if (it != options_.auto_values.end()) {
        given_[e.key] = {check_value(e, it->second, e.key + " (the program's value for \"auto\")"),
                         ValueSource::auto_value};
      } else if (is_batch_key(e.key)) {
        unresolved_auto_.insert(e.key);  // derived from the other batch keys, if it can be
      } else {
        fail(e.key + " is \"auto\" but the program supplies no value for it; write a value in "
             "the config");
      }
      return;
    }
    given_[e.key] = {check_value(e, value, e.key), source_};
  }

  // The canonical form of a valid value (5e8 -> 500000000, "adamw" -> "AdamW"), or an error.
  json check_value(const SchemaEntry& e, const json& v, const std::string& what) const {
    auto bad = [&]() { fail(what + ": expected " + expectation(e) + ", got " + describe_json(v)); };
    auto in_range = [&](double d) {
      if (!e.range.contains(d)) bad();
    };
    if (v.is_null()) {
      if (!e.has(kNullable)) bad();
      return v;
    }
    switch (e.type) {
      case ValueType::boolean:
        if (!v.is_boolean()) bad();
        return v;
      case ValueType::integer: {
        if (!v.is_number()) bad();
        const double d = v.get<double>();
        if (v.is_number_float() && (d != std::floor(d) || std::fabs(d) > 9.0e18)) bad();
        if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) bad();
        in_range(d);
        return v.is_number_float() ? json(int64_t(d)) : json(v.get<int64_t>());
      }
      case ValueType::number:
        if (!v.is_number()) bad();
        in_range(v.get<double>());
        return json(v.get<double>());
      case ValueType::string: return check_choice(e, v, what);
      case ValueType::number_pair: {
        if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number()) bad();
        in_range(v[0].get<double>());
        in_range(v[1].get<double>());
        return json::array({v[0].get<double>(), v[1].get<double>()});
      }
      case ValueType::object: bad();
    }
    return v;
  }

  json check_choice(const SchemaEntry& e, const json& v, const std::string& what) const {
    if (!v.is_string()) fail(what + ": expected " + expectation(e) + ", got " + describe_json(v));
    const std::string s = v.get<std::string>();
    if (e.choices.empty()) return v;
    const bool nocase = e.has(kCaseInsensitive);
    std::vector<std::string> folded;  // the hint ignores case even where the value may not
    for (const auto& c : e.choices) {
      if (c == s || (nocase && lower(c) == lower(s))) return c;
      folded.push_back(lower(c));
    }
    const std::string near = closest_match(lower(s), folded);
    std::string msg = what + ": unknown value \"" + s + "\"; expected one of " + join(e.choices, ", ");
    if (!near.empty()) {
      const auto i = std::find(folded.begin(), folded.end(), near) - folded.begin();
      msg += " (did you mean \"" + e.choices[size_t(i)] + "\"?)";
    }
    fail(msg);
  }

  void collect_settings() {
    for (const auto& e : config_schema()) {
      if (e.type == ValueType::object) continue;
      const bool params = !variant_selector(e.key).empty();
      if (params && (!variants_.count(variant_selector(e.key)) || !applies(e))) continue;
      const auto it = given_.find(e.key);
      if (it != given_.end()) {
        settings_.push_back({e.key, it->second.value, it->second.source});
        continue;
      }
      if (e.has(kRequired) && section_present(e.key)) {
        if (!params) fail(e.key + " is required: choose one of " + join(e.choices, ", "));
        const std::string selector = variant_selector(e.key);
        fail(e.key + " is required when " + selector + " is " + variants_.at(selector));
      }
      settings_.push_back({e.key, e.default_value, ValueSource::default_value});
    }
  }

  Config build() const {
    Config c{};
    // Defaults first, so fields of keys that do not apply (another optimizer's) hold them too.
    for (const auto& e : config_schema()) {
      if (e.assign && !e.default_value.is_null()) e.assign(c, e.default_value);
    }
    for (const auto& s : settings_) {
      const SchemaEntry& e = *find_schema_entry(s.key);
      if (!s.value.is_null() || e.has(kNullable) || e.type == ValueType::string) e.assign(c, s.value);
    }
    c.origin = origin_;
    c.world_size = options_.world_size;
    c.settings = settings_;
    return c;
  }

  struct Given {
    json value;
    ValueSource source;
  };
  const json& doc_;
  ValueSource source_;
  const ConfigOptions& options_;
  std::string origin_;
  std::map<std::string, std::string> variants_;  // "optimizer.type" -> "Adam"
  std::map<std::string, Given> given_;
  std::set<std::string> unresolved_auto_;
  std::vector<ConfigSetting> settings_;
};

ConfigFormat format_of_path(const std::string& path) {
  auto ends = [&](const std::string& ext) { return lower(path).ends_with(ext); };
  if (ends(".json")) return ConfigFormat::json;
  if (ends(".yaml") || ends(".yml")) return ConfigFormat::yaml;
  return ConfigFormat::detect;
}

}  // namespace

const char* value_source_name(ValueSource source) {
  switch (source) {
    case ValueSource::default_value: return "default";
    case ValueSource::config: return "config";
    case ValueSource::app: return "app";
    case ValueSource::auto_value: return "auto";
    case ValueSource::derived: return "derived";
    case ValueSource::world: return "world";
  }
  return "?";
}

void add_hidden_size_auto_values(ConfigOptions& options, int64_t hidden_size) {
  ZT_CHECK(hidden_size >= 1, "add_hidden_size_auto_values: expected a hidden size >= 1, got ",
           hidden_size);
  const int64_t h = hidden_size;
  options.auto_values.try_emplace("zero_optimization.reduce_bucket_size", h * h);
  options.auto_values.try_emplace("zero_optimization.stage3_prefetch_bucket_size", int64_t(0.9 * double(h * h)));
  options.auto_values.try_emplace("zero_optimization.stage3_param_persistence_threshold", 10 * h);
}

const ConfigSetting& Config::setting(const std::string& key) const {
  for (const auto& s : settings) {
    if (s.key == key) return s;
  }
  ZT_FAIL(origin, ": no setting '", key, "' in this config (",
          find_schema_entry(key) ? "it does not apply to it" : "not a config key", ")");
}

std::string Config::describe() const {
  size_t width = 0;
  for (const auto& s : settings) width = std::max(width, s.key.size());
  std::ostringstream os;
  for (const auto& s : settings) {
    os << s.key << std::string(width - s.key.size(), ' ') << " = " << s.value.dump() << "  ("
       << value_source_name(s.source) << ")\n";
  }
  return os.str();
}

Config parse_config(const std::string& text, ConfigFormat format, const ConfigOptions& options,
                    const std::string& origin) {
  const json doc = parse_config_document(text, format, origin);
  return Resolver(doc, ValueSource::config, options, origin).run();
}

Config parse_config(const std::string& text, ConfigFormat format, int64_t world_size) {
  return parse_config(text, format, ConfigOptions{world_size, {}});
}

Config load_config(const std::string& path, const ConfigOptions& options) {
  std::ifstream in(path, std::ios::binary);
  ZT_CHECK(in.good(), "cannot open config file '", path, "' (expected a readable JSON or YAML file)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), format_of_path(path), options, path);
}

Config load_config(const std::string& path, int64_t world_size) {
  return load_config(path, ConfigOptions{world_size, {}});
}

Config config_from_app_defaults(const json& app_defaults, const ConfigOptions& options) {
  const std::string origin = "<app defaults>";
  ZT_CHECK(app_defaults.is_object(), origin, ": expected an object of settings, got ",
           app_defaults.dump());
  return Resolver(app_defaults, ValueSource::app, options, origin).run();
}

}  // namespace zt
