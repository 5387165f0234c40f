// Engine::save_checkpoint / load_checkpoint: gathers the state of the parts the engine
// orchestrates into a CheckpointState and back; the files themselves are runtime/checkpoint.h's.
#include <cmath>

#include "core/error.h"
#include "core/generator.h"
#include "core/ops.h"
#include "runtime/checkpoint.h"
#include "runtime/engine.h"
#include "runtime/zero_checkpoint.h"

namespace zt {

namespace {

nlohmann::json scaler_json(const LossScalerState& s) {
  return {{"scale", s.scale}, {"iteration", s.iteration}, {"last_overflow_iteration", s.last_overflow_iteration},
          {"hysteresis_left", s.hysteresis_left}};
}

LossScalerState scaler_state(const nlohmann::json& j) {
  LossScalerState s;
  s.scale = j.at("scale").get<double>();
  s.iteration = j.at("iteration").get<int64_t>();
  s.last_overflow_iteration = j.at("last_overflow_iteration").get<int64_t>();
  s.hysteresis_left = j.at("hysteresis_left").get<int64_t>();
  return s;
}

}  // namespace

TensorDict Engine::master_state() const {
  TensorDict out;
  const auto named = model_->named_parameters();
  const auto masters = precision_->master_parameters();
  for (size_t i = 0; i < named.size(); ++i)
    if (!masters[i].same_impl(named[i].second)) out.set(named[i].first, masters[i]);
  return out;
}

void Engine::save_checkpoint(const std::string& dir, const std::string& tag, const nlohmann::json& client_state) {
  CheckpointState state;
  if (sharded_) {  // each rank writes its shard (runtime/zero_checkpoint.h)
    state.model = sharded_->model_state(config_.zero_optimization.stage3_gather_16bit_weights_on_model_save);
    add_zero_fragments(*sharded_, *optimizer_, state);
  } else {
    state.model = model_->state_dict();
    state.master = master_state();
    state.optimizer = optimizer_->state_dict();
  }
  const Generator& rng = default_generator();
  state.scalars = {{"global_step", global_step_},
                   {"global_samples", global_samples_},
                   {"micro_step", micro_step_},
                   {"skipped_steps", skipped_steps_},
                   {"loss_scaler", scaler_json(precision_->loss_scaler().state_dict())},
                   {"rng", {{"seed", rng.seed()}, {"offset", rng.offset()}}}};
  if (scheduler_) state.scalars["scheduler_last_step"] = scheduler_->last_step();
  state.client_state = client_state;
  const int rank = bootstrap_ ? bootstrap_->rank() : 0, world = bootstrap_ ? bootstrap_->size() : 1;
  save_checkpoint_files(dir, tag, rank, world, state, bootstrap_.get());
}

nlohmann::json Engine::load_checkpoint(const std::string& dir, const std::string& tag) {
  const int rank = bootstrap_ ? bootstrap_->rank() : 0, world = bootstrap_ ? bootstrap_->size() : 1;
  const TensorDict expected = model_->state_dict();
  CheckpointState state = load_checkpoint_files(dir, tag, rank, world, bootstrap_.get(), &expected);
  if (sharded_) {
    load_zero_state(*sharded_, state, *optimizer_);
  } else {
    model_->load_state_dict(state.model);
    const TensorDict masters = master_state();
    for (const auto& [name, master] : masters) {
      const Tensor* saved = state.master.find(name);
      // A checkpoint without masters (saved in f32) restores them from the model's values.
      raw::copy_(master, saved ? *saved : state.model.at(name));
    }
    optimizer_->load_state_dict(state.optimizer);
  }
  const nlohmann::json& s = state.scalars;
  try {
    global_step_ = s.at("global_step").get<int64_t>();
    global_samples_ = s.at("global_samples").get<int64_t>();
    micro_step_ = s.at("micro_step").get<int64_t>();
    skipped_steps_ = s.at("skipped_steps").get<int64_t>();
    LossScaler& scaler = precision_->loss_scaler();
    const LossScalerState saved_scaler = scaler_state(s.at("loss_scaler"));
    // A scaler of another kind (fp16 saved, bf16 loading) starts afresh.
    if (scaler.dynamic() || saved_scaler.scale == scaler.scale()) scaler.load_state_dict(saved_scaler);
    default_generator().set_state(s.at("rng").at("seed").get<uint64_t>(), s.at("rng").at("offset").get<uint64_t>());
    if (scheduler_) {
      ZT_CHECK(s.contains("scheduler_last_step"), "load_checkpoint: this engine has a ", config_.scheduler.type,
               " schedule but the checkpoint in ", dir, " saved none");
      scheduler_->load_state_dict({s.at("scheduler_last_step").get<int64_t>()});
    }
  } catch (const nlohmann::json::exception& e) {
    ZT_FAIL("load_checkpoint: the engine state in ", dir, " is incomplete or malformed: ", e.what());
  }
  precision_->zero_grad();
  step_applied_ = false;
  return state.client_state;
}

}  // namespace zt
