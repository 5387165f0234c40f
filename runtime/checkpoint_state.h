// JSON codecs for the standard parts of CheckpointState::scalars (RNG state, data-loader
// position, learning-rate schedule), so the engine and tools write and read them alike and a
// damaged value is reported by name instead of as a JSON type error.
#pragma once
#include <nlohmann/json.hpp>

#include "core/generator.h"
#include "data/data_loader.h"
#include "optim/lr_schedule.h"

namespace zt {

nlohmann::json generator_to_json(const Generator& g);  // {"seed": u64, "offset": u64}
void generator_from_json(Generator& g, const nlohmann::json& j);
nlohmann::json loader_position_to_json(const LoaderPosition& p);  // {"epoch", "batch"}
LoaderPosition loader_position_from_json(const nlohmann::json& j);
nlohmann::json lr_schedule_to_json(const LRScheduleState& s);  // {"last_step"}
LRScheduleState lr_schedule_from_json(const nlohmann::json& j);

}  // namespace zt
