// zt-membench --max-model (issue 9): the largest GPT that trains on this machine in each
// optimizer-offload mode, found by training it, beside the ZeRO formulas' prediction.
//
// Note [zt-membench max model]
// The family: --depth layers, heads of 64 (width = 64 x heads), --context, --vocab, bf16 or f32,
// Adam, ZeRO --max-model-stage (default 2) over a world of one, --batch sequences. For each mode
// of --offload (none, cpu, nvme; the last two need stage >= 1) a trial builds the model with h
// heads and trains it --max-model-steps steps (default 3).
// The search (size_search.h) looks for the largest h in [--min-heads, --max-heads] that trains:
// anchored at the prediction below, it tries the predicted h, then gallops up (h + 1, + 2, + 4,
// ...) while trials train or down (h - 1, - 2, - 4, ...) while they fail, and bisects the last
// gap, so a prediction off by d heads costs about 2 log2(d) + 2 trials. Without a prediction
// (unknown device memory) or with --max-model-search doubling it tries --min-heads, doubles
// while that trains, and bisects. The trials and their count are printed.
// A trial fails ("does not fit") when an allocation runs out of memory (the device allocator's
// error, or the host limit's) or the NVMe state file finds no space on its disk ("no space left
// on", Note [NVMe swapper]); any other error stops the search.
// Fail fast, never thrash: the search sets the host memory limit (Note [Host memory limit] in
// core/allocator.h), which counts pageable and page-locked host allocations together, to
// --host-memory, else ZT_HOST_MEMORY_LIMIT, else 90% of the machine's RAM; an oversized trial
// then fails at its first allocation past it instead of swapping or page-locking the machine
// to a halt. Everything a trial allocated is freed and every allocator's cache emptied (the
// device's, the CPU's, the pinned one's) before the next, so a trial starts from what the
// system has, not from cached blocks of the one before.
// The prediction: the largest h whose device, host and disk needs fit --device-memory (default
// the allocator's limit: on a GPU pass it, e.g. 139.8G), the host limit above and, for nvme, the
// free space of --nvme-path's file system (statvfs, printed). Per parameter Psi, k = 2 bytes
// bf16, 4 f32 (formulas.h):
//   device: the ZeRO model states, 16 Psi without offload and 2k Psi with it, plus the larger of
//           the activations as --estimate counts them (Megatron's per-layer formula) with the
//           logits and their gradient (B T V x 8 bytes); AdamW reads the bf16 gradient with its
//           unscale and clip factors, so the step adds no fp32 gradient.
//   host:   cpu offload 12 Psi + k Psi (fp32 master, moments, the gradient in the compute
//           dtype); nvme the swap buffers, B x 12 x min(G, Psi) bytes (G = --sub-group-size,
//           B = min(--buffer-count, the sub-groups)), the gradient (k Psi) and, while the engine
//           starts, a host copy of the fp32
//           master (4 Psi); with a GPU also the host copy of the updated bf16/f32 weights (k Psi)
//           and, at least, the f32 model built on the host before it moves to the device (4 Psi).
//           With the default G of 1e9 one sub-group is the whole state, so a small G is what
//           lets nvme train more than cpu.
//   disk:   nvme: 12 bytes per parameter (each sub-group in a whole slot).
// On the CPU device and host are one memory: the host's needs count against the device's.
//
// Several ranks (--max-model-ranks N, e.g. stage 3 over two GPUs): a rank that runs out of
// memory while the others wait in a collective would hang the job, so the search never runs a
// trial in its own process. Each trial is a job of its own, started by --max-model-launcher
// (default "mpirun -np N") on this program with --max-model-trial: every rank trains the size
// on its own device (the GPU of its local rank) under its share of the host limit (the limit / N),
// writes its verdict to a file and exits, 3 when it did not fit; the launcher then ends the job's
// other ranks. The search reads the verdicts: a rank out of memory (device, host or disk) means
// the size does not fit, every rank trained means it does, and anything else (no verdicts, a
// launcher that failed) stops the search with the job's output. The prediction is per rank, with
// the host's needs of all N ranks together against the host limit.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"

namespace zt {
class Communicator;
}

namespace zt::membench {

struct MaxModelOptions {
  Device device = Device::cpu();
  std::string dtype = "bf16";
  int64_t depth = 2, context = 64, vocab = 256, batch = 2, steps = 3;
  int64_t stage = 2;
  int64_t min_heads = 1, max_heads = 1024;  // the search's range
  bool anchored = true;  // start at the prediction (false, or none: double from min_heads)
  std::vector<std::string> offloads{"none"};
  std::string nvme_path;
  int64_t sub_group_size = 1000000000;  // zero_optimization.sub_group_size of the offloaded trials
  int64_t buffer_count = 4;             // offload_optimizer.buffer_count (nvme swap buffers)
  int64_t device_memory = 0;  // bytes for the prediction (0: the device allocator's limit, if any)
  int64_t host_memory = 0;    // host limit of the trials and the prediction (0: ZT_HOST_MEMORY_LIMIT, else 90% of RAM)
  int64_t ranks = 1;          // ranks of each trial (> 1: each trial is a job of its own)
  std::string launcher;       // starts a job of `ranks` processes (empty: "mpirun -np <ranks>")
};

struct MaxModelResult {
  std::string offload;
  int64_t heads = 0;          // largest that trained (0: none in the range)
  double params = 0;          // its parameter count
  double peak_bytes = 0;      // device allocator peak of its trial
  int64_t trials = 0;
  int64_t first_failure = 0;  // smallest size that did not fit (0: none failed)
  std::string failure;        // why: "out of memory", "out of host memory", "out of disk"
  int64_t predicted_heads = 0;  // largest the formula says fits (0: unknown device memory, or none)
  double predicted_params = 0;
  std::string predicted_bound;  // what stops the prediction: "device", "host", "disk" or "--max-heads"
};

// GPT parameters of the family at `heads` (nn/gpt.h: biases, tied head).
double family_parameters(const MaxModelOptions& o, int64_t heads);

std::vector<MaxModelResult> search_max_model(const MaxModelOptions& o);

// One rank of a trial job (--max-model-trial): trains `heads` on this rank of `comm` under a
// host limit of o.host_memory bytes (the search passes each rank its share), writes the verdict to
// "<verdict>.<rank>" and returns the exit status (0 trained, 3 did not fit); other errors throw.
int run_trial_rank(const MaxModelOptions& o, const std::string& offload, int64_t heads,
                   const std::shared_ptr<Communicator>& comm, const std::string& verdict);
void print_max_model(const MaxModelOptions& o, const std::vector<MaxModelResult>& results);

}  // namespace zt::membench
