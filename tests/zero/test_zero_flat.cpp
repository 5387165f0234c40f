// ZeroOptimizer in a world of one (no communicator): the flat parameter layout of Note [ZeRO flat
// layout] (aligned offsets, zero padding, parameters as views that stay tied), Module's
// replace_parameters, the gradient shard and the global norm against one process's gradients,
// and the errors of bind and of the options. The multi-rank behaviour is in
// tests/parallel/test_zero_mpi.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <memory>

#include "autograd/ops.h"
#include "core/factory.h"
#include "core/ops.h"
#include "nn/linear.h"
#include "autograd/autograd.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "runtime/engine_test_util.h"
#include "zero/zero_optimizer.h"

using namespace zt;

namespace {

std::vector<double> values(const Tensor& t) { return raw::to(raw::contiguous(t), DType::f64).to_vector<double>(); }

// A Linear whose weight is also registered under a second name in a parent: a tied tensor.
class Tied : public Module {
 public:
  Tied() {
    a_ = register_module("a", std::make_shared<Linear>(3, 3));
    register_parameter("shared", a_->parameter("weight"));
  }
  Tensor forward(const Tensor& x) override { return (*a_)(x); }

 private:
  std::shared_ptr<Linear> a_;
};

}  // namespace

TEST_CASE("ZeRO flat layout: aligned offsets, zero padding, parameters are views of the flat buffer") {
  auto model = zt::test::small_mlp();  // 4x8 weight, 8 bias, 3x8 weight, 3 bias = 67
  const auto before = model->named_parameters();
  std::vector<std::vector<double>> old_values;
  for (const auto& [name, p] : before) old_values.push_back(values(p));
  ZeroOptimizer zero(model, nullptr, {.stage = 2, .reduce_bucket_size = 16}, LossScaler(1.0));
  CHECK(zero.numel() == 67);
  // Each offset rounded up to 16: 0, 32, 48, 80; the end, 83, rounded up to 96 (16 x 1 rank).
  const auto layout = zero.layout();
  REQUIRE(layout.size() == 4);
  CHECK(layout[0].offset == 0);
  CHECK(layout[1].offset == 32);
  CHECK(layout[2].offset == 48);
  CHECK(layout[3].offset == 80);
  CHECK(zero.padded_numel() == 96);
  CHECK(zero.shard_numel() == 96);
  CHECK(zero.num_buckets() == 6);  // 96 / 16
  const std::vector<double> flat = values(zero.flat_parameters());
  for (int64_t k = 83; k < 96; ++k) CHECK(flat[size_t(k)] == 0.0);
  const auto after = model->named_parameters();
  for (size_t i = 0; i < after.size(); ++i) {
    CAPTURE(after[i].first);
    CHECK(after[i].first == before[i].first);
    CHECK(values(after[i].second) == old_values[i]);  // the values moved with them
    CHECK(requires_grad(after[i].second));
  }
  // Writing the flat buffer is writing the parameters.
  raw::fill_(raw::narrow(zero.flat_parameters(), 0, 32, 8), 2.5);
  CHECK(values(model->named_parameters()[1].second) == std::vector<double>(8, 2.5));
}

TEST_CASE("Module::replace_parameters keeps a tied tensor tied") {
  auto model = std::make_shared<Tied>();
  ZeroOptimizer zero(model, nullptr, {.stage = 1}, LossScaler(1.0));
  CHECK(model->named_parameters().size() == 2);  // a.weight, a.bias: "shared" is the same tensor
  CHECK(model->parameter("shared").same_impl(model->child("a")->parameter("weight")));
  raw::fill_(raw::narrow(zero.flat_parameters(), 0, 0, 9), -1.0);
  CHECK(values(model->parameter("shared")) == std::vector<double>(9, -1.0));
}

