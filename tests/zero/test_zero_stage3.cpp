// ZeRO stage 3 in one process (no communicator): released storage (memory really goes and comes
// back, access errors clearly, views see the gathered values), the unit layout of Note [ZeRO-3
// layout], the hooks of Note [ZeRO-3 hooks] (one unit live at a time without prefetch, prefetch
// bounded by max_live_parameters, nothing left gathered after forward, eval or a step), and
// training that reproduces stage 0 for an MLP and a GPT with tied weights and activation
// checkpointing. The multi-rank behaviour is in tests/parallel/test_zero3_mpi.cpp.
//
// Tolerance against stage 0: relative 1e-6. In one process the gradients are bitwise those of
// stage 0 (the same backward, one rank, the same order of micro-batch sums); only the clipping
// norm is summed in another order (one f64 sum over the shard instead of per-tensor norms), which
// changes the clip coefficient by about one f32 rounding (6e-8) per step.
#include <doctest/doctest.h>

#include <cstdio>
#include <memory>

#include "autograd/autograd.h"
#include "core/allocator.h"
#include "temp_dir.h"
#include "optim/adam.h"
#include "zero/zero3_test_util.h"

using namespace zt;
using zt::test::values;

TEST_CASE("storage release/materialize: the memory goes and comes back, released access errors clearly") {
  Allocator& alloc = allocator_for(Device::cpu());
  auto params_in_use = [&] { return alloc.stats().of(MemoryCategory::parameters).in_use; };
  const int64_t start = params_in_use();
  Tensor t;
  {
    MemoryCategoryScope scope(MemoryCategory::parameters);
    t = zeros({256 * 256});
  }
  const Tensor transposed = raw::transpose(raw::view(t, {256, 256}), 0, 1);  // shares the storage
  CHECK(params_in_use() == start + 262144);
  t.storage()->release();
  CHECK(t.storage()->released());
  CHECK(t.storage()->data() == nullptr);
  CHECK(t.storage()->bytes() == 262144);
  CHECK(params_in_use() == start);
  CHECK_THROWS_WITH(t.raw_data(), doctest::Contains("storage released (ZeRO-3 partitioned parameter not gathered)"));
  CHECK_THROWS_WITH(transposed.to_vector<float>(), doctest::Contains("storage released"));
  CHECK_THROWS_WITH(raw::fill_(t, 1.0), doctest::Contains("storage released"));
  t.storage()->release();  // already released: nothing changes
  CHECK(params_in_use() == start);
  t.set_memory_category(MemoryCategory::other);  // released bytes are not moved between categories
  CHECK(params_in_use() == start);
  t.set_memory_category(MemoryCategory::parameters);

  t.storage()->materialize();
  CHECK_FALSE(t.storage()->released());
  CHECK(params_in_use() == start + 262144);
  raw::copy_(t, arange(0, 256 * 256, 1, DType::f32));
  // The view made before the release reads the new memory.
  CHECK(raw::select(raw::select(transposed, 0, 3), 0, 1).item() == 256 + 3);
  t.storage()->materialize();  // already there: nothing changes
  CHECK(params_in_use() == start + 262144);

  t.storage()->release();
  t = Tensor();  // a released storage is destroyed without freeing twice
  CHECK(params_in_use() == start);

  float external[4] = {1, 2, 3, 4};
  StorageImpl wrapped(external, sizeof external, Device::cpu());
  CHECK_THROWS_WITH(wrapped.release(), doctest::Contains("external memory"));
}

