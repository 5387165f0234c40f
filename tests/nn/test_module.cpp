// Module: registration and dotted names, state_dict round trips and mismatch errors, dtype
// moves, train/eval, and the order and counts of forward/backward hooks; the modules that compute
// or hold state move to the device under test (tests/test_device.h) first.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "nn/activation.h"
#include "nn/dropout.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "tests/error_of.h"
#include "tests/test_device.h"

using namespace zt;
using zt::test::error_of;

namespace {

struct Attention : Module {
  std::shared_ptr<Linear> qkv, proj;
  Attention() {
    qkv = register_module("qkv", std::make_shared<Linear>(4, 12));
    proj = register_module("proj", std::make_shared<Linear>(4, 4, false));
  }
  Tensor forward(const Tensor& x) override { return (*proj)(narrow((*qkv)(x), -1, 0, 4)); }
};

struct Block : Module {
  std::shared_ptr<LayerNorm> ln;
  std::shared_ptr<Attention> attn;
  Block() {
    ln = register_module("ln", std::make_shared<LayerNorm>(4));
    attn = register_module("attn", std::make_shared<Attention>());
    register_buffer("counter", zeros({1}, DType::i64));
  }
  Tensor forward(const Tensor& x) override { return x + (*attn)((*ln)(x)); }
};

struct Net : Module {
  std::shared_ptr<Sequential> blocks;
  Net() {
    blocks = register_module("blocks", std::make_shared<Sequential>());
    for (int i = 0; i < 4; ++i) blocks->push_back(std::make_shared<Block>());
  }
  Tensor forward(const Tensor& x) override { return (*blocks)(x); }
};

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& items) {
  std::vector<std::string> out;
  for (const auto& [name, t] : items) out.push_back(name);
  return out;
}

}  // namespace

TEST_CASE("Sequential names children 0, 1, ... and parameters with dots") {
  Sequential seq;
  seq.push_back(std::make_shared<Linear>(2, 3));
  seq.push_back(std::make_shared<ReLU>());
  auto last = seq.push_back(std::make_shared<Linear>(3, 1));
  seq.to(test::device());  // replaces the parameters: what follows holds for the new ones
  CHECK(last->out_features() == 1);
  CHECK(names_of(seq.named_parameters()) ==
        std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  CHECK(seq.num_parameters() == 2 * 3 + 3 + 3 * 1 + 1);
  CHECK(seq.children().size() == 3);
  CHECK(seq.named_children()[1].first == "1");
  for (const Tensor& p : seq.parameters()) {
    CHECK(requires_grad(p));
    CHECK(is_leaf(p));
    CHECK(p.storage()->category() == MemoryCategory::parameters);
  }
}

TEST_CASE("nested modules give full dotted names in registration order") {
  Net net;
  auto names = names_of(net.named_parameters());
  REQUIRE(names.size() == 4 * 5);
  CHECK(names[0] == "blocks.0.ln.weight");
  CHECK(names[1] == "blocks.0.ln.bias");
  CHECK(names[2] == "blocks.0.attn.qkv.weight");
  CHECK(names[3] == "blocks.0.attn.qkv.bias");
  CHECK(names[4] == "blocks.0.attn.proj.weight");
  CHECK(names[17] == "blocks.3.attn.qkv.weight");
  CHECK(names_of(net.named_buffers()) ==
        std::vector<std::string>{"blocks.0.counter", "blocks.1.counter", "blocks.2.counter",
                                 "blocks.3.counter"});
  CHECK(net.num_parameters() == 4 * (4 + 4 + 48 + 12 + 16));
  auto modules = net.named_modules();
  CHECK(modules[0].first == "");
  CHECK(modules[1].first == "blocks");
  CHECK(modules[2].first == "blocks.0");
  CHECK(modules[4].first == "blocks.0.attn");
  CHECK(modules[5].first == "blocks.0.attn.qkv");
}

TEST_CASE("registration rejects duplicate, dotted and empty names") {
  Linear lin(2, 2);
  CHECK(error_of([&] { lin.register_parameter("weight", zeros({2})); }).find("already registered") !=
        std::string::npos);
  CHECK(error_of([&] { lin.register_buffer("a.b", zeros({2})); }).find("'.'") != std::string::npos);
  CHECK_THROWS_AS(lin.register_module("", std::make_shared<ReLU>()), Error);
  CHECK(error_of([&] { (void)lin.parameter("nope"); }).find("weight, bias") != std::string::npos);
}

TEST_CASE("state_dict round trip copies parameters and buffers") {
  manual_seed(1);
  Net a;
  manual_seed(2);
  Net b;
  a.to(test::device());
  b.to(test::device());
  auto pa = a.named_parameters(), pb = b.named_parameters();
  CHECK(raw::max_abs_diff(pa[2].second, pb[2].second) > 0);  // different seeds differ
  {
    NoGradGuard ng;
    raw::fill_(a.blocks->child("2")->buffer("counter"), 7);
  }
  TensorDict sd = a.state_dict();
  CHECK(sd.size() == 4 * 5 + 4);
  // Each module's own parameters, then its buffers, then its children (PyTorch's order).
  CHECK(sd.keys()[0] == "blocks.0.counter");
  CHECK(sd.keys()[1] == "blocks.0.ln.weight");
  CHECK(sd.keys()[6] == "blocks.1.counter");
  b.load_state_dict(sd);
  pb = b.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) CHECK(raw::max_abs_diff(pa[i].second, pb[i].second) == 0);
  CHECK(b.blocks->child("2")->buffer("counter").item() == 7);
  // The load copied values: the tensors themselves stay distinct.
  CHECK(!pa[0].second.shares_storage(pb[0].second));
}