TEST_CASE("ZeRO gradient shard and global norm equal one process's gradients") {
  const zt::test::Batch b = zt::test::regression_batch(8);
  auto reference = zt::test::small_mlp();
  zt::backward(mse_loss((*reference)(b.x), b.y));
  const double want_norm = grad_norm(reference->parameters());
  for (int stage : {1, 2}) {
    CAPTURE(stage);
    auto model = zt::test::small_mlp();
    ZeroOptimizer zero(model, nullptr, {.stage = stage, .reduce_bucket_size = 20}, LossScaler(4.0));
    zt::backward(mul(mse_loss((*model)(b.x), b.y), 4.0));  // as the engine scales the loss
    zero.finish_gradient_reduction();
    for (const Tensor& p : model->parameters()) CHECK(!grad(p).defined());  // dropped after reduction
    REQUIRE(zero.unscale_gradients());
    const std::vector<double> shard = values(zero.master_gradient());
    const auto layout = zero.layout();
    const auto ref = reference->parameters();
    for (size_t i = 0; i < layout.size(); ++i) {
      const std::vector<double> g = values(grad(ref[i]));
      for (size_t k = 0; k < g.size(); ++k) CHECK(shard[size_t(layout[i].offset) + k] == doctest::Approx(g[k]).epsilon(1e-6));
    }
    const double norm = zero.clip_gradients(0.5 * want_norm);
    CHECK(norm == doctest::Approx(want_norm).epsilon(1e-6));
    // Clipped to half the norm: every gradient halves (max_norm / (norm + 1e-6)).
    const std::vector<double> clipped = values(zero.master_gradient());
    const double coef = 0.5 * want_norm / (want_norm + 1e-6);
    CHECK(clipped[0] == doctest::Approx(shard[0] * coef).epsilon(1e-6));
  }
}

TEST_CASE("ZeRO overflow: a non-finite gradient is reported by unscale_gradients") {
  auto model = zt::test::small_mlp();
  ZeroOptimizer zero(model, nullptr, {.stage = 2}, LossScaler(1.0));
  const zt::test::Batch b = zt::test::regression_batch(4);
  zt::backward(mul(mse_loss((*model)(b.x), b.y), std::numeric_limits<double>::infinity()));
  zero.finish_gradient_reduction();
  CHECK_FALSE(zero.unscale_gradients());
}

TEST_CASE("ZeRO bind and options: errors say what was expected") {
  auto model = zt::test::small_mlp();
  const std::vector<Tensor> originals = model->parameters();
  ZeroOptimizer zero(model, nullptr, {.stage = 1}, LossScaler(1.0), originals);
  // A program's optimizer over the original parameters is pointed at the master shard.
  Adam adam(originals, AdamOptions{});
  zero.bind(adam);
  REQUIRE(adam.param_groups().front().params.size() == 1);
  const Tensor held = adam.param_groups().front().params.front();
  CHECK(held.same_impl(zero.master_parameters().front()));
  CHECK((held.numel() == zero.shard_numel() && held.shares_storage(zero.master_shard())));
  // The layout was built for one group: an optimizer with two does not fit it.
  Adam two({ParamGroup{{originals[0]}}, ParamGroup{{originals[1]}}}, AdamOptions{});
  CHECK_THROWS_WITH(zero.bind(two), doctest::Contains("laid the parameters out for 1 optimizer parameter group(s) "
                                                      "but the optimizer has 2"));
  Adam stranger(std::vector<Tensor>{zeros({2})}, AdamOptions{});
  CHECK_THROWS_WITH(zero.bind(stranger), doctest::Contains("not a parameter of the model"));
  CHECK_THROWS_WITH(ZeroOptimizer(zt::test::small_mlp(), nullptr, {.stage = 3}, LossScaler(1.0)),
                    doctest::Contains("stage 0, 1 or 2"));
}

