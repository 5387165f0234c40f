// Parameter groups in one process (Note [ZeRO parameter groups] in zero/sharded_optimizer.h): an
// optimizer group without parameters (a model without biases leaves nanoGPT's no-decay group
// empty) stays empty, beside a group stepped by SGD with momentum; training and checkpoints work
// at every stage. Two groups on 2 and 4 ranks, where some ranks hold empty ranges of non-empty
// groups (stepped as empty tensors by AdamW and SGD), are in tests/parallel/test_zero_mpi.cpp.
//
// Tolerance against stage 0: relative 1e-6, as tests/zero/test_zero_stage3.cpp argues (one
// process: only the clipping norm's summation order differs).
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>

#include "optim/sgd.h"
#include "tests/temp_dir.h"
#include "zero/zero3_test_util.h"

using namespace zt;

namespace {

zt::test::Task biasless_sgd_task() {
  zt::test::Task task = zt::test::mlp_task();
  task.model = [] {
    manual_seed(7);
    auto m = std::make_shared<Sequential>();
    m->push_back(std::make_shared<Linear>(4, 8, /*bias=*/false));
    m->push_back(std::make_shared<ReLU>());
    m->push_back(std::make_shared<Linear>(8, 3, /*bias=*/false));
    return std::static_pointer_cast<Module>(m);
  };
  task.optimizer = [](Module& m) {
    std::vector<ParamGroup> groups = make_param_groups(m, 0.01);  // group 1: no 1-D parameters
    return std::make_shared<SGD>(std::move(groups), SGDOptions{.lr = 0.05, .momentum = 0.9});
  };
  return task;
}

Config config(int stage) {
  return zt::test::zero_test_config(stage, 2, 1, "", "", zt::test::kProgramOptimizerSchedule);
}

}  // namespace

TEST_CASE("ZeRO with an empty parameter group: it stays empty, stages 1-3 train like stage 0 (SGD, momentum)") {
  const zt::test::Task task = biasless_sgd_task();
  const zt::test::Run reference = zt::test::train_task(task, config(0), nullptr);
  CHECK(reference.losses.back() < reference.losses.front());
  for (int stage : {1, 2, 3}) {
    CAPTURE(stage);
    auto e = zt::test::make_engine(task, config(stage), nullptr);
    auto& zero = dynamic_cast<ShardedOptimizer&>(e->precision());
    REQUIRE(zero.group_ranges().size() == 2);
    CHECK(zero.group_ranges()[1].length == 0);
    // The empty group stays empty in the optimizer, whose state was sized for it.
    CHECK(e->optimizer().param_groups()[1].params.empty());
    zt::test::Run got;
    got.losses = zt::test::steps_on(*e, task, 100, 6, nullptr);
    got.params = zt::test::model_values(*e);
    zt::test::check_same(got, reference, 1e-6);
    const OptimizerState state = e->optimizer().state_dict();
    CHECK(state.scalars.at("state.0.0.step") == 6);
    CHECK(state.scalars.count("state.1.0.step") == 0);
  }
}

TEST_CASE("ZeRO checkpoints with an empty parameter group resume exactly and load into another stage") {
  const zt::test::Task task = biasless_sgd_task();
  zt::test::TempDir dir("zt_zero_groups");
  auto straight = zt::test::make_engine(task, config(2), nullptr);
  zt::test::steps_on(*straight, task, 40, 3, nullptr);
  straight->save_checkpoint(dir.path, "step3");
  zt::test::Run want;
  want.losses = zt::test::steps_on(*straight, task, 43, 3, nullptr);
  want.params = zt::test::model_values(*straight);
  for (int stage : {2, 3}) {
    CAPTURE(stage);
    auto resumed = zt::test::make_engine(task, config(stage), nullptr);
    resumed->load_checkpoint(dir.path);
    zt::test::Run got;
    got.losses = zt::test::steps_on(*resumed, task, 43, 3, nullptr);
    got.params = zt::test::model_values(*resumed);
    if (stage == 2) CHECK(got.params == want.params);  // the same layout: exact
    zt::test::check_same(got, want, 1e-6);
  }
}
