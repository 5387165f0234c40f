// DataParallel: parameters broadcast from rank 0, bucket layout and overlap, and the central
// equivalence test: an MLP trained with Adam for 50 steps on W ranks with global batch B gives
// the same losses and final parameters as one process with batch B, also with gradient
// accumulation 2 under no_sync(). Every rank computes the one-process reference itself.
//
// Tolerance: relative 1e-5 (loss: relative to the loss; parameters: max |difference| relative to
// max |parameter| of each tensor). The arithmetic is f32 and the same data is used, but in another
// order: each rank averages over B/W samples and the ranks' means are then averaged (sum, times
// 1/W), where one process averages over B at once. Each such reordering changes a value by about
// one f32 rounding (6e-8 relative); Adam's normalised update keeps these differences at the level
// of roundings of lr-sized steps, so after 50 steps they stay far below 1e-5 (measured: ~1e-7),
// while a wrong sample split, a missing average or an unreduced bucket is off by 1e-2 or more.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "core/factory.h"
#include "core/ops.h"
#include "data/data_loader.h"
#include "mpi_world.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "optim/adam.h"
#include "parallel/data_parallel.h"

using namespace zt;
using zt::test::world;

namespace {

constexpr int64_t kFeatures = 8, kHidden = 16, kClasses = 4, kSamples = 512, kGlobalBatch = 16;
constexpr int kSteps = 50;

std::shared_ptr<Sequential> make_mlp(uint64_t seed) {
  manual_seed(seed);
  auto m = std::make_shared<Sequential>();
  m->push_back(std::make_shared<Linear>(kFeatures, kHidden));
  m->push_back(std::make_shared<ReLU>());
  m->push_back(std::make_shared<Linear>(kHidden, kClasses));
  return m;
}

std::shared_ptr<TensorDataset> make_data() {
  Generator gen(123);
  Tensor x = randn({kSamples, kFeatures}, {}, &gen);
  Tensor y = randint(0, kClasses, {kSamples}, DType::i64, &gen);
  return std::make_shared<TensorDataset>(x, y);
}

DataLoader make_loader(std::shared_ptr<TensorDataset> data, int64_t batch, int world_size, int rank) {
  DataLoaderOptions o;
  o.batch_size = batch;
  o.seed = 7;
  o.drop_last = true;
  o.world_size = world_size;
  o.rank = rank;
  return DataLoader(data, o);
}

struct Run {
  std::vector<double> losses;  // mean over the global batch, per step
  std::vector<Tensor> params;
};

// One process, global batch B per step.
Run train_reference(std::shared_ptr<TensorDataset> data) {
  auto model = make_mlp(1);
  Adam opt(model->parameters(), AdamOptions{1e-2});
  DataLoader loader = make_loader(data, kGlobalBatch, 1, 0);
  Run run;
  for (int s = 0; s < kSteps; ++s) {
    Batch b = loader.next();
    Tensor loss = cross_entropy((*model)(b.input), b.target);
    opt.zero_grad();
    backward(loss);
    opt.step();
    run.losses.push_back(loss.item());
  }
  run.params = model->parameters();
  return run;
}

// W ranks, B / (W * accumulation) samples per rank and micro-batch. Each rank's model starts from
// a different seed: the broadcast in DataParallel must make them rank 0's.
Run train_data_parallel(std::shared_ptr<TensorDataset> data, int accumulation, int64_t bucket_bytes,
                        int64_t* launched_early = nullptr) {
  const int W = world()->size(), r = world()->rank();
  auto model = make_mlp(r == 0 ? 1 : 1000 + uint64_t(r));
  DataParallel dp(model, world(), DataParallelOptions{bucket_bytes});
  Adam opt(model->parameters(), AdamOptions{1e-2});
  DataLoader loader = make_loader(data, kGlobalBatch / (W * accumulation), W, r);
  Run run;
  for (int s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    double loss_sum = 0;
    for (int micro = 0; micro < accumulation; ++micro) {
      Batch b = loader.next();
      Tensor loss = cross_entropy(dp(b.input), b.target);
      Tensor scaled = mul(loss, 1.0 / accumulation);
      if (micro + 1 < accumulation) {
        auto guard = dp.no_sync();
        backward(scaled);
      } else {
        backward(scaled);
      }
      loss_sum += loss.item();
    }
    dp.finish_gradient_reduction();
    if (launched_early) *launched_early = dp.buckets_launched_during_backward();
    opt.step();
    Tensor mean_loss = full({1}, loss_sum / accumulation, DType::f64);
    world()->all_reduce(mean_loss, CommReduceOp::avg);
    run.losses.push_back(mean_loss.item());
  }
  run.params = model->parameters();
  return run;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector<float>()) m = std::max(m, double(std::fabs(v)));
  return m;
}

