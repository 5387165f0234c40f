// Dataset: indexable (input, target) samples, and TensorDataset over two whole tensors.
// Batches are gathered with one index_select per tensor, not one copy per sample.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace zt {

// One sample: input (...) and target (scalar or (...)).
struct Example {
  Tensor input;
  Tensor target;
};

// A batch: samples stacked along a new leading dim, input (B, ...) and target (B, ...).
struct Batch {
  Tensor input;
  Tensor target;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Example get(int64_t index) const = 0;
  // The samples at `indices`, stacked along dim 0. The default stacks get() results; datasets
  // backed by whole tensors override it with a single gather.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const;
};

// inputs (N, ...) and targets (N, ...) share their first dim; sample i is row i of each.
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor inputs, Tensor targets);
  int64_t size() const override { return inputs_.size(0); }
  Example get(int64_t index) const override;
  Batch get_batch(const std::vector<int64_t>& indices) const override;

  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_;   // (N, ...)
  Tensor targets_;  // (N, ...)
};

}  // namespace zt
