// The config rules that span several keys: DeepSpeed's batch-size rule (any two of the three
// batch keys imply the third), defaults that depend on other keys, and conflicting settings.
// They work on the resolved settings, before the typed Config is filled.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace zt {

// The resolved settings of one config, looked up by dotted key; errors are prefixed with the
// config's origin.
class SettingTable {
 public:
  SettingTable(std::vector<ConfigSetting>& settings, std::string origin, int64_t world_size)
      : settings_(settings), origin_(std::move(origin)), world_size_(world_size) {}

  const ConfigSetting* find(const std::string& key) const;
  const nlohmann::json& value(const std::string& key) const;  // null when the key does not apply
  bool flag(const std::string& key) const;                      // false when null
  int64_t integer(const std::string& key) const;
  double number(const std::string& key) const;
  std::string text(const std::string& key) const;               // "" when null
  void set(const std::string& key, nlohmann::json value, ValueSource source);
  // "train_batch_size 64 (config)": a key, its value and where the value came from.
  std::string term(const std::string& key) const;
  int64_t world_size() const { return world_size_; }
  [[noreturn]] void fail(const std::string& message) const;

 private:
  std::vector<ConfigSetting>& settings_;
  std::string origin_;
  int64_t world_size_;
};

bool is_batch_key(const std::string& key);
// Fills the missing batch keys or fails showing every term and where it came from.
// `unresolved_auto` holds the batch keys given as "auto" that the program left to derivation.
void resolve_batch_sizes(SettingTable& table, const std::set<std::string>& unresolved_auto);
// Defaults that depend on other keys (overlap_comm is on by default at ZeRO stage 3).
void apply_derived_defaults(SettingTable& table);
// Settings that contradict each other; the error names both keys.
void check_conflicts(const SettingTable& table);

}  // namespace zt