TEST_CASE("load_state_dict lists missing and unexpected keys, and checks shapes and dtypes") {
  Sequential seq;
  seq.push_back(std::make_shared<Linear>(2, 3));
  seq.to(test::device());
  TensorDict sd = seq.state_dict();

  TensorDict missing;
  missing.set("0.weight", sd.at("0.weight"));
  missing.set("0.extra", zeros({1}, test::opts()));
  std::string msg = error_of([&] { seq.load_state_dict(missing); });
  CHECK(msg.find("missing: 0.bias") != std::string::npos);
  CHECK(msg.find("unexpected: 0.extra") != std::string::npos);

  TensorDict bad_shape;
  bad_shape.set("0.weight", zeros({3, 3}, test::opts()));
  bad_shape.set("0.bias", sd.at("0.bias"));
  msg = error_of([&] { seq.load_state_dict(bad_shape); });
  CHECK(msg.find("expected shape (3, 2)") != std::string::npos);
  CHECK(msg.find("(3, 3)") != std::string::npos);

  TensorDict bad_dtype;
  bad_dtype.set("0.weight", zeros({3, 2}, test::opts(DType::f64)));
  bad_dtype.set("0.bias", sd.at("0.bias"));
  CHECK(error_of([&] { seq.load_state_dict(bad_dtype); }).find("dtype f32") != std::string::npos);

  // Non-strict: present keys load, absent ones are left alone.
  TensorDict partial;
  partial.set("0.bias", full({3}, 0.5, test::opts()));
  partial.set("1.unknown", zeros({1}, test::opts()));
  Tensor w_before = raw::clone(sd.at("0.weight"));
  seq.load_state_dict(partial, false);
  auto lin = std::dynamic_pointer_cast<Linear>(seq[0]);
  REQUIRE(lin);
  CHECK(lin->bias().to_vector<float>() == std::vector<float>{0.5f, 0.5f, 0.5f});
  CHECK(raw::max_abs_diff(lin->weight(), w_before) == 0);
}

TEST_CASE("to(DType::f64) replaces floating parameters and keeps them trainable") {
  Net net;
  net.to(test::device());
  Tensor old_w = net.named_parameters()[2].second;
  net.to(DType::f64);
  for (const auto& [name, p] : net.named_parameters()) {
    CHECK(p.dtype() == DType::f64);
    CHECK(requires_grad(p));
    CHECK(is_leaf(p));
    CHECK(p.storage()->category() == MemoryCategory::parameters);
  }
  CHECK(net.named_buffers()[0].second.dtype() == DType::i64);  // integer buffers stay
  Tensor new_w = net.named_parameters()[2].second;
  CHECK(raw::max_abs_diff(raw::to(old_w, DType::f64), new_w) < 1e-7);
  // The layers read the new tensors: forward runs in f64 and gradients reach them.
  Tensor x = randn({3, 4}, test::opts(DType::f64));
  Tensor y = net(x);
  CHECK(y.dtype() == DType::f64);
  backward(sum(y));
  for (const auto& [name, p] : net.named_parameters()) CHECK(grad(p).defined());
  net.zero_grad();
  for (const auto& [name, p] : net.named_parameters()) CHECK(!grad(p).defined());
}

