// CUDA op roofline benchmark (issue 3): each zerotrain op beside a raw reference measured in the
// same run, with CUDA events, warm-up and the median of repeats, on random data (never zeros)
// sized to fill the chip. GEMM against cublasGemmEx called directly (TFLOP/s); memory-bound ops
// against cudaMemcpy device-to-device (effective bandwidth counting the fewest bytes each op must
// move); fused causal attention against the unfused composition (TFLOP/s); host overhead of a
// small autograd op. Prints a summary table last.
// Built only with the CUDA backend (bench/CMakeLists.txt); exits 0 with a message without a GPU.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "cuda/bench_reference.h"
#include "cuda/cuda_api.h"

namespace {

using zt::DType;
using zt::Tensor;
namespace ref = zt::cuda::bench;

constexpr int kDevice = 0;
constexpr double kGiB = double(int64_t(1) << 30);

// One line of the summary table.
struct Row {
  std::string op, measured, reference;
  double ratio = 0;   // measured / reference
  double target = 0;  // minimum ratio; 0 = informational
  bool lower_is_better = false;
};

struct Bench {
  bool quick = false;  // smaller sizes, for a smoke run
  double copy_bw = 0;  // bytes/s of cudaMemcpy D2D: the ceiling of memory-bound ops
  std::vector<Row> rows;
};

zt::TensorOptions on_gpu(DType dtype) { return zt::TensorOptions(dtype, zt::Device::cuda(kDevice)); }

std::string fmt(const char* format, double value, const char* unit) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return std::string(buf) + unit;
}

void print_row(const Row& r) {
  std::printf("  %-40s %-18s ref %-26s %6.1f%%\n", r.op.c_str(), r.measured.c_str(), r.reference.c_str(),
              100.0 * r.ratio);
  std::fflush(stdout);
}

// ---- GEMM ----

void bench_gemm(Bench& b, DType dtype, int64_t n, bool tf32, double target) {
  zt::cuda::set_allow_tf32(tf32);
  const Tensor x = zt::randn({n, n}, on_gpu(dtype)), y = zt::randn({n, n}, on_gpu(dtype));
  const Tensor c = Tensor::empty({n, n}, on_gpu(dtype));
  const double flops = 2.0 * double(n) * double(n) * double(n);
  const ref::TimingOptions opts{3, 7, 3};
  // Alternate samples of the reference and ours: an 8192^3 GEMM holds the GPU at its power limit,
  // so whichever side ran second in a sustained burst used to read several percent slower.
  const std::vector<double> ms = ref::time_alternately_ms(
      kDevice, opts,
      {[&] { ref::cublas_gemm(kDevice, dtype, tf32, n, n, n, x.raw_data(), y.raw_data(), c.raw_data()); },
       [&] { zt::raw::matmul(x, y); }});
  const double t_ref = ms[0], t_zt = ms[1];
  zt::cuda::set_allow_tf32(false);
  const double tf_zt = flops / t_zt / 1e9, tf_ref = flops / t_ref / 1e9;  // TFLOP/s (ms -> 1e-3)
  std::string name = std::string("gemm ") + zt::dtype_name(dtype) + (dtype == DType::f32 ? (tf32 ? " tf32" : " fp32") : "") +
                     " " + std::to_string(n) + "^3";
  b.rows.push_back({name, fmt("%.1f", tf_zt, " TFLOP/s"), fmt("cuBLAS %.1f", tf_ref, " TFLOP/s"), tf_zt / tf_ref,
                    target});
  print_row(b.rows.back());
}

// ---- memory-bound ops ----

// Records an op moving `bytes` per call in time `ms` against the measured copy bandwidth.
// target: the fraction of the copy bandwidth to reach (issue 3: 80% on ~1 GiB tensors); 0 for an
// informational row.
void add_bandwidth_row(Bench& b, const std::string& name, double bytes, double ms, double target = 0.80) {
  const double bw = bytes / (ms * 1e-3);
  b.rows.push_back({name, fmt("%.0f", bw / 1e9, " GB/s"), fmt("copy %.0f", b.copy_bw / 1e9, " GB/s"),
                    bw / b.copy_bw, target});
  print_row(b.rows.back());
}

