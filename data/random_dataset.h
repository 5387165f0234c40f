// RandomDataset: DeepSpeed's classic synthetic example (normal features, 10-class labels), with
// LEARNABLE labels: label = argmax of a fixed random linear map of the features, so a model can
// drive the loss down and a broken training loop shows (random labels would not).
#pragma once
#include <cstdint>

#include "data/dataset.h"

namespace zt {

struct RandomDatasetOptions {
  int64_t num_samples = 1024;
  int64_t num_features = 32;
  int64_t num_classes = 10;
  uint64_t seed = 0;
};

// inputs f32 (N, F) ~ N(0, 1); targets i64 (N) = argmax_c (inputs @ label_map)[:, c].
class RandomDataset : public TensorDataset {
 public:
  explicit RandomDataset(RandomDatasetOptions options = {});
  // The fixed map the labels come from: f32 (F, C), entries ~ N(0, 1).
  const Tensor& label_map() const { return label_map_; }
  const RandomDatasetOptions& options() const { return options_; }

 private:
  struct Parts {
    Tensor inputs, targets, label_map;
  };
  static Parts generate(const RandomDatasetOptions& options);
  RandomDataset(RandomDatasetOptions options, Parts parts);
  RandomDatasetOptions options_;
  Tensor label_map_;  // (F, C)
};

}  // namespace zt
