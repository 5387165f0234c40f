// Checkpoints: the folder layout, a bitwise save/load round trip of a module + Adam state +
// scalars (and the next optimizer step after it), consolidation, the standard scalar codecs, and
// the errors a damaged or mismatched checkpoint gives. Resharding and crash safety:
// test_checkpoint_reshard.cpp.
#include <doctest/doctest.h>

#include "temp_dir.h"

#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "core/factory.h"
#include "core/ops.h"
#include "nn/linear.h"
#include "optim/adam.h"
#include "runtime/checkpoint.h"
#include "runtime/checkpoint_io.h"
#include "runtime/checkpoint_state.h"
#include "runtime/safetensors.h"

using namespace zt;

namespace {

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("zt_checkpoint") {}
};

std::string bytes_of(const Tensor& t) {
  const Tensor c = raw::contiguous(t);
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

bool same_bits(const TensorDict& a, const TensorDict& b) {
  if (a.keys() != b.keys()) return false;
  for (const auto& [name, t] : a) {
    const Tensor& u = b.at(name);
    if (t.dtype() != u.dtype() || t.shape() != u.shape() || bytes_of(t) != bytes_of(u)) return false;
  }
  return true;
}

struct Mlp : Module {
  std::shared_ptr<Linear> fc1, fc2;
  Mlp() {
    fc1 = register_module("fc1", std::make_shared<Linear>(3, 4));
    fc2 = register_module("fc2", std::make_shared<Linear>(4, 2));
  }
  Tensor forward(const Tensor& x) override { return (*fc2)((*fc1)(x)); }
};

// Deterministic, non-trivial gradients: step k gives parameter i the values sin(k + i + j).
void fake_gradients(Module& m, int k) {
  int i = 0;
  for (const Tensor& p : m.parameters()) {
    std::vector<float> g(size_t(p.numel()));
    for (size_t j = 0; j < g.size(); ++j) g[j] = std::sin(float(k + i + int(j)));
    set_grad(p, from_vector(g, p.shape()));
    ++i;
  }
}

struct Trained {
  std::shared_ptr<Mlp> model = std::make_shared<Mlp>();
  std::unique_ptr<Adam> adam;
  explicit Trained(int steps) {
    AdamOptions o;
    o.lr = 0.01;
    adam = std::make_unique<Adam>(model->parameters(), o);
    for (int k = 0; k < steps; ++k) {
      fake_gradients(*model, k);
      adam->step();
    }
  }
  CheckpointState state() const {
    CheckpointState s;
    s.model = model->state_dict();
    for (const auto& [n, p] : model->named_parameters()) s.master.set(n, raw::clone(p));
    s.optimizer = adam->state_dict();
    s.scalars = {{"global_step", 3}, {"scheduler", {{"last_step", 2}}},
                 {"rng", {{"seed", 1234}, {"offset", uint64_t(1) << 40}}},
                 {"loader", {{"epoch", 1}, {"batch", 7}}}};
    s.client_state = {{"note", "hello"}, {"third", 1.0 / 3.0}};
    return s;
  }
};

}  // namespace

