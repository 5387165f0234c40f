// CPU benchmark: the fused Adam/AdamW step (raw::adam_step_, the ZeRO-Offload optimizer step)
// over N fp32 parameters, against the host's memory bandwidth measured in the same run by a
// STREAM-triad-like kernel over arrays of the same size on the same OpenMP threads. Prints
// ms/step (to set beside bench/torch_cpu_adam.py's), GB/s of bytes the step must move, the triad
// GB/s and their ratio, for the instruction-set level(s) asked for.
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/cpu/kernels_adam.h"
#include "core/factory.h"
#include "core/ops.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  int64_t numel = int64_t(1) << 26;
  int steps = 10;
  zt::DType grad = zt::DType::f32;
  std::string copy = "none";  // none, bf16, f16
  std::string isa = "auto";   // auto, all, scalar, avx2, avx512
  bool huge_pages = false;    // madvise(MADV_HUGEPAGE) on the buffers before they are touched
  bool adamw = true;          // false: Adam without weight decay (torch.optim.Adam's defaults)
};

void usage() {
  std::printf(
      "usage: bench_cpu_adam [--numel N] [--steps K] [--grad f32|bf16|f16] [--copy none|bf16|f16]\n"
      "                      [--isa auto|all|scalar|avx2|avx512] [--algo adamw|adam]\n"
      "                      [--huge-pages]\n"
      "  AdamW over N fp32 params (default 2^26; use 1e9 on a large host) on OMP_NUM_THREADS threads,\n"
      "  median of K steps, alternating with a STREAM triad over N-element arrays (same run, threads).\n"
      "  --algo adam: Adam without weight decay, as torch.optim.Adam's defaults (the default is AdamW,\n"
      "  weight decay 0.01). --huge-pages asks the kernel for transparent huge pages on every buffer.\n");
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      usage();
      std::exit(0);
    }
    if (flag == "--huge-pages") {
      a.huge_pages = true;
      continue;
    }
    ZT_CHECK(i + 1 < argc, "bench_cpu_adam: ", flag, " needs a value");
    const std::string value = argv[++i];
    if (flag == "--numel") a.numel = int64_t(std::stod(value));
    else if (flag == "--steps") a.steps = std::stoi(value);
    else if (flag == "--grad") a.grad = zt::parse_dtype(value);
    else if (flag == "--copy") a.copy = value;
    else if (flag == "--isa") a.isa = value;
    else if (flag == "--algo") {
      ZT_CHECK(value == "adam" || value == "adamw", "bench_cpu_adam: --algo takes adam or adamw, found ", value);
      a.adamw = value == "adamw";
    }
    else ZT_FAIL("bench_cpu_adam: unknown flag ", flag, " (see --help)");
  }
  ZT_CHECK(a.numel > 0 && a.steps > 0, "bench_cpu_adam: expected --numel and --steps > 0");
  return a;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Seconds of one call of fn.
template <typename Fn>
double seconds_of(const Fn& fn) {
  const auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Writes every element from the thread that will stream it (static schedule: contiguous blocks,
// as the kernel's spans), so pages land on that thread's NUMA node.
void first_touch(float* x, int64_t n, float value, bool huge_pages) {
  if (huge_pages) {  // the page-aligned part of the buffer; THP fills its 2 MiB-aligned ranges
    const uintptr_t page = 4096, begin = (reinterpret_cast<uintptr_t>(x) + page - 1) / page * page;
    const uintptr_t end = reinterpret_cast<uintptr_t>(x + n) / page * page;
    if (end > begin && madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) != 0)
      std::perror("bench_cpu_adam: madvise(MADV_HUGEPAGE)");
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = value + float(i % 1000) * 1e-6f;
}

// a = b + s * c, STREAM's triad. STREAM counts 12 bytes per element; memory serves 16, since
// storing to a first reads its lines (write-allocate). The Adam step stores only to lines it has
// just read, so its bytes per element are all traffic: it is compared with the 16.
void triad(float* a, const float* b, const float* c, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = b[i] + 3.0f * c[i];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse_args(argc, argv);
    const int64_t n = args.numel;
    std::vector<zt::cpu::CpuIsa> levels;  // checked before gigabytes are allocated
    if (args.isa == "auto") levels = {zt::cpu::adam_isa()};
    else if (args.isa == "all") {
      for (auto isa : {zt::cpu::CpuIsa::scalar, zt::cpu::CpuIsa::avx2, zt::cpu::CpuIsa::avx512})
        if (zt::cpu::cpu_supports(isa)) levels.push_back(isa);
    } else {
      levels = {zt::cpu::parse_cpu_isa(args.isa)};
    }
    zt::Tensor p = zt::empty({n}), m = zt::empty({n}), v = zt::empty({n}), g32 = zt::empty({n});
    zt::Tensor triad_out = zt::empty({n});
    first_touch(p.data<float>(), n, 0.5f, args.huge_pages);
    first_touch(m.data<float>(), n, 0.0f, args.huge_pages);
    first_touch(v.data<float>(), n, 1e-6f, args.huge_pages);
    first_touch(g32.data<float>(), n, 1e-3f, args.huge_pages);
    first_touch(triad_out.data<float>(), n, 0.0f, args.huge_pages);
    const zt::Tensor grad = zt::raw::to(g32, args.grad);
    const zt::Tensor copy = args.copy == "none" ? zt::Tensor() : zt::empty({n}, zt::parse_dtype(args.copy));
    const double bytes_per_element = 12.0 + double(grad.element_size()) + 12.0 +
                                     (copy.defined() ? double(copy.element_size()) : 0.0);
    const int threads = omp_get_max_threads();
    std::printf("bench_cpu_adam: %s, N=%lld fp32 params, grad %s, model copy %s, %d OpenMP threads, %.0f bytes/element\n",
                args.adamw ? "AdamW (weight decay 0.01)" : "Adam (no weight decay)", (long long)n,
                zt::dtype_name(args.grad), args.copy.c_str(), threads, bytes_per_element);

    // Triad and step alternate, so both see the same machine load; medians of each. The triad
    // streams arrays as large as the step's: m and v (read), triad_out (written).
    std::printf("%-20s %10s %10s %22s %10s\n", "step", "ms/step", "GB/s", "triad GB/s (STREAM)", "of triad");
    int64_t step = 0;
    for (zt::cpu::CpuIsa isa : levels) {
      zt::cpu::force_adam_isa(isa);
      const double weight_decay = args.adamw ? 0.01 : 0.0;
      auto adam = [&] {
        zt::raw::adam_step_(p, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, weight_decay, args.adamw, ++step, copy);
      };
      auto stream = [&] { triad(triad_out.data<float>(), m.data<float>(), v.data<float>(), n); };
      adam();
      stream();
      std::vector<double> adam_s, triad_s;
      for (int r = 0; r < args.steps; ++r) {
        triad_s.push_back(seconds_of(stream));
        adam_s.push_back(seconds_of(adam));
      }
      const double t_adam = median(adam_s), t_triad = median(triad_s);
      const double gbps = bytes_per_element * double(n) / t_adam / 1e9;
      const double triad_gbps = 16.0 * double(n) / t_triad / 1e9;
      std::printf("%-20s %10.2f %10.1f %12.1f (%6.1f) %9.1f%%\n", zt::cpu::cpu_isa_name(isa), t_adam * 1e3, gbps,
                  triad_gbps, 12.0 * double(n) / t_triad / 1e9, 100.0 * gbps / triad_gbps);
    }
    zt::cpu::force_adam_isa(std::nullopt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
