// LossScaler against DeepSpeed's DynamicLossScaler.update_scale: hand-written expected sequences
// of scales and hysteresis counters for a given pattern of overflows.
#include <doctest/doctest.h>

#include <vector>

#include "core/error.h"
#include "zero/loss_scaler.h"

namespace {

struct Expect {
  bool overflow;
  double scale_after;
  int64_t hysteresis_after;
};

void run_sequence(zt::LossScaler& scaler, const std::vector<Expect>& steps) {
  for (size_t i = 0; i < steps.size(); ++i) {
    CAPTURE(i);
    scaler.update(steps[i].overflow);
    CHECK(scaler.scale() == steps[i].scale_after);
    CHECK(scaler.hysteresis_left() == steps[i].hysteresis_after);
  }
}

}  // namespace

TEST_CASE("loss scaler: static scale never changes") {
  zt::LossScaler scaler(128.0);
  CHECK_FALSE(scaler.dynamic());
  for (bool overflow : {true, false, true, true}) CHECK(scaler.update(overflow).empty());
  CHECK(scaler.scale() == 128.0);
  CHECK_THROWS_AS(zt::LossScaler(0.0), zt::Error);
}

TEST_CASE("loss scaler: DeepSpeed's window and hysteresis") {
  // init 2^4, window 3, hysteresis 2, min 1. Iteration i, stable = i - last_overflow - 1:
  zt::LossScaler scaler(zt::DynamicLossScaleOptions{16.0, 3, 2, 1.0, false});
  CHECK(scaler.scale() == 16.0);
  run_sequence(scaler, {
      {false, 16, 2},  // i0: stable 0
      {false, 16, 2},  // i1: stable 1
      {false, 16, 2},  // i2: stable 2
      {false, 32, 2},  // i3: stable 3 = window: doubles
      {true, 32, 1},   // i4: overflow, hysteresis 2 -> 1, scale kept
      {true, 16, 1},   // i5: overflow with hysteresis 1: halves
      {false, 16, 1},  // i6: stable 0 (hysteresis stays 1: not consecutive)
      {true, 8, 1},    // i7: halves again at once
      {false, 8, 1},   // i8: stable 0
      {false, 8, 1},   // i9: stable 1
      {false, 8, 1},   // i10: stable 2
      {false, 16, 2},  // i11: stable 3: doubles and refills hysteresis
      {false, 16, 2},  // i12
      {false, 16, 2},  // i13
      {false, 32, 2},  // i14: stable 6 = 2 windows
  });
}

TEST_CASE("loss scaler: consecutive hysteresis refills on every good step") {
  zt::LossScaler scaler(zt::DynamicLossScaleOptions{16.0, 100, 2, 1.0, true});
  run_sequence(scaler, {
      {true, 16, 1},   // hysteresis 2 -> 1
      {false, 16, 2},  // refilled
      {true, 16, 1},
      {true, 8, 1},    // halves
  });
}

TEST_CASE("loss scaler: minimum scale, then an error below it") {
  zt::LossScaler scaler(zt::DynamicLossScaleOptions{4.0, 1000, 1, 2.0, false});
  scaler.update(true);
  CHECK(scaler.scale() == 2.0);  // max(4 / 2, 2)
  CHECK_THROWS_WITH_AS(scaler.update(true), doctest::Contains("minimum loss scale 2"), zt::Error);

  // A minimum that is not a power of two clamps the halving instead.
  zt::LossScaler clamped(zt::DynamicLossScaleOptions{8.0, 1000, 1, 3.0, false});
  clamped.update(true);
  CHECK(clamped.scale() == 4.0);
  clamped.update(true);
  CHECK(clamped.scale() == 3.0);
  CHECK_THROWS_AS(clamped.update(true), zt::Error);
}

TEST_CASE("loss scaler: the state round-trips for exact resume") {
  zt::LossScaler a(zt::DynamicLossScaleOptions{1024.0, 2, 2, 1.0, false});
  for (bool overflow : {false, true, true, false}) a.update(overflow);
  zt::LossScaler b(zt::DynamicLossScaleOptions{1024.0, 2, 2, 1.0, false});
  b.load_state_dict(a.state_dict());
  for (bool overflow : {false, false, true, false, false, false}) {
    CHECK(a.update(overflow) == b.update(overflow));
    CHECK(a.scale() == b.scale());
  }
}