void check_equivalent(const Run& dp, const Run& ref) {
  REQUIRE(dp.losses.size() == ref.losses.size());
  for (size_t s = 0; s < ref.losses.size(); ++s) {
    CAPTURE(s);
    CHECK(std::fabs(dp.losses[s] - ref.losses[s]) <= 1e-5 * std::fabs(ref.losses[s]));
  }
  REQUIRE(dp.params.size() == ref.params.size());
  double worst = 0;
  for (size_t i = 0; i < ref.params.size(); ++i) {
    const double diff = max_abs(raw::sub(dp.params[i], ref.params[i]));
    worst = std::max(worst, diff / max_abs(ref.params[i]));
  }
  MESSAGE("ranks ", world()->size(), ": worst relative parameter difference after ", kSteps, " steps: ", worst);
  CHECK(worst <= 1e-5);
  // Training did something: the last loss is below the first.
  CHECK(ref.losses.back() < ref.losses.front());
}

// Two layers of which forward uses only the first.
class PartlyUsed : public Module {
 public:
  PartlyUsed() {
    used_ = register_module("used", std::make_shared<Linear>(3, 2));
    unused_ = register_module("unused", std::make_shared<Linear>(3, 2));
  }
  Tensor forward(const Tensor& x) override { return (*used_)(x); }

 private:
  std::shared_ptr<Linear> used_, unused_;
};

}  // namespace

TEST_CASE("gradients are averaged over ranks with different data, in f32 and bf16; unused ones are zeros") {
  const int W = world()->size(), r = world()->rank();
  for (DType t : {DType::f32, DType::bf16}) {
    CAPTURE(dtype_name(t));
    manual_seed(5);
    auto model = std::make_shared<PartlyUsed>();
    model->to(t);
    DataParallel dp(model, world(), DataParallelOptions{16});  // a bucket per parameter
    // Rank q's input is (q + 1) * [[0, 1, 2], [3, 4, 5]]; d sum(x W^T + b) / dW has both rows equal
    // to the column sums of x, (q + 1) * [3, 5, 7], and d/db = 2 (two rows). The mean over ranks
    // of (q + 1) is (W + 1) / 2. Every value is exact in bf16.
    Tensor x = raw::to(raw::mul(raw::reshape(arange(0, 6), {2, 3}), double(r + 1)), t);
    backward(sum(dp(x)));
    dp.finish_gradient_reduction();
    const auto named = model->named_parameters();
    for (const auto& [name, p] : named) {
      CAPTURE(name);
      const Tensor g = grad(p);
      REQUIRE(g.defined());
      CHECK(g.dtype() == t);
      const auto v = raw::to(g, DType::f64).to_vector<double>();
      if (name == "used.weight") {
        const double m = (W + 1) / 2.0;
        CHECK(v == std::vector<double>{3 * m, 5 * m, 7 * m, 3 * m, 5 * m, 7 * m});
      } else if (name == "used.bias") {
        CHECK(v == std::vector<double>{2, 2});
      } else {
        for (double e : v) CHECK(e == 0.0);  // never reached by backward: zeros on every rank
      }
    }
  }
}

TEST_CASE("DataParallel broadcasts rank 0's parameters and buckets them in reverse order") {
  const int r = world()->rank();
  auto model = make_mlp(50 + uint64_t(r));
  auto reference = make_mlp(50);
  // 300-byte buckets: 2.bias (16 B) + 2.weight (256 B) fit one; 0.bias (64 B) would overflow it;
  // 0.weight (512 B) is larger than a bucket and gets one of its own.
  DataParallel dp(model, world(), DataParallelOptions{300});
  auto ps = model->parameters(), rs = reference->parameters();
  for (size_t i = 0; i < ps.size(); ++i) CHECK(max_abs(raw::sub(ps[i], rs[i])) == 0.0);
  const auto layout = dp.bucket_layout();
  REQUIRE(layout.size() == 3);
  CHECK(layout[0] == std::vector<std::string>{"2.bias", "2.weight"});
  CHECK(layout[1] == std::vector<std::string>{"0.bias"});
  CHECK(layout[2] == std::vector<std::string>{"0.weight"});
}

TEST_CASE("data-parallel training equals one process with the same global batch") {
  auto data = make_data();
  const Run ref = train_reference(data);
  int64_t launched_early = 0;
  SUBCASE("one bucket per few parameters, launched during backward") {
    check_equivalent(train_data_parallel(data, 1, 300, &launched_early), ref);
    CHECK(launched_early == 3);  // every bucket started before finish_gradient_reduction()
  }
  SUBCASE("default bucket size") { check_equivalent(train_data_parallel(data, 1, int64_t(25) << 20), ref); }
  SUBCASE("gradient accumulation 2 with no_sync") {
    check_equivalent(train_data_parallel(data, 2, int64_t(25) << 20), ref);
  }
}

TEST_CASE("forward after an unfinished reduction is an error") {
  auto model = make_mlp(3);
  DataParallel dp(model, world());
  Tensor x = ones({2, kFeatures});
  backward(sum(dp(x)));
  CHECK_THROWS_WITH_AS(dp(x), doctest::Contains("finish_gradient_reduction()"), Error);
  CHECK_THROWS_WITH_AS(dp.no_sync(), doctest::Contains("reduction is in progress"), Error);
  dp.finish_gradient_reduction();
  // Every rank had the same input and weights: the averaged gradient equals the local one.
  Tensor g = grad(model->parameters()[0]);
  REQUIRE(g.defined());
  model->zero_grad();
  backward(sum((*model)(x)));
  CHECK(max_abs(raw::sub(g, grad(model->parameters()[0]))) <= 1e-6 * max_abs(g));
}