// Note [ZeRO parameter groups]: nanoGPT's groups put the two weight matrices first (group 0), then
// the biases (group 1); each group is one range of the shard and the optimizer holds one view per
// group, whose gradient is that range of the master gradient.
TEST_CASE("ZeRO flat layout by parameter group: group 0's parameters first, one master view per group") {
  auto model = zt::test::small_mlp();  // 0.weight 4x8, 0.bias 8, 2.weight 3x8, 2.bias 3
  const std::vector<Tensor> originals = model->parameters();
  const std::vector<ParamGroup> groups = make_param_groups(*model, 0.1);
  Adam adam(groups, AdamOptions{});
  ZeroOptions options{.stage = 1};
  options.sharded.param_groups = parameter_group_names(*model, adam);
  CHECK(options.sharded.param_groups ==
        std::vector<std::vector<std::string>>{{"0.weight", "2.weight"}, {"0.bias", "2.bias"}});
  ZeroOptimizer zero(model, nullptr, options, LossScaler(1.0), originals);
  const auto layout = zero.layout();
  REQUIRE(layout.size() == 4);
  CHECK(layout[0].name == "0.weight");
  CHECK(layout[0].offset == 0);
  CHECK(layout[1].name == "2.weight");
  CHECK(layout[1].offset == 32);
  CHECK(layout[2].name == "0.bias");
  CHECK(layout[2].offset == 64);  // 32 + 24 rounded up to 16
  CHECK(layout[3].offset == 80);
  REQUIRE(zero.group_ranges().size() == 2);
  CHECK(zero.group_ranges()[0].offset == 0);
  CHECK(zero.group_ranges()[0].length == 64);
  CHECK(zero.group_ranges()[1].offset == 64);
  CHECK(zero.group_ranges()[1].length == zero.shard_numel() - 64);
  zero.bind(adam);
  REQUIRE(adam.param_groups()[1].params.size() == 1);
  CHECK(adam.param_groups()[1].params[0].same_impl(zero.master_parameters()[1]));
  CHECK(adam.param_groups()[1].weight_decay == 0.0);
  // The weights moved with the layout: 0.bias is flat elements [64, 72).
  CHECK(values(raw::narrow(zero.flat_parameters(), 0, 64, 8)) == values(originals[1]));
  const zt::test::Batch b = zt::test::regression_batch(8);
  zt::backward(mse_loss((*model)(b.x), b.y));
  REQUIRE(zero.unscale_gradients());
  CHECK(values(grad(zero.master_parameters()[1])) == values(raw::narrow(zero.master_gradient(), 0, 64, 32)));
}

TEST_CASE("ZeRO parameter groups: errors name the parameter and the groups") {
  auto model = zt::test::small_mlp();
  const std::vector<Tensor> originals = model->parameters();
  ZeroOptions options{.stage = 2};
  options.sharded.param_groups = {{"0.weight", "2.weight"}, {"0.bias"}};
  CHECK_THROWS_WITH(ZeroOptimizer(model, nullptr, options, LossScaler(1.0), originals),
                    doctest::Contains("parameter '2.bias' requires grad but is in none of the 2 optimizer groups"));
  options.sharded.param_groups = {{"0.weight", "2.weight", "0.bias"}, {"0.bias", "2.bias"}};
  CHECK_THROWS_WITH(ZeroOptimizer(zt::test::small_mlp(), nullptr, options, LossScaler(1.0)),
                    doctest::Contains("parameter '0.bias' is in optimizer groups 0 and 1"));
  options.sharded.param_groups = {{"0.weight", "2.weight"}, {"0.bias", "2.bias"}};
  ZeroOptimizer zero(model, nullptr, options, LossScaler(1.0), originals);
  // An optimizer whose groups differ from the layout's.
  Adam swapped({ParamGroup{{originals[1], originals[3]}}, ParamGroup{{originals[0], originals[2]}}}, AdamOptions{});
  CHECK_THROWS_WITH(zero.bind(swapped), doctest::Contains("optimizer group 0 holds a parameter"));
  Adam one(originals, AdamOptions{});
  CHECK_THROWS_WITH(zero.bind(one), doctest::Contains("for 2 optimizer parameter group(s) but the optimizer has 1"));
}