TEST_CASE("a checkpoint round trips a module, Adam state and scalars bitwise") {
  TempDir dir;
  Trained a(3);
  save_checkpoint_files(dir.path, "global_step3", 0, 1, a.state());

  SUBCASE("the folder holds the documented files and `latest` names the tag") {
    CHECK(read_latest_tag(dir.path) == "global_step3");
    for (const char* f : {"index.json", "rank0.safetensors", "rank0_state.json", "rank0_fragments.json"}) {
      CHECK_MESSAGE(path_exists(dir.path + "/global_step3/" + f), f);
    }
    CHECK(!path_exists(dir.path + "/.global_step3.partial"));
    // The shard is a plain safetensors file: other tools can read it.
    const SafetensorsFile shard = load_safetensors(dir.path + "/global_step3/rank0.safetensors");
    CHECK(bytes_of(shard.tensors.at("model/fc1.weight")) == bytes_of(a.model->fc1->weight()));
    CHECK(shard.tensors.contains("optim/state.0.0.exp_avg"));
  }

  SUBCASE("loading restores everything, and the next step matches bitwise") {
    Trained b(0);
    const TensorDict expected_model = b.model->state_dict();
    const CheckpointState s = load_checkpoint_files(dir.path, "", 0, 1, nullptr, &expected_model);
    CHECK(same_bits(s.model, a.model->state_dict()));
    CHECK(same_bits(s.master, a.state().master));
    const OptimizerState saved = a.adam->state_dict();
    CHECK(same_bits(s.optimizer.tensors, saved.tensors));
    CHECK(s.optimizer.scalars == saved.scalars);
    CHECK(s.scalars == a.state().scalars);
    CHECK(s.client_state == a.state().client_state);
    CHECK(s.client_state["third"].get<double>() == 1.0 / 3.0);
    CHECK(s.scalars["rng"]["offset"].get<uint64_t>() == uint64_t(1) << 40);

    b.model->load_state_dict(s.model);
    b.adam->load_state_dict(s.optimizer);
    fake_gradients(*a.model, 3);
    fake_gradients(*b.model, 3);
    a.adam->step();
    b.adam->step();
    CHECK(same_bits(a.model->state_dict(), b.model->state_dict()));
  }

  SUBCASE("consolidate gives f32 weights: master where saved, model otherwise") {
    const TensorDict full = consolidate(dir.path);
    CHECK(same_bits(full, a.model->state_dict()));

    Trained c(2);
    c.model->to(DType::bf16);
    CheckpointState s;
    s.model = c.model->state_dict();
    save_checkpoint_files(dir.path, "bf16_no_master", 0, 1, s);
    const TensorDict from_bf16 = consolidate(dir.path, "bf16_no_master");
    CHECK(from_bf16.at("fc2.bias").dtype() == DType::f32);
    CHECK(bytes_of(from_bf16.at("fc2.bias")) == bytes_of(raw::to(c.model->fc2->parameter("bias"), DType::f32)));

    s.master.set("fc2.bias", from_vector(std::vector<float>{0.125f, -1e-7f}, {2}));
    save_checkpoint_files(dir.path, "bf16_master", 0, 1, s);
    CHECK(consolidate(dir.path).at("fc2.bias").to_vector<float>() == std::vector<float>{0.125f, -1e-7f});
  }
}

