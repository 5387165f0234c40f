// DataLoader: slices the sampler's per-rank order into batches and tracks the position
// (Note [Loader position] in data/data_loader.h).
#include "data/data_loader.h"

#include <algorithm>

#include "core/error.h"

namespace zt {

namespace {
DistributedSamplerOptions sampler_options(const Dataset& dataset, const DataLoaderOptions& o) {
  DistributedSamplerOptions s;
  s.dataset_size = dataset.size();
  s.world_size = o.world_size;
  s.rank = o.rank;
  s.shuffle = o.shuffle;
  s.seed = o.seed;
  s.drop_last = o.drop_last;
  return s;
}

const Dataset& checked(const std::shared_ptr<const Dataset>& dataset) {
  ZT_CHECK(dataset != nullptr, "DataLoader: expected a dataset, got a null pointer");
  return *dataset;
}
}  // namespace

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)),
      options_(options),
      sampler_(sampler_options(checked(dataset_), options)) {
  ZT_CHECK(options_.batch_size >= 1, "DataLoader: expected batch_size >= 1, got ",
           options_.batch_size);
  const int64_t n = sampler_.num_samples(), b = options_.batch_size;
  num_batches_ = options_.drop_last ? n / b : (n + b - 1) / b;
  ZT_CHECK(num_batches_ > 0, "DataLoader: drop_last with batch_size ", b, " leaves no batch: rank ",
           options_.rank, " has only ", n, " samples per epoch (dataset of ", dataset_->size(),
           " over world_size ", options_.world_size, ")");
  load_epoch(0);
}

void DataLoader::load_epoch(int64_t epoch) {
  sampler_.set_epoch(epoch);
  indices_ = sampler_.indices();
  position_ = {epoch, 0};
}

void DataLoader::set_position(int64_t epoch, int64_t batch) {
  ZT_CHECK(epoch >= 0, "DataLoader::set_position: expected epoch >= 0, got ", epoch);
  ZT_CHECK(batch >= 0 && batch <= num_batches_, "DataLoader::set_position: batch ", batch,
           " is out of range: an epoch has ", num_batches_, " batches (0..", num_batches_,
           " allowed, the last meaning the epoch is finished)");
  if (epoch != position_.epoch) load_epoch(epoch);
  position_.batch = batch;
}

Batch DataLoader::batch_at(int64_t index) const {
  ZT_CHECK(index >= 0 && index < num_batches_, "DataLoader::batch_at: batch ", index,
           " is out of range for an epoch of ", num_batches_, " batches");
  const int64_t begin = index * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, int64_t(indices_.size()));
  std::vector<int64_t> ids(indices_.begin() + begin, indices_.begin() + end);
  return dataset_->get_batch(ids);
}

Batch DataLoader::next() {
  if (position_.batch >= num_batches_) load_epoch(position_.epoch + 1);
  Batch b = batch_at(position_.batch);
  ++position_.batch;
  return b;
}

DataLoader::Iterator::Iterator(DataLoader* loader) : loader_(loader) { current_ = loader_->next(); }

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  ZT_CHECK(loader_ != nullptr, "DataLoader::Iterator: incremented past the end of the epoch");
  if (loader_->position_.batch >= loader_->num_batches_) {
    loader_ = nullptr;
    current_ = Batch{};
  } else {
    current_ = loader_->next();
  }
  return *this;
}

DataLoader::Iterator DataLoader::begin() { return Iterator(this); }

}  // namespace zt
