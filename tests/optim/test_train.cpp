// End to end: a tiny MLP learns XOR with Adam (loss falls more than 10x), with gradient
// clipping and a warmup schedule in the loop, on the device under test (tests/test_device.h).
#include <doctest/doctest.h>

#include <memory>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/loss.h"
#include "nn/sequential.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/lr_schedule.h"
#include "tests/test_device.h"

using namespace zt;

TEST_CASE("MLP learns XOR with Adam") {
  Generator gen(1234);
  Sequential mlp;
  mlp.push_back(std::make_shared<Linear>(LinearOptions{2, 16, true, DType::f32, test::device(), &gen}));
  mlp.push_back(std::make_shared<Tanh>());
  mlp.push_back(std::make_shared<Linear>(LinearOptions{16, 1, true, DType::f32, test::device(), &gen}));
  Tensor x = from_vector<float>({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2}, test::opts());
  Tensor y = from_vector<float>({0, 1, 1, 0}, {4, 1}, test::opts());
  Adam opt(make_param_groups(mlp, 0.0), AdamOptions{.lr = 0.05});
  WarmupLR sched(opt, WarmupLROptions{.warmup_min_lr = 0.01, .warmup_max_lr = 0.05,
                                      .warmup_num_steps = 20, .warmup_type = "linear"});
  MSELoss mse;
  double first = 0, last = 0;
  for (int step = 0; step < 400; ++step) {
    opt.zero_grad();
    Tensor loss = mse(mlp(x), y);
    if (step == 0) first = loss.item();
    last = loss.item();
    backward(loss);
    clip_grad_norm_(mlp.parameters(), 1.0);
    opt.step();
    sched.step();
  }
  MESSAGE("XOR loss ", first, " -> ", last);
  CHECK(first > 0.1);
  CHECK(last * 10 < first);
  CHECK(last < 0.01);
  auto pred = mlp(x).to_vector<float>();
  CHECK(pred[0] < 0.5f);
  CHECK(pred[1] > 0.5f);
  CHECK(pred[2] > 0.5f);
  CHECK(pred[3] < 0.5f);
}