TEST_CASE("ZeRO-3 layout: a unit per module, aligned and padded, parameters released outside use") {
  auto model = zt::test::small_mlp();  // Linear(4, 8): 32 + 8, Linear(8, 3): 24 + 3
  const auto reference = zt::test::small_mlp();
  ZeroStage3Optimizer z(model, nullptr, {.param_persistence_threshold = 0}, LossScaler(1.0));
  CHECK(z.numel() == 67);
  REQUIRE(z.num_units() == 2);
  CHECK(z.unit_parameters(0) == std::vector<std::string>{"0.weight", "0.bias"});
  CHECK(z.unit_parameters(1) == std::vector<std::string>{"2.weight", "2.bias"});
  // Offsets 0 and 32 in each unit; 40 and 35 elements rounded up to 48 (16 x 1 rank).
  CHECK(z.unit_padded_numel(0) == 48);
  CHECK(z.unit_padded_numel(1) == 48);
  CHECK(z.shard_numel() == 96);
  const std::vector<ShardPiece> pieces = z.shard_pieces();
  REQUIRE(pieces.size() == 4);
  CHECK(pieces[1].name == "0.bias");
  CHECK(pieces[1].shard_offset == 32);
  CHECK(pieces[2].shard_offset == 48);
  for (int64_t u = 0; u < 2; ++u) CHECK_FALSE(z.unit_gathered(size_t(u)));
  CHECK(z.live_elements() == 0);
  CHECK_THROWS_WITH(values(model->named_parameters().front().second), doctest::Contains("storage released"));
  // The shard holds the parameters: gathered, they are the original values.
  const TensorDict gathered = z.gathered_state_dict();
  for (const auto& [name, t] : reference->state_dict()) CHECK(values(gathered.at(name)) == values(t));
  CHECK(z.live_elements() == 0);

  // Forward gathers one Linear at a time (the first forward records the order, no prefetch yet).
  const Tensor x = randn({5, 4});
  NoGradGuard no_grad;
  z.reset_peak_live();
  CHECK(values((*model)(x)) == values((*reference)(x)));
  CHECK(z.peak_live_elements() == 48);
  CHECK(z.live_elements() == 0);
  // Then the second Linear is prefetched while the first runs (64 elements fit one unit of 48).
  z.reset_peak_live();
  CHECK(values((*model)(x)) == values((*reference)(x)));
  CHECK(z.peak_live_elements() == 96);
  CHECK(z.live_elements() == 0);
}

// Note [ZeRO-3 layout] with nanoGPT's two groups: each Linear's weight and bias are two units (one
// per group), both gathered by the Linear's hooks; the shard holds group 0's slices first.
TEST_CASE("ZeRO-3 layout by parameter group: a unit per module and group, the shard group by group") {
  auto model = zt::test::small_mlp();
  const auto reference = zt::test::small_mlp();
  const std::vector<ParamGroup> groups = make_param_groups(*model, 0.1);
  Adam adam(groups, AdamOptions{});
  Stage3Options options{.param_persistence_threshold = 0};
  options.sharded.param_groups = parameter_group_names(*model, adam);
  ZeroStage3Optimizer z(model, nullptr, options, LossScaler(1.0), model->parameters());
  REQUIRE(z.num_units() == 4);
  CHECK(z.unit_parameters(0) == std::vector<std::string>{"0.weight"});
  CHECK(z.unit_parameters(1) == std::vector<std::string>{"0.bias"});
  CHECK(z.unit_parameters(2) == std::vector<std::string>{"2.weight"});
  CHECK(z.unit_parameters(3) == std::vector<std::string>{"2.bias"});
  REQUIRE(z.group_ranges().size() == 2);
  CHECK(z.group_ranges()[0].offset == 0);
  CHECK(z.group_ranges()[0].length == 32 + 32);  // 32 and 24 elements, padded to 16s
  CHECK(z.group_ranges()[1].offset == 64);
  CHECK(z.group_ranges()[1].length == 16 + 16);
  for (const ShardPiece& piece : z.shard_pieces()) {
    CAPTURE(piece.name);
    const bool bias = piece.name.find("bias") != std::string::npos;
    CHECK(piece.shard_offset >= (bias ? 64 : 0));
    CHECK(piece.shard_offset + piece.length <= (bias ? 96 : 64));
  }
  z.bind(adam);
  CHECK(adam.param_groups()[0].params[0].numel() == 64);
  // Forward gathers both units of each Linear.
  const Tensor x = randn({5, 4});
  NoGradGuard no_grad;
  CHECK(values((*model)(x)) == values((*reference)(x)));
  CHECK(z.live_elements() == 0);
}

TEST_CASE("ZeRO-3 after a forward that threw: the next forward gathers and releases as usual") {
  auto model = zt::test::small_mlp();
  const auto reference = zt::test::small_mlp();
  ZeroStage3Optimizer z(model, nullptr, {.param_persistence_threshold = 0}, LossScaler(1.0));
  NoGradGuard no_grad;
  CHECK_THROWS((*model)(randn({5, 7})));  // the first Linear expects 4 features
  CHECK(z.live_elements() == 48);         // its unit is still held
  const Tensor x = randn({5, 4});
  CHECK(values((*model)(x)) == values((*reference)(x)));
  CHECK(z.live_elements() == 0);
}

