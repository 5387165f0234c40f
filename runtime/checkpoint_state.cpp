// JSON codecs for the standard checkpoint scalars (see checkpoint_state.h).
#include "runtime/checkpoint_state.h"

#include "core/error.h"

namespace zt {
namespace {

// The integer under `key` of j; an error naming what and key when absent or not an integer.
template <typename T>
T integer_field(const nlohmann::json& j, const char* what, const char* key) {
  ZT_CHECK(j.is_object() && j.contains(key) && j[key].is_number_integer(), "checkpoint ", what,
           " state needs an integer \"", key, "\", found ", j.dump());
  if constexpr (std::is_unsigned_v<T>) {
    ZT_CHECK(j[key].is_number_unsigned() || j[key].get<int64_t>() >= 0, "checkpoint ", what,
             " state: \"", key, "\" must not be negative, found ", j[key].dump());
  }
  return j[key].get<T>();
}

}  // namespace

nlohmann::json generator_to_json(const Generator& g) {
  return {{"seed", g.seed()}, {"offset", g.offset()}};
}

void generator_from_json(Generator& g, const nlohmann::json& j) {
  g.set_state(integer_field<uint64_t>(j, "RNG", "seed"), integer_field<uint64_t>(j, "RNG", "offset"));
}

nlohmann::json loader_position_to_json(const LoaderPosition& p) {
  return {{"epoch", p.epoch}, {"batch", p.batch}};
}

LoaderPosition loader_position_from_json(const nlohmann::json& j) {
  LoaderPosition p;
  p.epoch = integer_field<int64_t>(j, "data-loader", "epoch");
  p.batch = integer_field<int64_t>(j, "data-loader", "batch");
  return p;
}

nlohmann::json lr_schedule_to_json(const LRScheduleState& s) { return {{"last_step", s.last_step}}; }

LRScheduleState lr_schedule_from_json(const nlohmann::json& j) {
  return {integer_field<int64_t>(j, "scheduler", "last_step")};
}

}  // namespace zt
