// Dataset batch gathering: a stacking fallback and TensorDataset's single-gather path.
#include "data/dataset.h"

#include "core/factory.h"
#include "core/ops.h"

namespace zt {

Batch Dataset::get_batch(const std::vector<int64_t>& indices) const {
  ZT_CHECK(!indices.empty(), "Dataset::get_batch: expected at least one index, got none");
  std::vector<Tensor> inputs, targets;
  inputs.reserve(indices.size());
  targets.reserve(indices.size());
  for (int64_t i : indices) {
    Example e = get(i);
    inputs.push_back(raw::unsqueeze(e.input, 0));
    targets.push_back(raw::unsqueeze(e.target, 0));
  }
  return {raw::cat(inputs, 0), raw::cat(targets, 0)};
}

TensorDataset::TensorDataset(Tensor inputs, Tensor targets)
    : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  ZT_CHECK(inputs_.defined() && targets_.defined(),
           "TensorDataset: expected defined inputs and targets tensors");
  ZT_CHECK(inputs_.dim() >= 1 && targets_.dim() >= 1,
           "TensorDataset: expected inputs and targets with a leading sample dim, got shapes ",
           shape_str(inputs_.shape()), " and ", shape_str(targets_.shape()));
  ZT_CHECK(inputs_.size(0) == targets_.size(0),
           "TensorDataset: inputs have ", inputs_.size(0), " samples but targets have ",
           targets_.size(0), " (shapes ", shape_str(inputs_.shape()), " and ",
           shape_str(targets_.shape()), ")");
}

Example TensorDataset::get(int64_t index) const {
  ZT_CHECK(index >= 0 && index < size(), "TensorDataset::get: index ", index,
           " is out of range for a dataset of ", size(), " samples");
  return {raw::select(inputs_, 0, index), raw::select(targets_, 0, index)};
}

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  ZT_CHECK(!indices.empty(), "TensorDataset::get_batch: expected at least one index, got none");
  for (int64_t i : indices) {
    ZT_CHECK(i >= 0 && i < size(), "TensorDataset::get_batch: index ", i,
             " is out of range for a dataset of ", size(), " samples");
  }
  Tensor index = from_vector<int64_t>(indices, {int64_t(indices.size())}, DType::i64);
  if (!inputs_.device().is_cpu()) index = raw::to(index, inputs_.device());
  Tensor target_index = index;
  if (!(targets_.device() == inputs_.device())) target_index = raw::to(index, targets_.device());
  return {raw::index_select(inputs_, 0, index), raw::index_select(targets_, 0, target_index)};
}

}  // namespace zt