ref::TimingOptions memory_opts() { return {2, 10, 3}; }

void bench_copy(Bench& b) {
  const int64_t bytes = b.quick ? int64_t(1) << 28 : int64_t(1) << 30;
  const Tensor src = zt::randn({bytes / 4}, on_gpu(DType::f32));
  const Tensor dst = Tensor::empty({bytes / 4}, on_gpu(DType::f32));
  const double ms = ref::time_ms(kDevice, memory_opts(), [&] {
    ref::device_copy(kDevice, dst.raw_data(), src.raw_data(), size_t(bytes));
  });
  b.copy_bw = 2.0 * double(bytes) / (ms * 1e-3);  // read + write
  const double peak = ref::theoretical_bandwidth(kDevice);
  std::printf("device %s: cudaMemcpy D2D of %.2f GiB: %.0f GB/s (read+write)", ref::device_name(kDevice),
              double(bytes) / kGiB, b.copy_bw / 1e9);
  if (peak > 0) std::printf(", %.1f%% of the %.0f GB/s DRAM peak", 100.0 * b.copy_bw / peak, peak / 1e9);
  std::printf("\n");
  // The ceiling itself, against the DRAM peak from the clocks (informational: no target).
  b.rows.push_back({"cudaMemcpy D2D (the ceiling)", fmt("%.0f", b.copy_bw / 1e9, " GB/s"),
                    fmt("DRAM peak %.0f", peak / 1e9, " GB/s"), peak > 0 ? b.copy_bw / peak : 0.0, 0.0});
  const double ms_zt = ref::time_ms(kDevice, memory_opts(), [&] { zt::raw::copy_(dst, src); });
  add_bandwidth_row(b, "copy_ f32 (zerotrain kernel)", 2.0 * double(bytes), ms_zt);
}

void bench_add(Bench& b, DType dtype) {
  const int64_t bytes = b.quick ? int64_t(1) << 28 : int64_t(1) << 30;  // per operand
  const int64_t n = bytes / int64_t(zt::dtype_size(dtype));
  const Tensor x = zt::randn({n}, on_gpu(dtype)), y = zt::randn({n}, on_gpu(dtype));
  const double ms = ref::time_ms(kDevice, memory_opts(), [&] { zt::raw::add(x, y); });
  add_bandwidth_row(b, std::string("add ") + zt::dtype_name(dtype) + " (2 in, 1 out)", 3.0 * double(bytes), ms);
}

void bench_softmax(Bench& b, DType dtype) {
  const int64_t cols = 8192;
  const int64_t rows = (b.quick ? int64_t(1) << 28 : int64_t(1) << 30) / int64_t(zt::dtype_size(dtype)) / cols;
  const Tensor x = zt::randn({rows, cols}, on_gpu(dtype));
  const double bytes = double(x.nbytes());
  const std::string shape = " (" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
  const double ms = ref::time_ms(kDevice, memory_opts(), [&] { zt::raw::softmax(x, -1); });
  add_bandwidth_row(b, std::string("softmax ") + zt::dtype_name(dtype) + shape, 2.0 * bytes, ms);
  const Tensor y = zt::raw::softmax(x, -1);
  const Tensor g = zt::randn({rows, cols}, on_gpu(dtype));
  const double ms_bwd = ref::time_ms(kDevice, memory_opts(), [&] { zt::raw::softmax_backward(g, y, -1, false); });
  add_bandwidth_row(b, std::string("softmax_backward ") + zt::dtype_name(dtype) + shape, 3.0 * bytes, ms_bwd);
}

