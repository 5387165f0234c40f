// The ZeRO stage 1-3 sharded optimizer a config asks for (zero_optimization: stage, bucket sizes,
// the stage-3 knobs, offload_optimizer with sub_group_size, offload_param), so the engine only
// decides when to build it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "parallel/communicator.h"
#include "runtime/config.h"
#include "zero/sharded_optimizer.h"

namespace zt {

// Null at stage 0. `comm`: the data-parallel communicator of the model's device (null: a world of
// one); `originals` and `param_groups` as ShardedOptimizer takes them. Errors name the config key
// when a setting cannot be honoured (offload_param on nvme).
std::unique_ptr<ShardedOptimizer> build_sharded_optimizer(const Config& config, std::shared_ptr<Module> model,
                                                          std::shared_ptr<Communicator> comm,
                                                          std::vector<Tensor> originals,
                                                          std::vector<std::vector<std::string>> param_groups);

}  // namespace zt
