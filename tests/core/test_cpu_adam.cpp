// The CPU fused Adam/AdamW kernels at every instruction-set level this CPU has (scalar, AVX2,
// AVX-512; Note [CPU Adam kernels] in core/cpu/kernels_adam_simd.h): against the update
// equations in double, bit for bit against each other, and the model copy's rounding against
// core/dtype.h, for every grad and copy dtype and sizes that leave ragged vector tails; the
// gradient factors (core/adam_scalars.h) against the separate f32 multiplies they replace.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu/kernels_adam.h"
#include "tests/core/core_test_util.h"

namespace zt::test {
namespace {

using cpu::CpuIsa;

// Forces a level for one scope, then returns to the automatic choice.
struct ForcedIsa {
  explicit ForcedIsa(CpuIsa isa) { cpu::force_adam_isa(isa); }
  ~ForcedIsa() { cpu::force_adam_isa(std::nullopt); }
  ForcedIsa(const ForcedIsa&) = delete;
  ForcedIsa& operator=(const ForcedIsa&) = delete;
};

std::vector<CpuIsa> levels_on_this_cpu() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512}) {
    if (cpu::cpu_supports(isa)) {
      out.push_back(isa);
    } else {
      const std::string note =
          std::string("skipping the ") + cpu::cpu_isa_name(isa) + " kernel: this CPU lacks " + cpu::cpu_missing_features(isa);
      MESSAGE(note);
    }
  }
  return out;
}

// Sizes around both vector widths (8, 16), and one above the parallel threshold (65536) whose
// per-thread spans end raggedly.
const std::vector<int64_t> kSizes = {1, 7, 8, 15, 16, 17, 33, 100, 1023, 70001};
const DType kGradDTypes[] = {DType::f32, DType::bf16, DType::f16};
const DType kNoCopy = DType::f32;  // marks "no model copy" in the loops below
const DType kCopyDTypes[] = {kNoCopy, DType::bf16, DType::f16};

// Betas exact in f32 with 1 - beta exact too, so the kernel's constants differ from these only by
// one rounding of lr / (1 - b1^t), 1 / sqrt(1 - b2^t), eps and 1 - lr wd.
struct Hyper {
  double lr = 0.03, b1 = 0.875, b2 = 1.0 - 1.0 / 512, eps = 1e-8, wd = 0.0;
  bool decoupled = false;
  GradientScale scale = {};  // the gradient's factors: 1 / loss scale, the clipping coefficient
};
// The last two scale the gradient as a loss-scaled, clipped mixed-precision step does. (Not with
// L2 decay: where wd p nearly cancels the scaled gradient, the first step's lr g / (|g| + eps)
// turns the factors' rounding into a parameter error beyond these bounds. The bitwise test
// against the separate multiplies covers L2 decay.)
const Hyper kVariants[] = {{},
                           {.wd = 0.1},
                           {.wd = 0.1, .decoupled = true},
                           {.wd = 0.1, .decoupled = true, .scale = {.unscale = 1.0 / 64, .clip = 0.3}},
                           {.scale = {.clip = 0.7}}};
constexpr int kSteps = 3;

// One run's inputs: the initial params and a grad per step, already rounded to the grad dtype.
struct Inputs {
  std::vector<float> p0;
  std::vector<Tensor> grads;  // kSteps tensors (n) of the grad dtype
};

Inputs make_inputs(int64_t n, DType grad_dtype, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Inputs in;
  for (int64_t i = 0; i < n; ++i) in.p0.push_back(normal(rng));
  for (int s = 0; s < kSteps; ++s) {
    std::vector<float> g;
    // Magnitudes from 1e-3 to 1e1, and exact zeros, so v spans orders of magnitude.
    for (int64_t i = 0; i < n; ++i) g.push_back(i % 13 == 5 ? 0.0f : normal(rng) * std::pow(10.0f, float(i % 5) - 3));
    in.grads.push_back(raw::to(from_vector<float>(g, {n}), grad_dtype));
  }
  return in;
}

struct Result {
  Tensor p, m, v, copy;
};

Result run_kernel(const Inputs& in, const Hyper& h, DType copy_dtype) {
  const int64_t n = int64_t(in.p0.size());
  Result r{from_vector<float>(in.p0, {n}), zeros({n}), zeros({n}), Tensor()};
  if (copy_dtype != kNoCopy) r.copy = empty({n}, copy_dtype);
  for (int s = 0; s < kSteps; ++s)
    raw::adam_step_(r.p, in.grads[size_t(s)], r.m, r.v, h.lr, h.b1, h.b2, h.eps, h.wd, h.decoupled, s + 1, r.copy,
                    h.scale);
  return r;
}

