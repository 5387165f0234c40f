// DeepSpeed learning-rate schedules at chosen steps against their formulas: warmup, the warmup
// boundary, decay, and after total_num_steps; step() driving the optimizer; state resume.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>

#include "autograd/autograd.h"
#include "core/factory.h"
#include "optim/adam.h"
#include "optim/lr_schedule.h"
#include "optim/sgd.h"
#include "tests/test_device.h"

using namespace zt;

namespace {

Tensor a_param() {
  Tensor p = zeros({2}, test::opts());
  set_requires_grad(p);
  return p;
}

}  // namespace

TEST_CASE("WarmupLR log and linear") {
  SGD opt({a_param()}, SGDOptions{.lr = 5.0});
  WarmupLR log_sched(opt, WarmupLROptions{.warmup_min_lr = 0.01, .warmup_max_lr = 0.1,
                                          .warmup_num_steps = 10});
  CHECK(opt.lr() == doctest::Approx(0.01));  // construction writes get_lr(-1) = min
  CHECK(log_sched.get_lr(0) == doctest::Approx(0.01));  // log(1) = 0
  CHECK(log_sched.get_lr(4) == doctest::Approx(0.01 + 0.09 * std::log(5.0) / std::log(10.0)));
  CHECK(log_sched.get_lr(9) == doctest::Approx(0.1));  // log(10) / log(10)
  CHECK(log_sched.get_lr(10) == doctest::Approx(0.1));
  CHECK(log_sched.get_lr(100000) == doctest::Approx(0.1));

  WarmupLR lin(opt, WarmupLROptions{.warmup_min_lr = 0.01, .warmup_max_lr = 0.1,
                                    .warmup_num_steps = 10, .warmup_type = "linear"});
  CHECK(lin.get_lr(0) == doctest::Approx(0.01));
  CHECK(lin.get_lr(5) == doctest::Approx(0.01 + 0.09 * 0.5));
  CHECK(lin.get_lr(9) == doctest::Approx(0.01 + 0.09 * 0.9));
  CHECK(lin.get_lr(10) == doctest::Approx(0.1));  // boundary: warmup done
  // warmup_num_steps below 2 is raised to 2, as DeepSpeed does.
  WarmupLR tiny(opt, WarmupLROptions{.warmup_min_lr = 0.0, .warmup_max_lr = 1.0,
                                     .warmup_num_steps = 1, .warmup_type = "linear"});
  CHECK(tiny.get_lr(1) == doctest::Approx(0.5));
  CHECK_THROWS_AS(WarmupLR(opt, WarmupLROptions{.warmup_type = "cosine"}), Error);
}

TEST_CASE("WarmupDecayLR decays linearly to warmup_min_lr at total_num_steps") {
  SGD opt({a_param()}, SGDOptions{.lr = 5.0});
  WarmupDecayLROptions o;
  o.warmup_min_lr = 0.01;
  o.warmup_max_lr = 0.1;
  o.warmup_num_steps = 10;
  o.warmup_type = "linear";
  o.total_num_steps = 30;
  WarmupDecayLR sched(opt, o);
  CHECK(sched.get_lr(9) == doctest::Approx(0.01 + 0.09 * 0.9));
  CHECK(sched.get_lr(10) == doctest::Approx(0.1));               // (30 - 10) / 20 = 1
  CHECK(sched.get_lr(20) == doctest::Approx(0.01 + 0.09 * 0.5)); // (30 - 20) / 20
  CHECK(sched.get_lr(29) == doctest::Approx(0.01 + 0.09 * 0.05));
  CHECK(sched.get_lr(30) == doctest::Approx(0.01));
  CHECK(sched.get_lr(45) == doctest::Approx(0.01));  // gamma clamps at 0
}

TEST_CASE("WarmupCosineLR scales the optimizer's lr per group") {
  SGD opt(std::vector<ParamGroup>{{{a_param()}, 0.2}, {{a_param()}, 0.4}}, SGDOptions{});
  WarmupCosineLR sched(opt, WarmupCosineLROptions{.total_num_steps = 25, .warmup_min_ratio = 0.1,
                                                  .warmup_num_steps = 5, .cos_min_ratio = 0.01,
                                                  .warmup_type = "linear"});
  CHECK(opt.lr(0) == doctest::Approx(0.2 * 0.1));  // step -1: warmup_min_ratio
  CHECK(sched.get_lr(0) == doctest::Approx(0.2 * 0.1));
  CHECK(sched.get_lr(2, 1) == doctest::Approx(0.4 * (0.1 + 0.9 * 2.0 / 5.0)));
  CHECK(sched.get_lr(4) == doctest::Approx(0.2 * (0.1 + 0.9 * 4.0 / 5.0)));
  // First cosine step: s = 5 - 5 + 1 = 1 of 20.
  double r5 = 0.01 + 0.99 * (1 + std::cos(std::numbers::pi / 20.0)) / 2;
  CHECK(sched.get_lr(5) == doctest::Approx(0.2 * r5));
  CHECK(sched.get_lr(14) == doctest::Approx(0.2 * (0.01 + 0.99 * 0.5)));  // s = 10: cos = 0
  CHECK(sched.get_lr(24) == doctest::Approx(0.2 * 0.01));     // s = 20: the end of the cosine
  CHECK(sched.get_lr(40, 1) == doctest::Approx(0.4 * 0.01));  // held after total_num_steps
  sched.step(14);
  CHECK(opt.lr(1) == doctest::Approx(0.4 * (0.01 + 0.99 * 0.5)));
  // Default warmup: "log" from ratio 0, base lrs taken from the optimizer now.
  WarmupCosineLR log_sched(opt, WarmupCosineLROptions{.total_num_steps = 20, .warmup_num_steps = 5});
  double base0 = 0.2 * (0.01 + 0.99 * 0.5);
  CHECK(log_sched.get_lr(2) == doctest::Approx(base0 * std::log(3.0) / std::log(5.0)));
  CHECK_THROWS_AS(WarmupCosineLR(opt, WarmupCosineLROptions{.total_num_steps = 3, .warmup_num_steps = 5}),
                  Error);
}

