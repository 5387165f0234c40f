// The config schema: one table of every key zerotrain accepts (dotted path, type, default,
// allowed values, help text, the Config field it fills). Parsing, defaults, validation and the
// generated reference page docs/config.md are all driven by this table.
#pragma once
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/config.h"

namespace zt {

enum class ValueType { boolean, integer, number, string, number_pair, object };

// Inclusive bounds unless marked exclusive; numbers and integers only.
struct ValueRange {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  bool max_exclusive = false;

  bool contains(double v) const;
  std::string describe() const;  // ">= 1", "> 0", "0 to 3", "" when unbounded
};

enum SchemaFlags : unsigned {
  kAcceptsAuto = 1u << 0,      // "auto" is allowed (DeepSpeed/HF accept it here)
  kNullable = 1u << 1,         // null is a valid value (and the default)
  kRequired = 1u << 2,         // must be given when its section is present (and variant matches)
  kCaseInsensitive = 1u << 3,  // choices compare case-insensitively (DeepSpeed's optimizer names)
};

struct SchemaEntry {
  std::string key;
  ValueType type;
  nlohmann::json default_value;  // null: no default (derived, required or nullable)
  ValueRange range = {};
  std::vector<std::string> choices = {};  // strings only; the canonical spelling
  unsigned flags = 0;
  // Under "<section>.params.": the "<section>.type" values this key belongs to (empty: all).
  std::vector<std::string> variants = {};
  std::string help = {};
  std::string default_doc = {};  // replaces the default in the docs when non-empty
  void (*assign)(Config&, const nlohmann::json&) = nullptr;  // null for objects

  bool has(unsigned flag) const { return (flags & flag) != 0; }
};

// The whole schema, in documentation order (parents before their children).
const std::vector<SchemaEntry>& config_schema();
// The entry of a dotted key, or nullptr.
const SchemaEntry* find_schema_entry(const std::string& key);
// The keys directly under `parent` ("" for the top level), e.g. to suggest a misspelt key.
std::vector<std::string> schema_children(const std::string& parent);

const char* value_type_name(ValueType type);  // "boolean", "integer", ...
// For keys under "<section>.params.": "<section>.type"; else "".
std::string variant_selector(const std::string& key);

// docs/config.md, generated from the schema.
std::string config_reference_markdown();

}  // namespace zt
