// zt-membench --max-model (issue 9): the largest GPT that trains on this machine in each
// optimizer-offload mode, found by training it, beside the ZeRO formulas' prediction.
//
// Note [zt-membench max model]
// The family: --depth layers, heads of 64 (width = 64 x heads), --context, --vocab, bf16 or f32,
// Adam, ZeRO --max-model-stage (default 2) over a world of one, --batch sequences. For each mode
// of --offload (none, cpu, nvme; the last two need stage >= 1) the search trains the model with
// 1 head for --max-model-steps steps (default 3), doubles the heads while that succeeds, then
// bisects between the last success and the first failure. A trial fails when an allocation runs
// out of memory (the device allocator's error; on the CPU a limit set with ZT_HOST_MEMORY_LIMIT
// stands in for a smaller machine); any other error stops the search. Everything a trial
// allocated is freed before the next.
// The prediction: the largest width whose model states and activations fit the device memory
// (--device-memory, or the allocator's limit), with model states of 16 bytes per parameter
// without offload and 2k with it (k = 2 bytes bf16, 4 f32: the weights and gradients that stay),
// activations as --estimate counts them (Megatron's per-layer formula) plus the logits and their
// gradient (B T V x 8 bytes); with cpu offload the host must also hold 16 bytes per parameter
// (--host-memory, or the host allocator's limit, or the machine's RAM); with nvme it holds the
// swap buffers, B x 12 x min(G, Psi) bytes (G = --sub-group-size, B = min(--buffer-count, the
// sub-groups)), and the fp32 gradient (4 Psi): with the default G of 1e9 one sub-group is the
// whole state, so a small G is what lets nvme train more than cpu. On the CPU device and host are
// one memory: the offloaded state counts against the device's.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"

namespace zt::membench {

struct MaxModelOptions {
  Device device = Device::cpu();
  std::string dtype = "bf16";
  int64_t depth = 2, context = 64, vocab = 256, batch = 2, steps = 3;
  int64_t stage = 2;
  int64_t max_heads = 1024;  // the search stops here even if it still fits
  std::vector<std::string> offloads{"none"};
  std::string nvme_path;
  int64_t sub_group_size = 1000000000;  // zero_optimization.sub_group_size of the offloaded trials
  int64_t buffer_count = 4;             // offload_optimizer.buffer_count (nvme swap buffers)
  int64_t device_memory = 0;  // bytes for the prediction (0: the device allocator's limit, if any)
  int64_t host_memory = 0;    // bytes (0: the host allocator's limit, else physical memory)
};

struct MaxModelResult {
  std::string offload;
  int64_t heads = 0;          // largest that trained (0: not even one head)
  double params = 0;          // its parameter count
  double peak_bytes = 0;      // device allocator peak of its trial
  int64_t trials = 0;
  int64_t predicted_heads = 0;  // largest the formula says fits (0: unknown device memory)
  double predicted_params = 0;
};

// GPT parameters of the family at `heads` (nn/gpt.h: biases, tied head).
double family_parameters(const MaxModelOptions& o, int64_t heads);

std::vector<MaxModelResult> search_max_model(const MaxModelOptions& o);
void print_max_model(const MaxModelOptions& o, const std::vector<MaxModelResult>& results);

}  // namespace zt::membench
