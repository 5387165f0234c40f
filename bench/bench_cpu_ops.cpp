// CPU benchmark: per-op dispatch + autograd overhead on tiny tensors, and GEMM through
// zerotrain against OpenBLAS called directly in the same run (ratios, not absolute times).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/ops.h"

namespace {

using Clock = std::chrono::steady_clock;

// Median of `reps` timings of fn() run `iters` times each, in seconds per call.
double time_per_call(int reps, int iters, const std::function<void()>& fn) {
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    for (int i = 0; i < iters; ++i) fn();
    samples.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / iters);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

void bench_dispatch() {
  zt::Tensor a = zt::randn({4, 4}), b = zt::randn({4, 4});
  zt::Tensor p = zt::randn({4, 4});
  zt::set_requires_grad(p);
  const int iters = 20000;
  double raw_add = time_per_call(7, iters, [&] { zt::raw::add(a, b); });
  double nograd_add = time_per_call(7, iters, [&] {
    zt::NoGradGuard guard;
    zt::add(a, b);
  });
  double grad_add = time_per_call(7, iters, [&] { zt::add(p, b); });
  double fwd_bwd = time_per_call(7, iters / 4, [&] {
    zt::Tensor y = zt::sum(zt::mul(p, b));
    zt::backward(y);
  });
  std::printf("%-44s %10.3f us\n", "raw::add 4x4 (dispatch, no autograd)", raw_add * 1e6);
  std::printf("%-44s %10.3f us\n", "zt::add 4x4 under NoGradGuard", nograd_add * 1e6);
  std::printf("%-44s %10.3f us\n", "zt::add 4x4 recording the graph", grad_add * 1e6);
  std::printf("%-44s %10.3f us (3 ops fwd+bwd)\n", "mul+sum+backward 4x4", fwd_bwd * 1e6);
}

void bench_gemm(int n) {
  zt::Tensor a = zt::randn({n, n}), b = zt::randn({n, n});
  zt::Tensor c = zt::empty({n, n});
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pc = c.data<float>();
  const int reps = 7, iters = 3;
  auto direct = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, pa, n, pb, n, 0.0f, pc, n);
  };
  auto through_zt = [&] { zt::raw::matmul(a, b); };
  auto through_zt_bt = [&] { zt::raw::matmul(a, b, false, true); };
  direct();
  through_zt();
  double t_direct = time_per_call(reps, iters, direct);
  double t_zt = time_per_call(reps, iters, through_zt);
  double t_zt_bt = time_per_call(reps, iters, through_zt_bt);
  const double flops = 2.0 * n * n * n;
  std::printf("sgemm %dx%dx%d: OpenBLAS direct %.1f GFLOP/s, zerotrain %.1f GFLOP/s (%.1f%%), "
              "zerotrain a@b^T view %.1f GFLOP/s (%.1f%%)\n",
              n, n, n, flops / t_direct / 1e9, flops / t_zt / 1e9, 100.0 * t_direct / t_zt,
              flops / t_zt_bt / 1e9, 100.0 * t_direct / t_zt_bt);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::printf("usage: bench_cpu_ops [N]\n  per-op overhead on 4x4 tensors, then sgemm NxNxN "
                "(default 1024) through zerotrain vs OpenBLAS direct\n");
    return 0;
  }
  const int n = argc > 1 ? std::stoi(argv[1]) : 1024;
  try {
    bench_dispatch();
    bench_gemm(n);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
