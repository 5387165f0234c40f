// MixedPrecisionOptimizer (zero/mixed_precision.h): fp32 masters for bf16/f16 parameters,
// gradients unscaled into fp32, non-finite gradients found in every dtype, the update applied to
// the masters and copied back, and a program's optimizer pointed at the masters.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"
#include "optim/sgd.h"
#include "zero/mixed_precision.h"

using namespace zt;

namespace {

Tensor param(const std::vector<float>& values, DType dtype) {
  Tensor t = raw::to(from_vector<float>(values, {int64_t(values.size())}), dtype);
  set_requires_grad(t);
  return t;
}

}  // namespace

TEST_CASE("mixed precision: gradients unscaled into fp32 masters, update copied back") {
  for (DType dtype : {DType::bf16, DType::f16}) {
    CAPTURE(dtype_name(dtype));
    Tensor p = param({1.0f, -2.0f, 0.5f}, dtype);
    MixedPrecisionOptimizer mp({{p}, {}}, LossScaler(8.0));
    CHECK(mp.has_separate_masters());
    const Tensor master = mp.master_parameters().front();
    CHECK(master.dtype() == DType::f32);
    CHECK(master.to_vector<float>() == std::vector<float>{1.0f, -2.0f, 0.5f});
    set_grad(p, raw::to(from_vector<float>({8.0f, 4.0f, -16.0f}, {3}), dtype));  // scaled by 8
    CHECK(mp.unscale_gradients());
    CHECK(grad(master).dtype() == DType::f32);
    CHECK(grad(master).to_vector<float>() == std::vector<float>{1.0f, 0.5f, -2.0f});
    SGD sgd(mp.master_parameters(), SGDOptions{0.25});
    mp.step(sgd);
    // master = p - 0.25 * g, exactly representable, copied back into the model dtype.
    CHECK(master.to_vector<float>() == std::vector<float>{0.75f, -2.125f, 1.0f});
    CHECK(raw::to(p, DType::f32).to_vector<float>() == std::vector<float>{0.75f, -2.125f, 1.0f});
    mp.zero_grad();
    CHECK_FALSE(grad(p).defined());
    CHECK_FALSE(grad(master).defined());
  }
}

TEST_CASE("mixed precision: inf and NaN gradients are found in every dtype") {
  for (DType dtype : {DType::f32, DType::bf16, DType::f16, DType::f64}) {
    for (double bad : {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                       std::numeric_limits<double>::quiet_NaN()}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(bad);
      Tensor a = param({1, 2}, dtype), b = param({3, 4, 5}, dtype);
      MixedPrecisionOptimizer mp({{a, b}, {}}, LossScaler(1.0));
      set_grad(a, raw::to(from_vector<float>({1, 1}, {2}), dtype));
      Tensor gb = raw::to(from_vector<float>({1, 1, 1}, {3}), dtype);
      set_grad(b, gb);
      CHECK(mp.unscale_gradients());
      raw::fill_(raw::narrow(gb, 0, 2, 1), bad);
      set_grad(b, gb);
      CHECK_FALSE(mp.unscale_gradients());
    }
  }
}

TEST_CASE("mixed precision: an f32 model is its own master; scaled grads unscale in place") {
  Tensor p = param({1, 2}, DType::f32);
  MixedPrecisionOptimizer mp({{p}, {}}, LossScaler(4.0));
  CHECK_FALSE(mp.has_separate_masters());
  CHECK(mp.master_parameters().front().same_impl(p));
  set_grad(p, from_vector<float>({4, -8}, {2}));
  CHECK(mp.unscale_gradients());
  CHECK(grad(p).to_vector<float>() == std::vector<float>{1, -2});
  CHECK(mp.clip_gradients(1.0) == doctest::Approx(std::sqrt(5.0)));
}

TEST_CASE("mixed precision: a program's optimizer is bound to the masters") {
  Tensor p = param({1, 2}, DType::bf16);
  Tensor stray = param({1}, DType::f32);
  MixedPrecisionOptimizer mp({{p}, {}}, LossScaler(1.0));
  SGD sgd(std::vector<Tensor>{p}, SGDOptions{0.5});
  mp.bind(sgd);
  CHECK(sgd.param_groups()[0].params[0].same_impl(mp.master_parameters().front()));
  SGD other(std::vector<Tensor>{stray}, SGDOptions{0.5});
  CHECK_THROWS_WITH_AS(mp.bind(other), doctest::Contains("not a parameter of the model"), Error);
}