TEST_CASE("ZeRO-3 prefetch stays within stage3_max_live_parameters; persistent units stay gathered") {
  auto model = zt::test::small_mlp();
  ZeroStage3Optimizer bounded(model, nullptr,
                              {.prefetch_bucket_size = 1000, .max_live_parameters = 50,
                               .param_persistence_threshold = 0},
                              LossScaler(1.0));
  NoGradGuard no_grad;
  const Tensor x = randn({5, 4});
  for (int pass = 0; pass < 3; ++pass) (*model)(x);
  CHECK(bounded.peak_live_elements() == 48);

  auto small = zt::test::small_mlp();
  const auto reference = zt::test::small_mlp();
  // Unit 0 has 40 elements, unit 1 27: only unit 1 is at most the threshold and stays gathered.
  ZeroStage3Optimizer persistent(small, nullptr, {.param_persistence_threshold = 30}, LossScaler(1.0));
  CHECK_FALSE(persistent.unit_persistent(0));
  CHECK(persistent.unit_persistent(1));
  CHECK_FALSE(persistent.unit_gathered(0));
  CHECK(persistent.unit_gathered(1));
  CHECK(values(small->named_parameters()[2].second) == values(reference->named_parameters()[2].second));
  (*small)(x);
  CHECK(persistent.peak_live_elements() == 48);  // persistent units are not counted as live
  CHECK(persistent.live_elements() == 0);
  CHECK(persistent.unit_gathered(1));
}

TEST_CASE("ZeRO-3 tied weights: one unit owned by the first module, every state_dict name maps to it") {
  auto gpt = zt::test::tiny_gpt(false);
  const auto reference = zt::test::tiny_gpt(false);
  ZeroStage3Optimizer z(gpt, nullptr, {.param_persistence_threshold = 0}, LossScaler(1.0));
  CHECK(z.unit_parameters(0) == std::vector<std::string>{"wte.weight"});
  bool head = false;
  for (const auto& [name, owner] : z.partitioned_state_names())
    if (name == "lm_head.weight") head = owner == "wte.weight";
  CHECK(head);
  const TensorDict gathered = z.gathered_state_dict();
  CHECK(values(gathered.at("lm_head.weight")) == values(reference->token_embedding()));
  const zt::test::Batch b = zt::test::token_batch(3);
  NoGradGuard no_grad;
  CHECK(values((*gpt)(b.x)) == values((*reference)(b.x)));
  CHECK(z.live_elements() == 0);
}

TEST_CASE("ZeRO-3 reproduces stage 0 in one process: MLP, f32, accumulation 1 and 2, clipping") {
  const zt::test::Task task = zt::test::mlp_task();
  for (int64_t accum : {1, 2}) {
    CAPTURE(accum);
    const zt::test::Run reference = zt::test::train_task(task, zt::test::zero3_test_config(0, accum, 1), nullptr);
    CHECK(reference.losses.back() < reference.losses.front());
    const zt::test::Run got = zt::test::train_task(task, zt::test::zero3_test_config(3, accum, 1), nullptr);
    zt::test::check_same(got, reference, 1e-6);
  }
}

TEST_CASE("ZeRO-3 reproduces stage 0 in one process: GPT with a tied head and activation checkpointing") {
  for (int64_t accum : {1, 2}) {
    CAPTURE(accum);
    const zt::test::Run reference =
        zt::test::train_task(zt::test::gpt_task(false), zt::test::zero3_test_config(0, accum, 1), nullptr);
    CHECK(reference.losses.back() < reference.losses.front());
    for (bool checkpointing : {false, true}) {
      CAPTURE(checkpointing);
      zt::test::check_same(
          zt::test::train_task(zt::test::gpt_task(checkpointing), zt::test::zero3_test_config(3, accum, 1), nullptr),
          reference, 1e-6);
    }
  }
}

// Persistence threshold 200: the LayerNorms (32 elements) and the position embedding (128) stay
// gathered and must show the updated weights after every step.
TEST_CASE("ZeRO-3 through the engine: eval forward mid-training, nothing stays gathered after a step") {
  InitOptions o;
  o.monitor = false;
  auto e = initialize(zt::test::tiny_gpt(true), zt::test::zero3_test_config(3, 1, 1, "", 200), o);
  auto& z = dynamic_cast<ZeroStage3Optimizer&>(e->precision());
  const zt::test::Batch b = zt::test::token_batch(9);
  const auto ln_f = dynamic_cast<GPT&>(e->module()).named_parameters().back();  // ln_f.bias, persistent
  REQUIRE(ln_f.first == "ln_f.bias");
  for (int step = 0; step < 2; ++step) {
    e->backward(cross_entropy(e->forward(b.x), b.y));
    CHECK(z.live_elements() == 0);  // after_backward released what backward gathered
    e->step();
    CHECK(e->was_step_applied());
    CHECK(z.live_elements() == 0);
    const std::vector<double> now = values(ln_f.second);
    CHECK(now != std::vector<double>(now.size(), 0.0));  // it started at zero and was updated
    CHECK(now == values(z.gathered_state_dict().at("ln_f.bias")));
    e->eval();
    {
      NoGradGuard no_grad;
      CHECK(raw::all_finite(e->forward(b.x)));
    }
    e->train();
    CHECK(z.live_elements() == 0);
  }
}

