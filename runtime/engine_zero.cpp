// Builds the ZeRO stage 1-3 optimizer from the config (runtime/engine_zero.h).
#include "runtime/engine_zero.h"

#include <optional>

#include "autograd/autograd.h"
#include "core/allocator.h"
#include "core/error.h"
#include "runtime/builders.h"
#include "zero/zero_optimizer.h"
#include "zero/zero_stage3.h"

namespace zt {

namespace {

ShardedOptions sharded_options(const ZeroConfig& z, std::vector<std::vector<std::string>> param_groups) {
  ShardedOptions o;
  o.param_groups = std::move(param_groups);
  const OffloadOptimizerConfig& off = z.offload_optimizer;
  o.offload_optimizer = off.enabled();
  if (!o.offload_optimizer) return o;
  o.offload.device = parse_offload_device(off.device);
  o.offload.nvme_path = off.nvme_path;
  o.offload.pin_memory = off.pin_memory;
  o.offload.pinned_allocator = off.pin_memory ? pinned_host_allocator() : nullptr;  // null without a GPU
  o.offload.buffer_count = int(off.buffer_count);
  o.offload.sub_group_size = z.sub_group_size;
  return o;
}

}  // namespace

bool uses_zero_optimizer(const Config& config, const Module& model) {
  if (config.zero_optimization.stage >= 1) return true;
  std::optional<Tensor> first;
  for (const Tensor& p : model.parameters()) {
    if (!requires_grad(p)) continue;
    if (first && (p.dtype() != first->dtype() || p.device() != first->device())) return false;
    if (!first) first = p;
  }
  return first.has_value();
}

std::unique_ptr<ShardedOptimizer> build_sharded_optimizer(const Config& config, std::shared_ptr<Module> model,
                                                          std::shared_ptr<Communicator> comm,
                                                          std::vector<Tensor> originals,
                                                          std::vector<std::vector<std::string>> param_groups) {
  const ZeroConfig& z = config.zero_optimization;
  if (!uses_zero_optimizer(config, *model)) return nullptr;
  if (z.stage != 3) {
    ZeroOptions zo;
    zo.stage = int(z.stage);
    zo.reduce_bucket_size = z.reduce_bucket_size;
    zo.sharded = sharded_options(z, std::move(param_groups));
    return std::make_unique<ZeroOptimizer>(std::move(model), std::move(comm), zo, build_loss_scaler(config),
                                           std::move(originals));
  }
  Stage3Options so;
  so.reduce_bucket_size = z.reduce_bucket_size;
  so.prefetch_bucket_size = z.stage3_prefetch_bucket_size;
  so.max_live_parameters = z.stage3_max_live_parameters;
  so.max_reuse_distance = z.stage3_max_reuse_distance;
  so.param_persistence_threshold = z.stage3_param_persistence_threshold;
  so.sharded = sharded_options(z, std::move(param_groups));
  const OffloadParamConfig& param = z.offload_param;
  so.offload_param = param.enabled();
  so.param_pinned_allocator = param.pin_memory ? pinned_host_allocator() : nullptr;
  if (param.device == "nvme") {
    so.param_nvme_path = param.nvme_path;
    so.param_buffer_count = int(param.buffer_count);
    so.param_buffer_size = param.buffer_size;
  }
  return std::make_unique<ZeroStage3Optimizer>(std::move(model), std::move(comm), so, build_loss_scaler(config),
                                               std::move(originals));
}

}  // namespace zt