// The same steps as the passes the factors replace: the gradient widened to f32, multiplied in
// place by each factor that is not 1 (raw::binary_, f32 arithmetic), then an unscaled step.
Result run_separate_passes(const Inputs& in, const Hyper& h, DType copy_dtype) {
  const int64_t n = int64_t(in.p0.size());
  Result r{from_vector<float>(in.p0, {n}), zeros({n}), zeros({n}), Tensor()};
  if (copy_dtype != kNoCopy) r.copy = empty({n}, copy_dtype);
  for (int s = 0; s < kSteps; ++s) {
    Tensor g = raw::clone(raw::to(in.grads[size_t(s)], DType::f32));
    if (h.scale.unscale != 1.0) raw::binary_(BinaryOp::mul, g, h.scale.unscale);
    if (h.scale.clip != 1.0) raw::binary_(BinaryOp::mul, g, h.scale.clip);
    raw::adam_step_(r.p, g, r.m, r.v, h.lr, h.b1, h.b2, h.eps, h.wd, h.decoupled, s + 1, r.copy);
  }
  return r;
}

// The published equations in double (Adam with L2 decay folded into g, or AdamW), with the
// per-element bounds on f32 rounding the comparison allows.
struct Reference {
  std::vector<double> p, m, v, tol_p, tol_m, tol_v;
};

// u = 2^-24, f32's unit roundoff. No multiply-add is fused (Note [CPU Adam kernels]), so the
// kernel differs from these equations only by the rounding of each f32 operation: about 13 a
// step, on quantities of size |p|, |g| and the update lr |m_hat| / sqrt(v_hat) <= ~2.8 lr for
// these betas. Over 3 steps m gathers about 3 roundings of max|g| a step, p about one of |p| and
// a few of the update: the bounds 16 u max|g| (m), 16 u max g^2 (v) and 64 u (|p| + 3 lr t) (p)
// hold with margins of 3x, 16x and 8x on these inputs (measured by shrinking them), and lie three
// orders of magnitude below what a wrong update (a lost bias correction or decay, Adam for AdamW)
// moves.
constexpr double kUnitRoundoff = 1.0 / (1 << 24);

Reference reference(const Inputs& in, const Hyper& h) {
  const size_t n = in.p0.size();
  Reference r{std::vector<double>(in.p0.begin(), in.p0.end()), std::vector<double>(n), std::vector<double>(n),
              std::vector<double>(n), std::vector<double>(n), std::vector<double>(n)};
  std::vector<double> max_g(n);
  for (int t = 1; t <= kSteps; ++t) {
    const std::vector<double> grad = in.grads[size_t(t - 1)].to_vector<double>();
    const double bc1 = 1 - std::pow(h.b1, t), bc2 = 1 - std::pow(h.b2, t);
    for (size_t i = 0; i < n; ++i) {
      // The factors' two f32 roundings stay inside the m and v bounds below (2 of 16 units).
      double g = grad[i] * h.scale.unscale * h.scale.clip, &p = r.p[i], &m = r.m[i], &v = r.v[i];
      if (h.decoupled) p *= 1 - h.lr * h.wd;
      else g += h.wd * p;
      m = h.b1 * m + (1 - h.b1) * g;
      v = h.b2 * v + (1 - h.b2) * g * g;
      p -= h.lr * (m / bc1) / (std::sqrt(v / bc2) + h.eps);
      max_g[i] = std::max(max_g[i], std::abs(g));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    r.tol_p[i] = 64 * kUnitRoundoff * (std::abs(r.p[i]) + 3 * h.lr * kSteps);
    r.tol_m[i] = 16 * kUnitRoundoff * max_g[i];
    r.tol_v[i] = 16 * kUnitRoundoff * max_g[i] * max_g[i];
  }
  return r;
}

// How many elements of got lie outside want +- tol.
int64_t count_outside(const Tensor& got, const std::vector<double>& want, const std::vector<double>& tol) {
  const std::vector<double> g = got.to_vector<double>();
  int64_t bad = 0;
  for (size_t i = 0; i < g.size(); ++i) bad += !(std::abs(g[i] - want[i]) <= tol[i]);
  return bad;
}

std::vector<uint16_t> bits16(const Tensor& t) {
  std::vector<uint16_t> out(size_t(t.numel()));
  std::memcpy(out.data(), t.raw_data(), out.size() * 2);
  return out;
}

std::vector<uint32_t> bits32(const Tensor& t) {
  std::vector<uint32_t> out(size_t(t.numel()));
  std::memcpy(out.data(), t.raw_data(), out.size() * 4);
  return out;
}

// The copy must be core's own conversion (BFloat16/Half of core/dtype.h) of the updated param.
int64_t count_copy_mismatches(const Tensor& p, const Tensor& copy) {
  const std::vector<float> pv = p.to_vector<float>();
  const std::vector<uint16_t> cv = bits16(copy);
  int64_t bad = 0;
  for (size_t i = 0; i < pv.size(); ++i)
    bad += cv[i] != (copy.dtype() == DType::bf16 ? BFloat16(pv[i]).bits : Half(pv[i]).bits);
  return bad;
}

std::string describe(CpuIsa isa, int64_t n, DType grad, DType copy, const Hyper& h) {
  return std::string(cpu::cpu_isa_name(isa)) + " n=" + std::to_string(n) + " grad " + dtype_name(grad) + " copy " +
         (copy == kNoCopy ? "none" : dtype_name(copy)) + " lr " + std::to_string(h.lr) + " wd " + std::to_string(h.wd) +
         (h.decoupled ? " AdamW" : " Adam") + " unscale " + std::to_string(h.scale.unscale) + " clip " +
         std::to_string(h.scale.clip);
}

bool bitwise_equal(const Result& a, const Result& b) {
  const bool copies = !a.copy.defined() || bits16(a.copy) == bits16(b.copy);
  return bits32(a.p) == bits32(b.p) && bits32(a.m) == bits32(b.m) && bits32(a.v) == bits32(b.v) && copies;
}

}  // namespace