// rows 0: 1 GiB of x in rows of `cols`; else the given rows (GPT-2 124M's (8192, 768) is a
// 12 MB call, timed for what a training step sees, launch and partial sums included: an
// informational row, the 80% target is for ~1 GiB tensors).
void bench_layer_norm(Bench& b, DType dtype, int64_t cols = 4096, int64_t rows = 0) {
  const double target = rows == 0 ? 0.80 : 0.0;
  if (rows == 0) rows = (b.quick ? int64_t(1) << 28 : int64_t(1) << 30) / int64_t(zt::dtype_size(dtype)) / cols;
  const Tensor x = zt::randn({rows, cols}, on_gpu(dtype));
  const Tensor w = zt::randn({cols}, on_gpu(dtype)), bias = zt::randn({cols}, on_gpu(dtype));
  const double xb = double(x.nbytes()), wb = double(w.nbytes()), stats = double(rows) * 4.0 * 2.0;
  const std::string shape = " (" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
  const double ms = ref::time_ms(kDevice, memory_opts(), [&] { zt::raw::layer_norm(x, w, bias, 1e-5); });
  // x in, y out, mean/rstd (f32 per row) out, weight and bias in.
  add_bandwidth_row(b, std::string("layer_norm ") + zt::dtype_name(dtype) + shape, 2.0 * xb + stats + 2.0 * wb, ms,
                    target);
  const zt::raw::LayerNormResult f = zt::raw::layer_norm(x, w, bias, 1e-5);
  const Tensor gy = zt::randn({rows, cols}, on_gpu(dtype));
  const double ms_bwd = ref::time_ms(kDevice, memory_opts(), [&] {
    zt::raw::layer_norm_backward(gy, x, f.mean, f.rstd, w, true);
  });
  // grad_y and x in, grad_x out, mean/rstd and weight in, grad_weight/grad_bias out.
  add_bandwidth_row(b, std::string("layer_norm_backward ") + zt::dtype_name(dtype) + shape,
                    3.0 * xb + stats + 3.0 * wb, ms_bwd, target);
}

void bench_cross_entropy(Bench& b, DType dtype) {
  const int64_t rows = b.quick ? 2048 : 8192, vocab = 50304;
  const Tensor logits = zt::randn({rows, vocab}, on_gpu(dtype));
  const Tensor target = zt::randint(0, vocab, {rows}, on_gpu(DType::i64));
  const double lb = double(logits.nbytes()), small = double(rows) * (8.0 + 4.0);  // target in, loss out
  const std::string shape = " (" + std::to_string(rows) + ", " + std::to_string(vocab) + ")";
  const double ms = ref::time_ms(kDevice, memory_opts(), [&] { zt::raw::cross_entropy(logits, target); });
  add_bandwidth_row(b, std::string("cross_entropy ") + zt::dtype_name(dtype) + shape, lb + small, ms);
  const Tensor gl = zt::rand({rows}, on_gpu(DType::f32), nullptr, 0.5, 1.5);
  const double ms_bwd = ref::time_ms(kDevice, memory_opts(), [&] {
    zt::raw::cross_entropy_backward(gl, logits, target);
  });
  add_bandwidth_row(b, std::string("cross_entropy_backward ") + zt::dtype_name(dtype) + shape, 2.0 * lb + small,
                    ms_bwd);
}

// AdamW over one flat f32 buffer (raw::adam_step_): reads p, g, m, v and writes p, m, v, plus
// the bf16 model copy when mixed precision keeps one (then the grad arrives in bf16 too).
void bench_adamw(Bench& b, bool mixed) {
  const int64_t n = (b.quick ? int64_t(1) << 28 : int64_t(1) << 30) / 4;  // 1 GiB f32 per buffer
  const DType gt = mixed ? DType::bf16 : DType::f32;
  const Tensor p = zt::randn({n}, on_gpu(DType::f32)), g = zt::randn({n}, on_gpu(gt));
  const Tensor m = zt::randn({n}, on_gpu(DType::f32));
  const Tensor v = zt::rand({n}, on_gpu(DType::f32), nullptr, 0.01, 1.0);
  const Tensor copy = mixed ? Tensor::empty({n}, on_gpu(DType::bf16)) : Tensor();
  int64_t step = 0;
  const double ms = ref::time_ms(kDevice, memory_opts(), [&] {
    zt::raw::adam_step_(p, g, m, v, 1e-4, 0.9, 0.95, 1e-8, 0.1, true, ++step, copy);
  });
  const double elem = 4.0 * 3.0 * 2.0 + double(zt::dtype_size(gt)) + (mixed ? 2.0 : 0.0);  // p, m, v in+out
  add_bandwidth_row(b, mixed ? "adamw f32 master, bf16 grad + bf16 copy" : "adamw f32 (p, g, m, v)",
                    elem * double(n), ms);
}