// Stage 0 is the same flat optimizer with nothing partitioned, so its checkpoint holds the same
// per-parameter fragments: it resumes under ZeRO-3, and both continue alike.
TEST_CASE("ZeRO-3 resumes a stage-0 checkpoint") {
  zt::test::TempDir dir("zt_zero3_stage0");
  const zt::test::Task task = zt::test::mlp_task();
  auto stage0 = zt::test::make_engine(task, zt::test::zero3_test_config(0, 1, 1), nullptr);
  zt::test::steps_on(*stage0, task, 1, 1, nullptr);
  stage0->save_checkpoint(dir.path, "step1");
  auto stage3 = zt::test::make_engine(task, zt::test::zero3_test_config(3, 1, 1), nullptr);
  stage3->load_checkpoint(dir.path);
  CHECK(zt::test::model_values(*stage3) == zt::test::model_values(*stage0));
  zt::test::Run next0, next3;
  next0.losses = zt::test::steps_on(*stage0, task, 2, 2, nullptr);
  next0.params = zt::test::model_values(*stage0);
  next3.losses = zt::test::steps_on(*stage3, task, 2, 2, nullptr);
  next3.params = zt::test::model_values(*stage3);
  zt::test::check_same(next3, next0, 1e-6);  // f32, one rank: only the summation order differs
}

// stage3_max_reuse_distance (Note [ZeRO-3 hooks], reuse): units whose next use is near stay
// gathered after their forward, so backward reuses them instead of gathering them again; the
// values are the same, so the run is bitwise the same. max_live_parameters still bounds it, and
// 0 releases after every use.
TEST_CASE("ZeRO-3 stage3_max_reuse_distance: fewer gathers, the same run; bounded by max_live_parameters") {
  const zt::test::Task task = zt::test::gpt_task(false);
  struct Result {
    zt::test::Run run;
    int64_t gathers = 0, peak_live = 0;
  };
  auto train = [&](int64_t distance, int64_t max_live) {
    const std::string keys = R"("stage3_max_reuse_distance": )" +
                             std::to_string(distance) + R"(, "stage3_max_live_parameters": )" +
                             std::to_string(max_live) + ", ";
    auto e = zt::test::make_engine(task, zt::test::zero_test_config(3, 1, 1, "", keys), nullptr);
    Result r;
    r.run.losses = zt::test::steps_on(*e, task, 100, 4, nullptr);
    r.run.params = zt::test::model_values(*e);
    const auto& z = dynamic_cast<ZeroStage3Optimizer&>(e->precision());
    r.gathers = z.gather_count();
    r.peak_live = z.peak_live_elements();
    CHECK(z.live_elements() == 0);  // nothing stays gathered after the step
    return r;
  };
  const Result plain = train(0, 1'000'000'000);
  const Result reuse = train(1'000'000'000, 1'000'000'000);
  const Result bounded = train(1'000'000'000, 1);
  zt::test::check_same(reuse.run, plain.run, 0.0);
  zt::test::check_same(bounded.run, plain.run, 0.0);
  CAPTURE(plain.gathers);
  CAPTURE(reuse.gathers);
  // Every unit gathered once per forward and once per backward without reuse; with it, the
  // units kept through the first (tracing) forward's end are gathered again, later ones not.
  CHECK(reuse.gathers < plain.gathers);
  CHECK(reuse.peak_live > plain.peak_live);   // the price: more gathered at once
  CHECK(bounded.gathers == plain.gathers);     // nothing may be kept past 1 live element
  // A distance that only the nearest reuse meets keeps fewer units than an unbounded one.
  const Result near = train(1, 1'000'000'000);
  zt::test::check_same(near.run, plain.run, 0.0);
  CHECK(near.gathers <= plain.gathers);
  CHECK(near.gathers >= reuse.gathers);
}
