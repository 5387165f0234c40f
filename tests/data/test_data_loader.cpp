// DataLoader: batch shapes and contents, drop_last, epochs, ranks, and exact mid-epoch resume.
#include <doctest/doctest.h>

#include <set>

#include "core/factory.h"
#include "data/data_loader.h"
#include "data/data_test_util.h"

using namespace zt;

namespace {
// inputs (N, 2, 3) with input[i] = i * 100 + k, targets (N) = i: sample identity is visible.
std::shared_ptr<TensorDataset> numbered_dataset(int64_t n) {
  std::vector<float> in;
  std::vector<int64_t> tg;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < 6; ++k) in.push_back(float(i * 100 + k));
    tg.push_back(i);
  }
  return std::make_shared<TensorDataset>(from_vector<float>(in, {n, 2, 3}),
                                         from_vector<int64_t>(tg, {n}));
}

DataLoaderOptions opts(int64_t batch, bool shuffle, bool drop_last, int64_t world = 1,
                       int64_t rank = 0) {
  DataLoaderOptions o;
  o.batch_size = batch;
  o.shuffle = shuffle;
  o.seed = 5;
  o.drop_last = drop_last;
  o.world_size = world;
  o.rank = rank;
  return o;
}

// The batch's inputs must be exactly the rows named by its targets.
void check_rows_match_targets(const Batch& b) {
  std::vector<float> in = b.input.to_vector<float>();
  std::vector<int64_t> tg = b.target.to_vector<int64_t>();
  for (size_t j = 0; j < tg.size(); ++j) {
    for (int64_t k = 0; k < 6; ++k) CHECK(in[j * 6 + size_t(k)] == float(tg[j] * 100 + k));
  }
}
}  // namespace

TEST_CASE("TensorDataset get and get_batch gather the right rows") {
  auto ds = numbered_dataset(5);
  CHECK(ds->size() == 5);
  Example e = ds->get(3);
  CHECK(e.input.shape() == Shape{2, 3});
  CHECK(e.input.to_vector<float>() == std::vector<float>{300, 301, 302, 303, 304, 305});
  CHECK(e.target.item() == 3);
  Batch b = ds->get_batch({4, 0, 4});
  CHECK(b.input.shape() == Shape{3, 2, 3});
  CHECK(b.target.to_vector<int64_t>() == std::vector<int64_t>{4, 0, 4});
  check_rows_match_targets(b);
  // The generic stacking path (Dataset::get_batch) gives the same batch.
  Batch generic = ds->Dataset::get_batch({4, 0, 4});
  CHECK(generic.input.to_vector<float>() == b.input.to_vector<float>());
  CHECK(generic.target.to_vector<int64_t>() == b.target.to_vector<int64_t>());
  CHECK(test::error_message([&] { ds->get_batch({5}); }).find("index 5 is out of range") !=
        std::string::npos);
  CHECK(test::error_message([] {
          TensorDataset(zeros({4, 2}), zeros({3}, DType::i64));
        }).find("inputs have 4 samples but targets have 3") != std::string::npos);
}

TEST_CASE("loader batch shapes, order and drop_last") {
  auto ds = numbered_dataset(10);
  DataLoader keep(ds, opts(4, false, false));
  CHECK(keep.num_batches() == 3);
  Batch b0 = keep.next(), b1 = keep.next(), b2 = keep.next();
  CHECK(b0.input.shape() == Shape{4, 2, 3});
  CHECK(b0.target.shape() == Shape{4});
  CHECK(b1.target.to_vector<int64_t>() == std::vector<int64_t>{4, 5, 6, 7});
  CHECK(b2.input.shape() == Shape{2, 2, 3});
  CHECK(b2.target.to_vector<int64_t>() == std::vector<int64_t>{8, 9});
  check_rows_match_targets(b2);
  CHECK(keep.position() == LoaderPosition{0, 3});
  // The epoch is exhausted: next() rolls into epoch 1.
  Batch again = keep.next();
  CHECK(keep.position() == LoaderPosition{1, 1});
  CHECK(again.target.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3});

  DataLoader drop(ds, opts(4, false, true));
  CHECK(drop.num_batches() == 2);
  int count = 0;
  for (const Batch& b : drop) {
    CHECK(b.input.shape() == Shape{4, 2, 3});
    ++count;
  }
  CHECK(count == 2);
}

TEST_CASE("loader range-for walks one epoch, shuffled differently each epoch") {
  auto ds = numbered_dataset(10);
  DataLoader loader(ds, opts(3, true, false));
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 2; ++e) {
    std::vector<int64_t> seen;
    for (const Batch& b : loader) {
      check_rows_match_targets(b);
      for (int64_t t : b.target.to_vector<int64_t>()) seen.push_back(t);
    }
    CHECK(loader.epoch() == e);
    CHECK(seen.size() == 10);
    CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 10);
    epochs.push_back(seen);
  }
  CHECK(epochs[0] != epochs[1]);
}

TEST_CASE("loader ranks read disjoint samples with the same batch count") {
  auto ds = numbered_dataset(11);
  std::multiset<int64_t> all;
  for (int64_t r = 0; r < 2; ++r) {
    DataLoader loader(ds, opts(2, true, true, 2, r));
    loader.set_epoch(1);
    CHECK(loader.num_batches() == 2);  // 5 samples per rank, batches of 2, last dropped
    CHECK(loader.samples_per_rank() == 5);
    for (int64_t t : loader.epoch_indices()) all.insert(t);
  }
  CHECK(all.size() == 10);
  CHECK(std::set<int64_t>(all.begin(), all.end()).size() == 10);
}

TEST_CASE("loader resume from position() yields the same next batches") {
  auto ds = numbered_dataset(13);
  DataLoader a(ds, opts(4, true, false, 1, 0));  // 4 batches per epoch
  for (int i = 0; i < 6; ++i) a.next();           // into epoch 1, batch 2
  LoaderPosition saved = a.position();
  CHECK(saved == LoaderPosition{1, 2});

  DataLoader b(ds, opts(4, true, false, 1, 0));
  b.set_position(saved);
  for (int i = 0; i < 5; ++i) {  // across the next epoch boundary too
    Batch x = a.next(), y = b.next();
    CHECK(x.target.to_vector<int64_t>() == y.target.to_vector<int64_t>());
    CHECK(x.input.to_vector<float>() == y.input.to_vector<float>());
  }
  CHECK(a.position() == b.position());

  // A finished epoch position resumes at the next epoch's first batch.
  DataLoader c(ds, opts(4, true, false, 1, 0)), d(ds, opts(4, true, false, 1, 0));
  c.set_position(0, 4);
  d.set_epoch(1);
  CHECK(c.next().target.to_vector<int64_t>() == d.next().target.to_vector<int64_t>());

  CHECK(test::error_message([&] { b.set_position(0, 5); }).find("batch 5 is out of range") !=
        std::string::npos);
  CHECK(test::error_message([&] { DataLoader(ds, opts(0, true, false)); })
            .find("batch_size >= 1") != std::string::npos);
  CHECK(test::error_message([&] { DataLoader(ds, opts(20, true, true)); }).find("leaves no batch") !=
        std::string::npos);
}