TEST_CASE("CPU adam_step: every ISA level follows the Adam and AdamW equations in double") {
  for (CpuIsa isa : levels_on_this_cpu()) {
    ForcedIsa forced(isa);
    REQUIRE(cpu::adam_isa() == isa);
    for (int64_t n : kSizes)
      for (DType gt : kGradDTypes) {
        const Inputs in = make_inputs(n, gt, uint32_t(n));
        for (const Hyper& h : kVariants) {
          const Reference want = reference(in, h);
          for (DType ct : kCopyDTypes) {
            INFO(describe(isa, n, gt, ct, h));
            const Result got = run_kernel(in, h, ct);
            CHECK(count_outside(got.p, want.p, want.tol_p) == 0);
            CHECK(count_outside(got.m, want.m, want.tol_m) == 0);
            CHECK(count_outside(got.v, want.v, want.tol_v) == 0);
            if (ct != kNoCopy) CHECK(count_copy_mismatches(got.p, got.copy) == 0);
          }
        }
      }
  }
}

TEST_CASE("CPU adam_step: the AVX2 and AVX-512 kernels give the scalar loop's results bit for bit") {
  const std::vector<CpuIsa> levels = levels_on_this_cpu();
  for (int64_t n : {int64_t(31), int64_t(4099), int64_t(70001)})
    for (DType gt : kGradDTypes) {
      const Inputs in = make_inputs(n, gt, 7);
      for (const Hyper& h : kVariants)
        for (DType ct : kCopyDTypes) {
          Result scalar;
          {
            ForcedIsa forced(CpuIsa::scalar);
            scalar = run_kernel(in, h, ct);
          }
          for (CpuIsa isa : levels) {
            INFO(describe(isa, n, gt, ct, h));
            ForcedIsa forced(isa);
            CHECK(bitwise_equal(run_kernel(in, h, ct), scalar));
          }
        }
    }
}

// ZeRO folds the unscale and clip passes over an fp32 copy of the gradient into the step (Note
// [ZeRO gradient scaling] in zero/sharded_optimizer.h); that is exact only if the kernel rounds
// as those passes did. Factors that are not powers of two (1/1000, 0.37) round in f32; a factor
// whose f32 rounding is 1 (1 - 1e-9) must change nothing, as a multiply by 1.0f does not.
TEST_CASE("CPU adam_step: the gradient factors give the separate f32 multiplies' results bit for bit") {
  const GradientScale scales[] = {{.unscale = 1.0 / 65536},
                                  {.clip = 0.37},
                                  {.unscale = 1.0 / 1024, .clip = 0.37},
                                  {.unscale = 1.0 / 1000, .clip = 0.999},
                                  {.unscale = 1.0 - 1e-9, .clip = 0.5}};
  for (CpuIsa isa : levels_on_this_cpu()) {
    ForcedIsa forced(isa);
    for (int64_t n : {int64_t(31), int64_t(4099), int64_t(70001)})
      for (DType gt : kGradDTypes) {
        const Inputs in = make_inputs(n, gt, 13);
        for (const GradientScale& scale : scales)
          for (DType ct : kCopyDTypes) {
            const Hyper h{.wd = 0.1, .decoupled = true, .scale = scale};
            INFO(describe(isa, n, gt, ct, h));
            const Result folded = run_kernel(in, h, ct);
            CHECK(bitwise_equal(folded, run_separate_passes(in, h, ct)));
            // And the factors did something.
            CHECK(bits32(folded.m) != bits32(run_kernel(in, Hyper{.wd = 0.1, .decoupled = true}, ct).m));
          }
      }
  }
}

