// The fused Adam/AdamW op (raw::adam_step_, ops.def adam_step) on the device under test against the
// published update equations written out here in double, the first step's closed form, the f16/bf16
// variants (low-precision grad in, model copy out), the chunked parallel path and misuse.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "tests/core/core_test_util.h"

namespace zt::test {
namespace {

struct Hyper {
  double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.0;
  bool decoupled = false;
  GradientScale scale = {};  // applied to the gradient first
};

// Adam (Kingma & Ba) with L2 decay folded into g, or AdamW (Loshchilov & Hutter) with decoupled
// decay, for one element over a gradient sequence, in double.
double reference(double p, const std::vector<double>& grads, const Hyper& h) {
  double m = 0, v = 0;
  for (size_t t = 1; t <= grads.size(); ++t) {
    double g = grads[t - 1] * h.scale.unscale * h.scale.clip;
    if (!h.decoupled) g += h.wd * p;
    if (h.decoupled) p *= 1 - h.lr * h.wd;
    m = h.b1 * m + (1 - h.b1) * g;
    v = h.b2 * v + (1 - h.b2) * g * g;
    const double m_hat = m / (1 - std::pow(h.b1, double(t)));
    const double v_hat = v / (1 - std::pow(h.b2, double(t)));
    p -= h.lr * m_hat / (std::sqrt(v_hat) + h.eps);
  }
  return p;
}

const std::vector<double> kP0 = {1.0, -2.0, 0.5, 3.0, -0.25};
const std::vector<std::vector<double>> kGrads = {
    {0.5, -1.0, 0.25, 2.0, -0.125}, {1.0, 0.25, -0.5, 1.5, 0.75}, {-0.3, 0.7, 0.1, -2.5, 0.05}};

// Runs the op for every gradient of kGrads on dt buffers; returns the final param values.
std::vector<double> run_op(const Hyper& h, DType dt) {
  Tensor p = make(kP0, {5}, dt);
  Tensor m = zeros({5}, opts(dt)), v = zeros({5}, opts(dt));
  for (size_t s = 0; s < kGrads.size(); ++s)
    raw::adam_step_(p, make(kGrads[s], {5}, dt), m, v, h.lr, h.b1, h.b2, h.eps, h.wd, h.decoupled,
                    int64_t(s) + 1, Tensor(), h.scale);
  return values(p);
}

std::vector<double> run_reference(const Hyper& h) {
  std::vector<double> want;
  for (size_t i = 0; i < kP0.size(); ++i) {
    std::vector<double> g;
    for (const auto& step : kGrads) g.push_back(step[i]);
    want.push_back(reference(kP0[i], g, h));
  }
  return want;
}

}  // namespace

TEST_CASE("adam_step_: Adam, Adam with L2 decay and AdamW follow the published equations") {
  for (const bool decoupled : {false, true})
    for (const double wd : {0.0, 0.1}) {
      const Hyper h{.lr = 0.05, .b1 = 0.8, .b2 = 0.99, .eps = 1e-6, .wd = wd, .decoupled = decoupled};
      const std::vector<double> want = run_reference(h);
      INFO("decoupled ", decoupled, " wd ", wd);
      check_values(make(run_op(h, DType::f64), {5}, DType::f64), want, {5}, 1e-12);
      check_values(make(run_op(h, DType::f32), {5}, DType::f64), want, {5}, 2e-6);
    }
}

// A loss-scaled gradient (x 1024) unscaled and clipped by the op is the step on the true gradient
// times the clipping coefficient; L2 decay is added after the factors, as to a clipped gradient.
TEST_CASE("adam_step_: the gradient factors scale the gradient before the update") {
  for (const bool decoupled : {false, true}) {
    Hyper h{.lr = 0.05, .b1 = 0.8, .b2 = 0.99, .eps = 1e-6, .wd = 0.1, .decoupled = decoupled};
    const Hyper unscaled = h;
    h.scale = {.unscale = 1.0 / 1024, .clip = 0.375};
    std::vector<double> want;
    for (size_t i = 0; i < kP0.size(); ++i) {
      std::vector<double> g;
      for (const auto& step : kGrads) g.push_back(step[i] * 0.375);
      want.push_back(reference(kP0[i], g, unscaled));
    }
    INFO("decoupled ", decoupled);
    for (const DType dt : {DType::f64, DType::f32}) {
      Tensor p = make(kP0, {5}, dt), m = zeros({5}, opts(dt)), v = zeros({5}, opts(dt));
      for (size_t s = 0; s < kGrads.size(); ++s)
        raw::adam_step_(p, raw::mul(make(kGrads[s], {5}, dt), 1024.0), m, v, h.lr, h.b1, h.b2, h.eps, h.wd,
                        h.decoupled, int64_t(s) + 1, Tensor(), h.scale);
      check_values(raw::to(p, DType::f64), want, {5}, dt == DType::f64 ? 1e-12 : 2e-6);
    }
  }
}

TEST_CASE("adam_step_: the first step moves each element by lr * g / (|g| + eps), m and v exact") {
  Tensor p = make({1.0, -2.0, 4.0}, {3}, DType::f64);
  Tensor m = zeros({3}, opts(DType::f64)), v = zeros({3}, opts(DType::f64));
  raw::adam_step_(p, make({0.5, -4.0, 1e-3}, {3}, DType::f64), m, v, 0.1, 0.9, 0.999, 1e-8, 0.0, false, 1);
  // m_hat = g and v_hat = g^2 at t = 1, so the step is lr * sign(g) * |g| / (|g| + eps).
  check_values(p, {1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 * 4.0 / (4.0 + 1e-8), 4.0 - 0.1 * 1e-3 / (1e-3 + 1e-8)},
               {3}, 1e-13);
  check_values(m, {0.05, -0.4, 1e-4}, {3}, 1e-13);
  check_values(v, {0.001 * 0.25, 0.001 * 16.0, 0.001 * 1e-6}, {3}, 1e-12);
}

TEST_CASE("adam_step_: a bf16/f16 grad is the f32 step on the rounded grad; the model copy is the rounded param") {
  for (const DType low : {DType::bf16, DType::f16}) {
    INFO(dtype_name(low));
    Tensor p_low = make(kP0, {5}), p_ref = make(kP0, {5});
    Tensor m_low = zeros({5}, opts(DType::f32)), v_low = zeros({5}, opts(DType::f32));
    Tensor m_ref = zeros({5}, opts(DType::f32)), v_ref = zeros({5}, opts(DType::f32));
    Tensor copy = Tensor::empty({5}, opts(low));
    for (size_t s = 0; s < kGrads.size(); ++s) {
      const Tensor g_low = make(kGrads[s], {5}, low);
      raw::adam_step_(p_low, g_low, m_low, v_low, 0.05, 0.9, 0.999, 1e-8, 0.01, true, int64_t(s) + 1, copy);
      raw::adam_step_(p_ref, raw::to(g_low, DType::f32), m_ref, v_ref, 0.05, 0.9, 0.999, 1e-8, 0.01, true,
                      int64_t(s) + 1);
      CHECK(raw::max_abs_diff(p_low, p_ref) == 0);
      CHECK(raw::max_abs_diff(m_low, m_ref) == 0);
      CHECK(raw::max_abs_diff(v_low, v_ref) == 0);
      // The copy is param rounded once to nearest (the cast op's rounding), written in the pass.
      CHECK(raw::max_abs_diff(raw::to(copy, DType::f32), raw::to(raw::to(p_low, low), DType::f32)) == 0);
    }
    CHECK(raw::max_abs_diff(p_low, make(kP0, {5})) > 0.1);
  }
}

// On CUDA too: its kernel rounds every operation in the CPU kernel's order (cuda/kernels_adam.cu).
TEST_CASE("adam_step_: the chunked parallel pass equals a serial f32 loop bit for bit") {
  const int64_t n = 4 * 16384 + 4099;  // several OpenMP chunks and a ragged last one
  const size_t count = size_t(n);
  std::vector<float> p(count), g(count), m(count), v(count);
  for (int64_t i = 0; i < n; ++i) {
    p[size_t(i)] = float(std::sin(0.01 * double(i)) + 1.5);
    g[size_t(i)] = float(std::cos(0.003 * double(i)) - 0.2);
    m[size_t(i)] = float(0.01 * std::sin(double(i)));
    v[size_t(i)] = float(1e-4 * (1.0 + std::cos(double(i))));
  }
  Tensor tp = from_vector<float>(p, {n}, opts(DType::f32)), tg = from_vector<float>(g, {n}, opts(DType::f32));
  Tensor tm = from_vector<float>(m, {n}, opts(DType::f32)), tv = from_vector<float>(v, {n}, opts(DType::f32));
  const double lr = 3e-4, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  const int64_t step = 7;
  raw::adam_step_(tp, tg, tm, tv, lr, b1, b2, eps, wd, true, step);
  // The serial loop with the scalars rounded to f32 as documented in the kernel.
  const float step_size = float(lr / (1.0 - std::pow(b1, double(step))));
  const float inv_bc2_sqrt = float(1.0 / std::sqrt(1.0 - std::pow(b2, double(step))));
  const float fb1 = float(b1), fb2 = float(b2), decay = float(1.0 - lr * wd);
  const std::vector<float> gp = tp.to_vector<float>(), gm = tm.to_vector<float>(), gv = tv.to_vector<float>();
  int64_t mismatches = 0;
  for (size_t i = 0; i < size_t(n); ++i) {
    float pi = p[i] * decay;
    const float mi = fb1 * m[i] + (1.0f - fb1) * g[i];
    const float vi = fb2 * v[i] + (1.0f - fb2) * g[i] * g[i];
    pi -= step_size * mi / (std::sqrt(vi) * inv_bc2_sqrt + float(eps));
    if (gp[i] != pi || gm[i] != mi || gv[i] != vi) ++mismatches;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("adam_step_: misuse is rejected with what was expected") {
  Tensor p = make({1, 2, 3, 4}, {2, 2}), m = zeros({2, 2}, opts()), v = zeros({2, 2}, opts());
  const Tensor g = make({1, 2, 3, 4}, {2, 2});
  CHECK(error_of([&] { raw::adam_step_(p, raw::transpose(g, 0, 1), m, v, 1e-3, 0.9, 0.999, 1e-8, 0, false, 1); })
            .find("grad must be contiguous") != std::string::npos);
  CHECK(error_of([&] { raw::adam_step_(p, make({1, 2, 3}, {3}), m, v, 1e-3, 0.9, 0.999, 1e-8, 0, false, 1); })
            .find("must have param's 4 elements") != std::string::npos);
  const Tensor m64 = zeros({2, 2}, opts(DType::f64));
  CHECK(error_of([&] { raw::adam_step_(p, g, m64, v, 1e-3, 0.9, 0.999, 1e-8, 0, false, 1); })
            .find("exp_avg and exp_avg_sq must have param's dtype f32") != std::string::npos);
  CHECK(error_of([&] { raw::adam_step_(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, false, 0); })
            .find("expected step >= 1") != std::string::npos);
  CHECK(error_of([&] { raw::adam_step_(p, g, m, v, 1e-3, 1.0, 0.999, 1e-8, 0, false, 1); })
            .find("expected betas in [0, 1)") != std::string::npos);
  CHECK(error_of([&] { raw::adam_step_(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, false, 1, zeros({2, 2}, opts())); })
            .find("model_copy must be f16 or bf16") != std::string::npos);
  CHECK(error_of([&] { raw::adam_step_(p, g, p, v, 1e-3, 0.9, 0.999, 1e-8, 0, false, 1); })
            .find("must not share memory") != std::string::npos);
  CHECK(error_of([&] {
          raw::adam_step_(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, false, 1, Tensor(), {.unscale = INFINITY});
        }).find("expected finite gradient factors, found unscale=inf") != std::string::npos);
  check_values(p, {1, 2, 3, 4}, {2, 2});  // nothing was written
}

}  // namespace zt::test
