// Engine (runtime/engine.h) in f32: gradient accumulation equals one step on the whole batch,
// clipping, counters, the optimizer and schedule from the config or from the program, and a
// non-finite gradient that skips the step without advancing the schedule.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "autograd/ops.h"
#include "core/error.h"
#include "optim/sgd.h"
#include "runtime/engine.h"
#include "runtime/engine_test_util.h"

using namespace zt;
using zt::test::json_config;
using zt::test::LogFile;
using zt::test::regression_batch;
using zt::test::rows;
using zt::test::small_mlp;

namespace {

std::vector<Tensor> snapshot(const Module& m) {
  std::vector<Tensor> out;
  for (const Tensor& p : m.parameters()) out.push_back(raw::clone(p));
  return out;
}

double max_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, raw::max_abs_diff(a[i], b[i]));
  return d;
}

const char* kSgd = R"("optimizer": {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9}})";

}  // namespace

TEST_CASE("engine: 2 accumulation steps equal one step on the double batch (f32)") {
  const auto data = regression_batch(16);
  auto accumulated = small_mlp(), whole = small_mlp();
  REQUIRE(max_diff(snapshot(*accumulated), snapshot(*whole)) == 0.0);
  auto e2 = initialize(accumulated, json_config(std::string(R"({"train_batch_size": 8, "gradient_accumulation_steps": 2, )") + kSgd + "}"));
  auto e1 = initialize(whole, json_config(std::string(R"({"train_batch_size": 8, "gradient_accumulation_steps": 1, )") + kSgd + "}"));
  CHECK(e2->train_micro_batch_size_per_gpu() == 4);
  for (int s = 0; s < 2; ++s) {
    const Tensor x = rows(data.x, 8 * s, 8), y = rows(data.y, 8 * s, 8);
    for (int m = 0; m < 2; ++m) {
      CHECK(e2->is_gradient_accumulation_boundary() == (m == 1));
      e2->backward(mse_loss(e2->forward(rows(x, 4 * m, 4)), rows(y, 4 * m, 4)));
      e2->step();
      CHECK(e2->was_step_applied() == (m == 1));
    }
    e1->backward(mse_loss(e1->forward(x), y));
    e1->step();
    CHECK(e1->was_step_applied());
  }
  CHECK(e2->global_step() == 2);
  CHECK(e2->micro_step() == 4);
  CHECK(e2->global_samples() == 16);
  CHECK(e1->micro_step() == 2);
  // Same arithmetic up to the order of two partial sums.
  CHECK(max_diff(snapshot(*accumulated), snapshot(*whole)) < 1e-6);
  CHECK(max_diff(snapshot(*accumulated), snapshot(*small_mlp())) > 1e-3);  // it did train
}

TEST_CASE("engine: gradient_clipping bounds the global gradient norm") {
  const auto data = regression_batch(8);
  auto model = small_mlp();
  const auto before = snapshot(*model);
  // Plain SGD with lr 1: the parameter change is the clipped gradient itself.
  auto e = initialize(model, json_config(R"({"train_batch_size": 8, "gradient_clipping": 0.01,
      "optimizer": {"type": "SGD", "params": {"lr": 1.0}}})"));
  e->backward(mse_loss(e->forward(data.x), data.y));
  e->step();
  double sq = 0;
  const auto after = snapshot(*model);
  for (size_t i = 0; i < after.size(); ++i) sq += raw::sum(raw::unary(UnaryOp::square, raw::sub(after[i], before[i]))).item();
  CHECK(std::sqrt(sq) == doctest::Approx(0.01).epsilon(1e-3));
}

TEST_CASE("engine: a NaN gradient skips the step, logs it and leaves the schedule alone") {
  const auto data = regression_batch(8);
  auto model = small_mlp();
  LogFile log;
  InitOptions options;
  options.log = log.f;
  auto e = initialize(model, json_config(R"({"train_batch_size": 8,
      "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
      "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0.001, "warmup_max_lr": 0.01,
                    "warmup_num_steps": 10, "warmup_type": "linear"}}})"), options);
  REQUIRE(e->scheduler() != nullptr);
  e->backward(mse_loss(e->forward(data.x), data.y));
  e->step();
  CHECK(e->scheduler()->last_step() == 0);
  const double lr = e->lr();
  const auto before = snapshot(*model);

  Tensor poisoned = raw::clone(data.x);
  raw::fill_(raw::narrow(poisoned, 0, 3, 1), std::numeric_limits<double>::quiet_NaN());
  e->backward(mse_loss(e->forward(poisoned), data.y));
  e->step();
  CHECK_FALSE(e->was_step_applied());
  CHECK(e->skipped_steps() == 1);
  CHECK(e->global_step() == 2);  // counted, as DeepSpeed counts skipped steps
  CHECK(e->scheduler()->last_step() == 0);
  CHECK(e->lr() == lr);
  CHECK(max_diff(snapshot(*model), before) == 0.0);
  CHECK(!grad(model->parameters().front()).defined());  // the poisoned gradients are gone
  const std::string text = log.text();
  CHECK(text.find("step 2 skipped: non-finite gradients") != std::string::npos);
  CHECK(text.find("skipped") == text.rfind("skipped"));  // one line

  e->backward(mse_loss(e->forward(data.x), data.y));
  e->step();
  CHECK(e->was_step_applied());
  CHECK(e->scheduler()->last_step() == 1);
  CHECK(max_diff(snapshot(*model), before) > 0.0);
}

TEST_CASE("engine: the program's optimizer, and conflicts with the config") {
  auto model = small_mlp();
  auto sgd = std::make_shared<SGD>(model->parameters(), SGDOptions{0.5});
  InitOptions options;
  options.optimizer = sgd;
  auto e = initialize(model, json_config(R"({"train_batch_size": 4})"), options);
  CHECK(&e->optimizer() == sgd.get());
  CHECK(e->scheduler() == nullptr);
  CHECK(e->dtype() == DType::f32);
  CHECK(e->device() == Device::cpu());

  auto other = small_mlp();
  InitOptions both;
  both.optimizer = std::make_shared<SGD>(other->parameters(), SGDOptions{0.5});
  CHECK_THROWS_WITH_AS(initialize(other, json_config(std::string(R"({"train_batch_size": 4, )") + kSgd + "}"), both),
                       doctest::Contains("has an \"optimizer\" section (SGD)"), Error);
  CHECK_THROWS_WITH_AS(initialize(small_mlp(), json_config(R"({"train_batch_size": 4})")),
                       doctest::Contains("no \"optimizer\" section"), Error);
  CHECK_THROWS_WITH_AS(initialize(small_mlp(), json_config(std::string(R"({"train_batch_size": 4, )") + kSgd + "}", 2)),
                       doctest::Contains("data-parallel size of 2 but the communicator has 1"), Error);
}