TEST_CASE("train/eval switch Dropout recursively") {
  Sequential seq;
  auto drop = seq.push_back(std::make_shared<Dropout>(0.5));
  Tensor x = ones({1000}, test::opts());
  CHECK(seq.is_training());
  Tensor y = seq(x);
  auto v = y.to_vector<float>();
  int zeros_seen = 0;
  for (float e : v) {
    CHECK((e == 0.0f || e == 2.0f));
    zeros_seen += e == 0.0f;
  }
  CHECK(zeros_seen > 350);
  CHECK(zeros_seen < 650);
  seq.eval();
  CHECK(!drop->is_training());
  CHECK(raw::max_abs_diff(seq(x), x) == 0);
  seq.train();
  CHECK(drop->is_training());
}

TEST_CASE("forward and backward hooks fire in order with counts") {
  Sequential seq;
  auto l0 = seq.push_back(std::make_shared<Linear>(3, 4));
  auto l1 = seq.push_back(std::make_shared<Linear>(4, 2));
  seq.to(test::device());
  std::vector<std::string> events;
  for (auto [name, m] : std::vector<std::pair<std::string, std::shared_ptr<Linear>>>{{"l0", l0},
                                                                                      {"l1", l1}}) {
    m->register_forward_pre_hook([&events, name](Module&, const Tensor&) {
      events.push_back(name + ".pre_forward");
    });
    m->register_forward_hook([&events, name](Module&, const Tensor& in, const Tensor& out) {
      CHECK(out.size(-1) != in.size(-1));
      events.push_back(name + ".forward");
    });
    m->register_backward_pre_hook([&events, name](Module&) { events.push_back(name + ".pre_backward"); });
    m->register_backward_hook([&events, name](Module&) { events.push_back(name + ".backward"); });
  }
  Tensor x = randn({5, 3}, test::opts());
  set_requires_grad(x);
  Tensor loss = sum(seq(x));
  CHECK(events == std::vector<std::string>{"l0.pre_forward", "l0.forward", "l1.pre_forward",
                                           "l1.forward"});
  events.clear();
  backward(loss);
  CHECK(events == std::vector<std::string>{"l1.pre_backward", "l1.backward", "l0.pre_backward",
                                           "l0.backward"});
  CHECK(grad(x).defined());
}

TEST_CASE("backward hooks fire when the input needs no grad, and handles remove hooks") {
  Linear lin(3, 2);
  lin.to(test::device());
  std::vector<std::string> events;
  HookHandle h_pre = lin.register_backward_pre_hook([&](Module&) { events.push_back("pre_backward"); });
  lin.register_backward_hook([&](Module&) { events.push_back("backward"); });
  HookHandle h_fwd = lin.register_forward_pre_hook([&](Module&, const Tensor&) {
    events.push_back("pre_forward");
  });
  backward(sum(lin(randn({2, 3}, test::opts()))));  // the input does not require grad
  CHECK(events == std::vector<std::string>{"pre_forward", "pre_backward", "backward"});
  CHECK(lin.remove_hook(h_pre));
  CHECK(lin.remove_hook(h_fwd));
  CHECK(!lin.remove_hook(h_fwd));
  events.clear();
  backward(sum(lin(randn({2, 3}, test::opts()))));
  CHECK(events == std::vector<std::string>{"backward"});
  // Under no-grad nothing is wrapped and no backward hook can fire.
  NoGradGuard ng;
  Tensor y = lin(randn({2, 3}, test::opts()));
  CHECK(!requires_grad(y));
}

namespace {
struct Scale : Module {
  explicit Scale(const Tensor& w) { register_parameter("w", w); }
  Tensor forward(const Tensor& x) override { return x * parameter("w"); }
};
struct TiedPair : Module {
  std::shared_ptr<Scale> a, b;
  explicit TiedPair(const Tensor& w) {
    a = register_module("a", std::make_shared<Scale>(w));
    b = register_module("b", std::make_shared<Scale>(w));
  }
  Tensor forward(const Tensor& x) override { return (*b)((*a)(x)); }
};
}  // namespace

TEST_CASE("tied parameters are listed once and stay tied through to()") {
  TiedPair pair(ones({2}, test::opts()));
  CHECK(names_of(pair.named_parameters()) == std::vector<std::string>{"a.w"});
  CHECK(pair.num_parameters() == 2);
  CHECK(pair.state_dict().keys() == std::vector<std::string>{"a.w", "b.w"});
  pair.to(DType::f64);
  CHECK(pair.a->parameter("w").dtype() == DType::f64);
  CHECK(pair.a->parameter("w").same_impl(pair.b->parameter("w")));
  Tensor x = full({2}, 3.0, test::opts(DType::f64));
  backward(sum(pair(x)));  // d/dw sum(x w w) = 2 x w = 6
  CHECK(grad(pair.a->parameter("w")).to_vector<double>() == std::vector<double>{6.0, 6.0});
}
