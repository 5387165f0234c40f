// Model-level CUDA checks: a small GPT gives the same logits, gradients and Adam trajectory on
// the GPU as on the CPU (the per-op parity tests cover kernels; this covers their composition
// through autograd, nn and optim). Skipped without a GPU.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "cuda/parity_util.h"
#include "nn/gpt.h"
#include "optim/adam.h"
#include "runtime/config.h"
#include "runtime/engine.h"

namespace {

using namespace zt;

// ||a - b|| / ||b|| over all elements, computed in f64 on the host.
double relative_error(const Tensor& a, const Tensor& b) {
  const auto va = raw::to(a, DType::f64).to_vector<double>();
  const auto vb = raw::to(b, DType::f64).to_vector<double>();
  REQUIRE(va.size() == vb.size());
  double diff = 0, ref = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    diff += (va[i] - vb[i]) * (va[i] - vb[i]);
    ref += vb[i] * vb[i];
  }
  return std::sqrt(diff / std::max(ref, 1e-300));
}

GPTConfig tiny_config() {
  GPTConfig c;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_embd = 64;
  c.block_size = 16;
  c.vocab_size = 97;
  return c;
}

// A model initialised on the CPU from `seed`, moved to `device`.
std::shared_ptr<GPT> make_model(Device device, uint64_t seed) {
  Generator gen(seed);
  auto model = std::make_shared<GPT>(tiny_config(), &gen);
  model->to(device);
  return model;
}

struct Batch {
  Tensor idx, targets;  // (B, T) i64
};

Batch make_batch(uint64_t seed) {
  Generator gen(seed);
  return {randint(0, 97, {4, 16}, DType::i64, &gen), randint(0, 97, {4, 16}, DType::i64, &gen)};
}

}  // namespace

TEST_CASE("GPT on CUDA: logits and every parameter gradient match the CPU (f32)") {
  ZT_REQUIRE_GPU();
  auto cpu_model = make_model(Device::cpu(), 7);
  auto gpu_model = make_model(Device::cuda(0), 7);
  const Batch b = make_batch(11);
  Tensor cpu_logits = cpu_model->forward(b.idx);
  Tensor gpu_logits = gpu_model->forward(raw::to(b.idx, Device::cuda(0)));
  CHECK(relative_error(gpu_logits, cpu_logits) < 1e-5);

  backward(cpu_model->loss(b.idx, b.targets));
  backward(gpu_model->loss(raw::to(b.idx, Device::cuda(0)), raw::to(b.targets, Device::cuda(0))));
  const auto cpu_params = cpu_model->named_parameters();
  const auto gpu_params = gpu_model->named_parameters();
  REQUIRE(cpu_params.size() == gpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    CAPTURE(cpu_params[i].first);
    REQUIRE(grad(gpu_params[i].second).defined());
    CHECK(grad(gpu_params[i].second).device() == Device::cuda(0));
    CHECK(relative_error(grad(gpu_params[i].second), grad(cpu_params[i].second)) < 1e-4);
  }
}

TEST_CASE("GPT on CUDA: 20 Adam steps follow the CPU loss trajectory (f32 and bf16)") {
  ZT_REQUIRE_GPU();
  for (DType dtype : {DType::f32, DType::bf16}) {
    CAPTURE(dtype_name(dtype));
    std::vector<double> losses[2];
    for (int side = 0; side < 2; ++side) {
      const Device device = side == 0 ? Device::cpu() : Device::cuda(0);
      auto model = make_model(device, 3);
      model->to(dtype);
      Adam opt(model->parameters(), AdamOptions{3e-3});
      const Batch b = make_batch(100);  // one batch, memorised: the loss must fall
      for (int step = 0; step < 20; ++step) {
        Tensor loss = model->loss(raw::to(b.idx, device), raw::to(b.targets, device));
        opt.zero_grad();
        backward(loss);
        opt.step();
        losses[side].push_back(loss.item());
      }
    }
    // f32: the two devices sum in different orders, so losses drift by rounding only. bf16
    // rounds every activation to 8 bits of mantissa, so the bound is that of bf16 (about 1%).
    const double bound = dtype == DType::f32 ? 1e-4 : 3e-2;
    CHECK(losses[0].back() < losses[0].front());  // it learns
    for (size_t i = 0; i < losses[0].size(); ++i) {
      CAPTURE(i);
      CHECK(std::fabs(losses[1][i] - losses[0][i]) <= bound * std::fabs(losses[0][i]));
    }
  }
}

// The same through the engine, as zt-gpt trains: the flat ZeRO optimizer of every stage, AdamW
// with fp32 masters, gradient clipping that binds (max norm 0.1). Catches what the per-op parity
// cannot: an optimizer step that silently does nothing on the GPU.
TEST_CASE("GPT on CUDA through the engine: every ZeRO stage follows the CPU engine (f32 and bf16)") {
  ZT_REQUIRE_GPU();
  for (const char* dtype : {"f32", "bf16"})
    for (int stage : {0, 1, 2, 3}) {
      CAPTURE(dtype);
      CAPTURE(stage);
      nlohmann::json j = {{"train_batch_size", 4},
                          {"gradient_clipping", 0.1},
                          {"zero_optimization", {{"stage", stage}}},
                          {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 3e-3}, {"weight_decay", 0.1}}}}}};
      if (std::string(dtype) == "bf16") j["bf16"] = {{"enabled", true}};
      const Config config = config_from_app_defaults(j, ConfigOptions{});
      std::vector<double> losses[2];
      for (int side = 0; side < 2; ++side) {
        const Device device = side == 0 ? Device::cpu() : Device::cuda(0);
        InitOptions init;
        init.monitor = false;
        auto engine = initialize(make_model(device, 3), config, init);
        const Batch b = make_batch(100);
        for (int step = 0; step < 12; ++step) {
          Tensor loss = cross_entropy(engine->forward(raw::to(b.idx, device)), raw::to(b.targets, device));
          engine->backward(loss);
          engine->step();
          losses[side].push_back(loss.item());
        }
        CHECK(engine->skipped_steps() == 0);
      }
      std::string trajectories;
      for (int side = 0; side < 2; ++side) {
        trajectories += side == 0 ? "cpu:" : " cuda:";
        for (double l : losses[side]) trajectories += " " + std::to_string(l);
      }
      CAPTURE(trajectories);
      CHECK(losses[1].back() < 0.9 * losses[1].front());  // it learns on the GPU
      const double bound = std::string(dtype) == "f32" ? 1e-4 : 3e-2;
      for (size_t i = 0; i < losses[0].size(); ++i) {
        CAPTURE(i);
        CHECK(std::fabs(losses[1][i] - losses[0][i]) <= bound * std::fabs(losses[0][i]));
      }
    }
}