TEST_CASE("OneCycle: triangle then decay") {
  SGD opt({a_param()}, SGDOptions{.lr = 5.0});
  OneCycle sched(opt, OneCycleOptions{.cycle_min_lr = 0.01, .cycle_max_lr = 0.1, .decay_lr_rate = 0.5,
                                      .cycle_first_step_size = 10, .cycle_second_step_size = 10,
                                      .decay_step_size = 5});
  CHECK(opt.lr() == doctest::Approx(0.01));
  CHECK(sched.get_lr(4) == doctest::Approx(0.055));  // x = 5/20 = 0.25: half way up
  CHECK(sched.get_lr(9) == doctest::Approx(0.1));    // x = 0.5: the peak
  CHECK(sched.get_lr(14) == doctest::Approx(0.055)); // (0.75 - 1) / (0.5 - 1) = 0.5
  CHECK(sched.get_lr(19) == doctest::Approx(0.01));  // end of the cycle
  CHECK(sched.get_lr(20) == doctest::Approx(0.01 / (1 + 0.5 * 1.0 / 5.0)));
  CHECK(sched.get_lr(29) == doctest::Approx(0.01 / (1 + 0.5 * 10.0 / 5.0)));
  // Asymmetric cycle, and no decay without decay_step_size.
  OneCycle asym(opt, OneCycleOptions{.cycle_min_lr = 0.0, .cycle_max_lr = 1.0,
                                     .cycle_first_step_size = 4, .cycle_second_step_size = 12});
  CHECK(asym.get_lr(1) == doctest::Approx(0.5));        // batch 2: x = 2/16 = 0.125, ratio 0.25
  CHECK(asym.get_lr(3) == doctest::Approx(1.0));
  CHECK(asym.get_lr(9) == doctest::Approx(0.5));        // x = 10/16: (0.625 - 1) / (0.25 - 1)
  CHECK(asym.get_lr(500) == doctest::Approx(0.0));
}

TEST_CASE("OneCycle cycles Adam's beta1 inversely to the lr") {
  Adam opt({a_param()}, AdamOptions{.lr = 1.0});
  OneCycleOptions o{.cycle_min_lr = 0.01, .cycle_max_lr = 0.1, .cycle_first_step_size = 10,
                    .cycle_second_step_size = 10, .decay_step_size = 5, .cycle_min_mom = 0.8,
                    .cycle_max_mom = 0.9, .decay_mom_rate = 0.1};
  OneCycle sched(opt, o);
  CHECK(opt.options().beta1 == doctest::Approx(0.8));  // DeepSpeed's initial betas
  CHECK(opt.options().beta2 == doctest::Approx(0.99));
  for (int i = 0; i < 5; ++i) sched.step();  // last_step 4: half way up the lr triangle
  CHECK(opt.lr() == doctest::Approx(0.055));
  CHECK(opt.options().beta1 == doctest::Approx(0.85));
  sched.step(9);
  CHECK(opt.options().beta1 == doctest::Approx(0.8));  // lr peak = momentum trough
  sched.step(19);
  CHECK(opt.options().beta1 == doctest::Approx(0.9));
  CHECK(sched.get_mom(20) == doctest::Approx(0.9 * (1 + 0.1 * 1.0 / 5.0)));
  o.cycle_momentum = false;
  Adam plain({a_param()}, AdamOptions{.lr = 1.0});
  OneCycle no_mom(plain, o);
  no_mom.step(9);
  CHECK(plain.options().beta1 == 0.9);  // untouched
  SGD sgd({a_param()}, SGDOptions{.lr = 1.0});
  OneCycle on_sgd(sgd, OneCycleOptions{.cycle_min_lr = 0.01, .cycle_max_lr = 0.1});
  CHECK(sgd.lr() == doctest::Approx(0.01));
}

TEST_CASE("schedules drive the optimizer and resume from their state") {
  SGD opt({a_param()}, SGDOptions{.lr = 5.0});
  WarmupLROptions o{.warmup_min_lr = 0.0, .warmup_max_lr = 1.0, .warmup_num_steps = 10,
                    .warmup_type = "linear"};
  WarmupLR sched(opt, o);
  for (int i = 0; i < 7; ++i) sched.step();
  CHECK(sched.last_step() == 6);
  CHECK(opt.lr() == doctest::Approx(0.6));
  CHECK(sched.last_lrs() == std::vector<double>{opt.lr()});
  LRScheduleState saved = sched.state_dict();

  SGD opt2({a_param()}, SGDOptions{.lr = 5.0});
  WarmupLR resumed(opt2, o);
  CHECK(opt2.lr() == doctest::Approx(0.0));
  resumed.load_state_dict(saved);
  CHECK(opt2.lr() == doctest::Approx(0.6));
  sched.step();
  resumed.step();
  CHECK(opt2.lr() == doctest::Approx(0.7));
  CHECK(opt.lr() == opt2.lr());
  sched.step(20);
  CHECK(opt.lr() == doctest::Approx(1.0));
}
