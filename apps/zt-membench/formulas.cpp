// zt-membench's memory formulas (formulas.h).
#include "apps/zt-membench/formulas.h"

#include <algorithm>
#include <cmath>

#include "zero/offload_grad_stream.h"

namespace zt::membench {

double predicted_model_state(int stage, bool bf16, double psi, int ranks) {
  const double n = ranks;
  if (stage == 0) return 16 * psi;
  if (stage == 3) return 16 * psi / n;
  if (bf16) return stage == 1 ? 4 * psi + 12 * psi / n : 2 * psi + 14 * psi / n;
  return stage == 1 ? 8 * psi + 8 * psi / n : 4 * psi + 12 * psi / n;
}

Prediction predict(int stage, const std::string& offload, bool bf16, double psi, int ranks, int64_t sub_group_size,
                   int64_t buffer_count) {
  if (offload == "none") return {predicted_model_state(stage, bf16, psi, ranks), 0, 0};
  const double n = ranks, k = bf16 ? 2 : 4, shard = psi / n;
  Prediction p;
  // Stage 2 streams its gradients to the host every micro-step: the device keeps the parameters.
  p.device = stage == 1 ? 2 * k * psi : stage == 2 ? k * psi : 2 * k * shard;
  if (offload == "cpu") {
    p.host = 12 * shard + k * shard;
    return p;
  }
  const double group = std::min(double(sub_group_size), shard);
  const double buffers = std::min(double(buffer_count), std::ceil(shard / group));
  p.host = buffers * 12 * group + k * shard;
  p.disk = 12 * group * std::ceil(shard / group);
  return p;
}

double stream_staging_bytes(double shard, double reduce_bucket_size, int ranks, double k) {
  const int64_t elements = std::max<int64_t>(1, int64_t(std::ceil(shard)));
  const int64_t configured = std::min(elements, std::max<int64_t>(16, int64_t(reduce_bucket_size) / ranks));
  const StreamLayout l = stream_layout(elements, configured);
  return double(l.slots) * double(l.bucket) * k;
}

double gpt_parameters(double vocab, double context, double depth, double width) {
  return vocab * width + context * width + depth * (12 * width * width + 13 * width) + 2 * width;
}

double gpt_activation_bytes(double depth, double context, double batch, double width, double heads, bool bf16) {
  return depth * context * batch * width * (34 + 5 * heads * context / width) * (bf16 ? 1 : 2);
}

}  // namespace zt::membench