// ---- fused attention ----

// Causal attention FLOPs: Q K^T and P V over the lower triangle, 2 * 2 B H T^2 D / 2. The
// backward counts 2.5 times that (FlashAttention's convention), so forward + backward is 3.5x.
double causal_attention_flops(int64_t B, int64_t H, int64_t T, int64_t D) {
  return 2.0 * double(B * H) * double(T) * double(T) * double(D);
}

// The fused op (zt::scaled_dot_product_attention) against the unfused composition nn's
// CausalSelfAttention falls back to (matmul, mask, softmax, matmul), both through autograd, on
// GPT-2 shapes in bf16. TFLOP/s count the causal FLOPs for both, so the ratio is the speed-up.
void bench_attention(Bench& b, int64_t batch) {
  const int64_t B = b.quick ? batch / 4 : batch, H = 12, T = 1024, D = 64;
  const DType dt = DType::bf16;
  const double scale = 1.0 / std::sqrt(double(D));
  const Tensor q = zt::randn({B, H, T, D}, on_gpu(dt)), k = zt::randn({B, H, T, D}, on_gpu(dt));
  const Tensor v = zt::randn({B, H, T, D}, on_gpu(dt)), g = zt::randn({B, H, T, D}, on_gpu(dt));
  const Tensor ql = zt::detach(q), kl = zt::detach(k), vl = zt::detach(v);
  for (const Tensor& t : {ql, kl, vl}) zt::set_requires_grad(t);
  std::vector<double> mask_values(size_t(T * T), 0.0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = i + 1; j < T; ++j) mask_values[size_t(i * T + j)] = -INFINITY;
  const Tensor mask = zt::raw::to(zt::from_vector<double>(mask_values, {T, T}, dt), zt::Device::cuda(kDevice));
  auto unfused = [&](const Tensor& q_, const Tensor& k_, const Tensor& v_) {
    Tensor att = zt::add(zt::mul(zt::matmul(q_, k_, false, true), scale), mask);  // (B, H, T, T)
    return zt::matmul(zt::softmax(att, -1), v_);
  };
  auto fused = [&](const Tensor& q_, const Tensor& k_, const Tensor& v_) {
    return zt::scaled_dot_product_attention(q_, k_, v_, true, scale);
  };
  auto fwd_bwd = [&](auto attention) {
    for (const Tensor& t : {ql, kl, vl}) zt::set_grad(t, Tensor());
    zt::backward(attention(ql, kl, vl), g);
  };
  const ref::TimingOptions opts{3, 10, 3};
  const double flops = causal_attention_flops(B, H, T, D);
  const std::string shape = " B=" + std::to_string(B) + " H=12 T=1024 D=64";
  auto add_row = [&](const std::string& name, double work, double ms_fused, double ms_unfused) {
    const double tf = work / ms_fused / 1e9, tf_ref = work / ms_unfused / 1e9;  // TFLOP/s
    b.rows.push_back({name, fmt("%.1f", tf, " TFLOP/s"), fmt("unfused %.1f", tf_ref, " TFLOP/s"), tf / tf_ref, 1.0});
    print_row(b.rows.back());
  };
  zt::NoGradGuard no_grad;
  const double fwd_fused = ref::time_ms(kDevice, opts, [&] { fused(q, k, v); });
  const double fwd_unfused = ref::time_ms(kDevice, opts, [&] { unfused(q, k, v); });
  add_row("attention fwd bf16" + shape, flops, fwd_fused, fwd_unfused);
  zt::EnableGradGuard grad_on;
  const double fb_fused = ref::time_ms(kDevice, opts, [&] { fwd_bwd(fused); });
  const double fb_unfused = ref::time_ms(kDevice, opts, [&] { fwd_bwd(unfused); });
  add_row("attention fwd+bwd bf16" + shape, 3.5 * flops, fb_fused, fb_unfused);
}

// ---- host overhead ----