TEST_CASE("CPU adam_step: 16-bit grads and model copies convert exactly as core/dtype.h") {
  // Random bit patterns: every f32 class (subnormals, huge values, infinities, NaN payloads) as
  // params, and every finite bf16/f16 pattern class (subnormals included) as grads. lr = 0
  // leaves p as it was, so the copy is the conversion of those exact values.
  const int64_t n = 4096 + 13;
  std::mt19937 rng(11);
  std::vector<uint32_t> p_bits(static_cast<size_t>(n));
  for (auto& b : p_bits) b = rng();
  // Halfway and near-halfway cases for bf16 (low half 0x8000 +- 1) and f16 (bit 12 +- 1), and
  // the f16 overflow edge 65504..65520.
  const uint32_t edges[] = {0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u, 0x3f801000u, 0x3f803000u,
                            0x3f800fffu, 0x477fe000u, 0x477ff000u, 0x477fefffu, 0x00000001u, 0x80400000u,
                            0x7f800001u, 0xffc00000u, 0x7fbfffffu, 0x387fc000u, 0x33000000u, 0x33000001u};
  for (size_t i = 0; i < std::size(edges); ++i) p_bits[i * 7] = edges[i];
  Tensor p0 = empty({n});
  std::memcpy(p0.raw_data(), p_bits.data(), p_bits.size() * 4);
  for (DType gt : kGradDTypes)
    for (DType ct : {DType::bf16, DType::f16}) {
      Tensor g = gt == DType::f32 ? randn({n}) : empty({n}, gt);
      if (gt != DType::f32) {
        std::vector<uint16_t> gb(static_cast<size_t>(n));
        for (auto& b : gb) b = uint16_t(rng() & (gt == DType::f16 ? 0xfbffu : 0xff7fu));  // finite
        std::memcpy(g.raw_data(), gb.data(), gb.size() * 2);
      }
      Result scalar;
      for (CpuIsa isa : levels_on_this_cpu()) {
        INFO(describe(isa, n, gt, ct, Hyper{.lr = 0}));
        ForcedIsa forced(isa);
        Result r{raw::clone(p0), zeros({n}), zeros({n}), empty({n}, ct)};
        raw::adam_step_(r.p, g, r.m, r.v, 0.0, 0.9, 0.999, 1e-8, 0.0, false, 1, r.copy);
        CHECK(count_copy_mismatches(r.p, r.copy) == 0);
        // m = (1 - b1) g in f32: the grad was widened exactly.
        const std::vector<float> gf = g.to_vector<float>(), mf = r.m.to_vector<float>();
        int64_t bad_m = 0;
        for (size_t i = 0; i < gf.size(); ++i) bad_m += mf[i] != 0.9f * 0.0f + (1.0f - 0.9f) * gf[i];
        CHECK(bad_m == 0);
        if (isa == CpuIsa::scalar) scalar = r;
        else CHECK(bitwise_equal(r, scalar));
      }
    }
}

TEST_CASE("CPU adam_step: the instruction-set level can be named, forced and restored") {
  CHECK(cpu::parse_cpu_isa("avx2") == CpuIsa::avx2);
  CHECK(contains(error_of([] { cpu::parse_cpu_isa("sse9"); }), "expected scalar, avx2 or avx512"));
  for (CpuIsa isa : {CpuIsa::avx2, CpuIsa::avx512})
    if (!cpu::cpu_supports(isa))
      CHECK(contains(error_of([&] { cpu::force_adam_isa(isa); }), "this CPU lacks"));
  const CpuIsa automatic = cpu::adam_isa();
  {
    ForcedIsa forced(CpuIsa::scalar);
    CHECK(cpu::adam_isa() == CpuIsa::scalar);
  }
  CHECK(cpu::adam_isa() == automatic);
  const std::string note = std::string("automatic CPU Adam level on this machine: ") + cpu::cpu_isa_name(automatic);
  MESSAGE(note);
}

}  // namespace zt::test
