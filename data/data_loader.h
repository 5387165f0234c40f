// DataLoader: per-rank batches over a Dataset, with epochs and a resumable position.
//
// Note [Loader position]
// position() is the batch the loader yields NEXT: (epoch, batch index within the epoch). A
// checkpoint saves it after a step; set_position() on resume makes the next batch identical to
// the one the uninterrupted run would have read. When an epoch is exhausted the next call to
// next() (or a new range-for) moves to batch 0 of the following epoch, reshuffled.
//
// drop_last applies at both levels (Note [Distributed sampling] in data/sampler.h): with it
// every batch is full and no sample repeats; without it the epoch is padded to a multiple of
// world_size and each rank's last batch may be short.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "data/dataset.h"
#include "data/sampler.h"

namespace zt {

struct DataLoaderOptions {
  int64_t batch_size = 1;  // per rank
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;
  int64_t world_size = 1;
  int64_t rank = 0;
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;  // index of the next batch within the epoch
  bool operator==(const LoaderPosition&) const = default;
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);

  // Batches this rank yields per epoch (the same on every rank).
  int64_t num_batches() const { return num_batches_; }
  int64_t samples_per_rank() const { return sampler_.num_samples(); }
  const DataLoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }

  // Starts `epoch` at its first batch.
  void set_epoch(int64_t epoch) { set_position(epoch, 0); }
  int64_t epoch() const { return position_.epoch; }
  LoaderPosition position() const { return position_; }
  // batch may equal num_batches() (epoch finished); the next batch is then the next epoch's first.
  void set_position(int64_t epoch, int64_t batch);
  void set_position(LoaderPosition p) { set_position(p.epoch, p.batch); }

  // The batch at position(), then advances (rolling into the next epoch when needed).
  Batch next();
  // Batch `index` of the current epoch, without moving the position.
  Batch batch_at(int64_t index) const;
  // This rank's sample indices in the current epoch's reading order.
  const std::vector<int64_t>& epoch_indices() const { return indices_; }

  // Range-for over the rest of the current epoch (the next epoch if this one is finished):
  //   for (const Batch& b : loader) { ... }
  class Iterator {
   public:
    Iterator() = default;
    explicit Iterator(DataLoader* loader);
    const Batch& operator*() const { return current_; }
    const Batch* operator->() const { return &current_; }
    Iterator& operator++();
    bool operator==(const Iterator& other) const { return loader_ == other.loader_; }

   private:
    DataLoader* loader_ = nullptr;  // null once the epoch is exhausted (== end())
    Batch current_;
  };
  Iterator begin();
  Iterator end() { return Iterator(); }

 private:
  void load_epoch(int64_t epoch);

  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  DistributedSampler sampler_;
  int64_t num_batches_ = 0;
  LoaderPosition position_;
  std::vector<int64_t> indices_;  // this rank's order for position_.epoch
};

}  // namespace zt