// Host microseconds per call of fn over `calls` calls and one device sync at the end (median
// of 5 samples): the op's throughput when nothing else runs. When the GPU takes longer per tiny
// kernel than the host takes to queue it, this is the GPU's rate, not the host's cost.
double synced_us_per_call(int calls, const std::function<void()>& fn) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < calls / 10; ++i) fn();
  zt::cuda::synchronize(kDevice);
  std::vector<double> samples;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) fn();
    zt::cuda::synchronize(kDevice);
    samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / calls);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// The host's own cost per call: bursts of `burst` calls queued on an idle GPU (short enough that
// the launch queue never fills, so the host never waits for the device), timed without the sync
// that follows each burst. Median and minimum over the bursts.
struct HostCost {
  double median_us = 0, min_us = 0;
};

HostCost host_us_per_call(const std::function<void()>& fn, int burst = 200, int bursts = 100) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < burst; ++i) fn();
  zt::cuda::synchronize(kDevice);
  std::vector<double> samples;
  for (int r = 0; r < bursts; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < burst; ++i) fn();
    samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / burst);
    zt::cuda::synchronize(kDevice);
  }
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples.front()};
}

void print_cost(const char* what, const HostCost& c) {
  std::printf("  %-52s %6.2f us/op (min %.2f)\n", what, c.median_us, c.min_us);
  std::fflush(stdout);
}

void bench_overhead(Bench& b) {
  const Tensor x = zt::randn({4, 4}, on_gpu(DType::f32)), y = zt::randn({4, 4}, on_gpu(DType::f32));
  const Tensor p = zt::randn({4, 4}, on_gpu(DType::f32));
  const Tensor out = Tensor::empty({4, 4}, on_gpu(DType::f32));
  zt::set_requires_grad(p);
  auto* xo = static_cast<float*>(out.raw_data());
  const auto* xa = static_cast<const float*>(x.raw_data());
  const auto* xb = static_cast<const float*>(y.raw_data());
  // From the floor up: what a hand-written CUDA program pays, then each layer zerotrain adds.
  const HostCost empty = host_us_per_call([&] { ref::launch_empty_kernel(kDevice); });
  const HostCost raw_cuda = host_us_per_call([&] { ref::launch_add_f32(kDevice, xo, xa, xb, 16); });
  const HostCost alloc = host_us_per_call([&] { (void)Tensor::empty({4, 4}, on_gpu(DType::f32)); });
  const HostCost in_place = host_us_per_call([&] { zt::raw::binary_(zt::BinaryOp::add, out, y); });
  const HostCost raw_add = host_us_per_call([&] { zt::raw::add(x, y); });
  const HostCost grad_add = host_us_per_call([&] { zt::add(p, y); });
  const HostCost fwd_bwd = host_us_per_call([&] { zt::backward(zt::sum(zt::mul(p, y))); }, 50, 100);
  print_cost("CUDA runtime: empty kernel launch", empty);
  print_cost("CUDA runtime: 16-float add kernel launch", raw_cuda);
  print_cost("Tensor::empty 4x4 + release (allocator, no launch)", alloc);
  print_cost("raw::binary_ add in place (dispatch + launch)", in_place);
  print_cost("raw::add 4x4 (dispatch + allocation + launch)", raw_add);
  print_cost("zt::add 4x4 with autograd", grad_add);
  print_cost("mul+sum+backward 4x4 (3 ops fwd + bwd), per step", fwd_bwd);
  const ref::HostCallCosts pieces = ref::host_call_costs(kDevice);
  std::printf("  pieces, ns/call: cudaGetDevice %.0f, DeviceGuard (same device) %.0f, current_stream %.0f, "
              "cudaGetLastError %.0f\n",
              pieces.get_device_ns, pieces.device_guard_ns, pieces.current_stream_ns, pieces.get_last_error_ns);
  const double synced = synced_us_per_call(10000, [&] { zt::add(p, y); });
  const double synced_cuda = synced_us_per_call(10000, [&] { ref::launch_add_f32(kDevice, xo, xa, xb, 16); });
  std::printf("  10k zt::add + one sync: %.2f us/op; 10k raw CUDA adds + one sync: %.2f us/op (the GPU's rate)\n",
              synced, synced_cuda);
  // The target is absolute (5 us), so the ratio column shows target / measured (>= 100% passes).
  b.rows.push_back({"zt::add 4x4 with autograd (host)", fmt("%.2f", grad_add.median_us, " us/op"),
                    fmt("raw CUDA launch %.2f", raw_cuda.median_us, " us/op"), 5.0 / grad_add.median_us, 1.0,
                    true});
  print_row(b.rows.back());
}

