// The memory formulas zt-membench compares with what it measures (--estimate, the per-stage
// tables and --max-model share them): ZeRO's model states per rank, ZeRO-Offload's split of them
// between device, host and disk, the GPT parameter count and Megatron's activation count.
#pragma once
#include <cstdint>
#include <string>

namespace zt::membench {

// Predicted bytes per rank, by where they live.
struct Prediction {
  double device = 0, host = 0, disk = 0;
  double model_state() const { return device + host; }
};

// Adam model states per rank without offload: 16 Psi at stage 0, the ZeRO paper's shares at
// stages 1-3 (bf16 with fp32 masters, or f32).
double predicted_model_state(int stage, bool bf16, double psi, int ranks);

// With offload "none", "cpu" or "nvme" (Note [zt-membench measurements] in main.cpp):
// sub_group_size and buffer_count shape nvme's swap buffers and file slots.
Prediction predict(int stage, const std::string& offload, bool bf16, double psi, int ranks, int64_t sub_group_size,
                   int64_t buffer_count);

// Host staging of ZeRO-2's streamed gradients under offload (communication, not model states):
// stream_layout()'s slots (zero/offload_grad_stream.h) for a shard of `shard` elements and
// buckets of reduce_bucket_size / N (at most the shard), k bytes per element.
double stream_staging_bytes(double shard, double reduce_bucket_size, int ranks, double k);

// Parameters of nn/gpt.h's GPT (biases, tied head): V C + T C + L (12 C^2 + 13 C) + 2 C.
double gpt_parameters(double vocab, double context, double depth, double width);

// Activation bytes without recompute: Megatron's per-layer T B C (34 + 5 H T / C) for 16-bit
// activations (Korthikanti et al., 2022), doubled for f32; it counts dropout masks, so a model
// without dropout keeps somewhat less.
double gpt_activation_bytes(double depth, double context, double batch, double width, double heads, bool bf16);

}  // namespace zt::membench
