// The ZeRO optimizer a config asks for (zero_optimization: stage, bucket sizes, the stage-3
// knobs, offload_optimizer with sub_group_size, offload_param), so the engine only decides when
// to build it. Stage 0 is the same flat-buffer optimizer with nothing partitioned
// (ShardedOptions::partition): one fused step over the whole model instead of a step per tensor.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "parallel/communicator.h"
#include "runtime/config.h"
#include "zero/sharded_optimizer.h"

namespace zt {

// Whether the engine steps `model` with the ZeRO optimizer: at stages 1-3 always; at stage 0 when
// the flat buffer can hold the trainable parameters (one dtype, one device), else the engine keeps
// one master per tensor (zero/mixed_precision.h) and DataParallel.
bool uses_zero_optimizer(const Config& config, const Module& model);

// Null when !uses_zero_optimizer. `comm`: the data-parallel communicator of the model's device
// (null: a world of one); `originals` and `param_groups` as ShardedOptimizer takes them. Errors
// name the config key when a setting cannot be honoured (offload_param on nvme).
std::unique_ptr<ShardedOptimizer> build_sharded_optimizer(const Config& config, std::shared_ptr<Module> model,
                                                          std::shared_ptr<Communicator> comm,
                                                          std::vector<Tensor> originals,
                                                          std::vector<std::vector<std::string>> param_groups);

}  // namespace zt