TEST_CASE("damaged or mismatched checkpoints give errors naming the problem") {
  TempDir dir;
  Trained a(1);
  save_checkpoint_files(dir.path, "t1", 0, 1, a.state());
  const std::string folder = dir.path + "/t1";

  SUBCASE("no latest") {
    CHECK_THROWS_WITH_AS(read_latest_tag(dir.path + "/nowhere"), doctest::Contains("no checkpoint to resume from"), Error);
  }
  SUBCASE("an unknown tag") {
    CHECK_THROWS_WITH_AS(load_checkpoint_files(dir.path, "t9", 0, 1), doctest::Contains("t9 does not exist"), Error);
  }
  SUBCASE("a missing shard") {
    remove_tree(folder + "/rank0.safetensors");
    CHECK_THROWS_WITH_AS(load_checkpoint_files(dir.path, "t1", 0, 1),
                         doctest::Contains("file rank0.safetensors listed in index.json is missing"), Error);
  }
  SUBCASE("a truncated shard") {
    const std::string bytes = read_file_bytes(folder + "/rank0.safetensors");
    write_file_atomic(folder + "/rank0.safetensors", bytes.substr(0, bytes.size() - 10));
    CHECK_THROWS_WITH_AS(load_checkpoint_files(dir.path, "t1", 0, 1), doctest::Contains("(truncated)"), Error);
  }
  SUBCASE("a shard damaged in place") {
    std::string bytes = read_file_bytes(folder + "/rank0.safetensors");
    bytes[8] = '[';  // the header no longer starts with '{'
    write_file_atomic(folder + "/rank0.safetensors", bytes);
    CHECK_THROWS_WITH_AS(load_checkpoint_files(dir.path, "t1", 0, 1),
                         doctest::Contains("rank0.safetensors: the header must be a JSON object"), Error);
  }
  SUBCASE("a missing index") {
    remove_tree(folder + "/index.json");
    CHECK_THROWS_WITH_AS(load_checkpoint_files(dir.path, "t1", 0, 1), doctest::Contains("has no index.json"), Error);
  }
  SUBCASE("the model does not match: every difference is listed") {
    TensorDict expected;
    expected.set("fc1.weight", zeros({4, 5}));          // shape differs
    expected.set("fc1.bias", zeros({4}));                // matches
    expected.set("fc3.weight", zeros({1}));              // not in the checkpoint
    // fc2.weight and fc2.bias are in the checkpoint only.
    try {
      load_checkpoint_files(dir.path, "t1", 0, 1, nullptr, &expected);
      FAIL("a mismatched model was accepted");
    } catch (const Error& e) {
      const std::string msg = e.what();
      CHECK_MESSAGE(msg.find("does not match the model (4 problems)") != std::string::npos, msg);
      CHECK_MESSAGE(msg.find("fc1.weight: checkpoint has (4, 3) F32, the model has (4, 5) F32") != std::string::npos, msg);
      CHECK_MESSAGE(msg.find("missing from the checkpoint: fc3.weight") != std::string::npos, msg);
      CHECK_MESSAGE(msg.find("not in the model: fc2.weight") != std::string::npos, msg);
      CHECK_MESSAGE(msg.find("not in the model: fc2.bias") != std::string::npos, msg);
    }
  }
  SUBCASE("bad tags and ranks") {
    CHECK_THROWS_WITH_AS(save_checkpoint_files(dir.path, "a/b", 0, 1, a.state()),
                         doctest::Contains("not usable as a folder name"), Error);
    CHECK_THROWS_WITH_AS(save_checkpoint_files(dir.path, "t2", 0, 2, a.state()),
                         doctest::Contains("needs a communicator"), Error);
    CHECK_THROWS_WITH_AS(write_rank_files(dir.path, "t2", 2, 2, a.state()),
                         doctest::Contains("rank 2 is outside a world of 2"), Error);
  }
}

TEST_CASE("the standard scalars survive a checkpoint exactly and damaged ones are named") {
  TempDir dir;
  Generator gen(0xFFFFFFFFFFFFFFF1ull);  // above 2^63: must stay an exact unsigned integer
  gen.reserve(1000);
  CheckpointState s;
  s.model.set("w", zeros({1}));
  s.scalars = {{"rng", generator_to_json(gen)},
               {"loader", loader_position_to_json({2, 17})},
               {"scheduler", lr_schedule_to_json({41})}};
  save_checkpoint_files(dir.path, "t", 0, 1, s);
  const CheckpointState back = load_checkpoint_files(dir.path, "", 0, 1);
  Generator restored;
  generator_from_json(restored, back.scalars["rng"]);
  CHECK(restored.seed() == gen.seed());
  CHECK(restored.offset() == gen.offset());
  CHECK(loader_position_from_json(back.scalars["loader"]) == LoaderPosition{2, 17});
  CHECK(lr_schedule_from_json(back.scalars["scheduler"]).last_step == 41);

  CHECK_THROWS_WITH_AS(generator_from_json(restored, {{"seed", 1}}),
                       doctest::Contains("checkpoint RNG state needs an integer \"offset\""), Error);
  CHECK_THROWS_WITH_AS(generator_from_json(restored, {{"seed", -1}, {"offset", 0}}),
                       doctest::Contains("\"seed\" must not be negative"), Error);
  CHECK_THROWS_WITH_AS(loader_position_from_json({{"epoch", 1}, {"batch", "x"}}),
                       doctest::Contains("data-loader state needs an integer \"batch\""), Error);
  CHECK_THROWS_WITH_AS(lr_schedule_from_json(nullptr), doctest::Contains("scheduler state needs"), Error);
}