void print_summary(const Bench& b) {
  std::printf("\n== summary (bench_cuda_ops, %s) ==\n", ref::device_name(kDevice));
  std::printf("%-40s %-18s %-28s %8s %8s %s\n", "op", "measured", "reference", "ratio", "target", "result");
  int failed = 0;
  for (const Row& r : b.rows) {
    const bool pass = r.ratio >= r.target;
    if (!pass) ++failed;
    std::string target = r.target == 0 ? "-" : fmt(">=%.0f", 100.0 * r.target, "%");
    if (r.lower_is_better) target = "<5 us";
    std::printf("%-40s %-18s %-28s %7.1f%% %8s %s\n", r.op.c_str(), r.measured.c_str(), r.reference.c_str(),
                100.0 * r.ratio, target.c_str(), r.target == 0 ? "info" : (pass ? "PASS" : "FAIL"));
  }
  std::printf("%d of %zu rows below target\n", failed, b.rows.size());
}

void run(Bench& b, bool gemm, bool memory, bool attention, bool overhead) {
  if (memory) {
    std::printf("== device copy bandwidth (the ceiling) ==\n");
    bench_copy(b);  // the memory rows are ratios to copy_bw
  }
  if (gemm) {
    std::printf("== GEMM: zt::raw::matmul vs cublasGemmEx ==\n");
    for (const int64_t n : {int64_t(8192), int64_t(4096)}) {
      const int64_t size = b.quick ? n / 4 : n;
      bench_gemm(b, DType::bf16, size, false, 0.95);
      bench_gemm(b, DType::f16, size, false, 0.95);
      bench_gemm(b, DType::f32, size, true, 0.95);
      bench_gemm(b, DType::f32, size, false, 0.95);
    }
  }
  if (memory) {
    std::printf("== memory-bound ops: effective bandwidth vs cudaMemcpy D2D ==\n");
    bench_add(b, DType::bf16);
    bench_add(b, DType::f32);
    bench_softmax(b, DType::bf16);
    bench_softmax(b, DType::f32);
    bench_layer_norm(b, DType::bf16);
    bench_layer_norm(b, DType::f32);
    bench_layer_norm(b, DType::bf16, 768, 8192);
    bench_cross_entropy(b, DType::bf16);
    bench_cross_entropy(b, DType::f32);
    bench_adamw(b, false);
    bench_adamw(b, true);
  }
  if (attention) {
    std::printf("== fused attention vs unfused (matmul, mask, softmax, matmul), causal ==\n");
    bench_attention(b, 8);
    bench_attention(b, 16);
  }
  if (overhead) {
    std::printf("== host overhead of a small op ==\n");
    bench_overhead(b);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Bench b;
  bool gemm = true, memory = true, attention = true, overhead = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_cuda_ops [--quick] [--only gemm|memory|attention|overhead]\n"
                  "  CUDA op roofline: GEMM vs cuBLAS, memory-bound ops vs cudaMemcpy, fused attention vs\n"
                  "  unfused, host overhead;\n"
                  "  --quick uses a quarter of the sizes (smoke run, numbers not representative)\n");
      return 0;
    }
    if (arg == "--quick") {
      b.quick = true;
    } else if (arg == "--only" && i + 1 < argc) {
      const std::string what = argv[++i];
      gemm = what == "gemm";
      memory = what == "memory";
      attention = what == "attention";
      overhead = what == "overhead";
    } else {
      std::fprintf(stderr, "bench_cuda_ops: unknown argument '%s' (try --help)\n", arg.c_str());
      return 2;
    }
  }
  if (zt::cuda::device_count() == 0 || !zt::has_backend(zt::DeviceType::CUDA)) {
    std::printf("bench_cuda_ops: no CUDA device (or no CUDA backend registered): nothing to measure\n");
    return 0;
  }
  try {
    run(b, gemm, memory, attention, overhead);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    print_summary(b);
    return 1;
  }
  print_summary(b);
  return 0;
}
