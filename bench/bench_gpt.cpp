// GPT training throughput (issue 7): GPT-2 124M shapes by default (12 layers, 12 heads, 768 wide,
// context 1024, vocab 50304), bf16 with fp32 master weights and AdamW through the engine, on
// random tokens. Prints tokens/s, model FLOP/s, MFU against --peak-tflops (989: the H200's dense
// bf16 peak) counting 6 N + 12 L T C FLOPs per token, and the allocator's peak memory.
// bench/torch_gpt.py measures the same model and batch in PyTorch (eager and torch.compile) for
// the ratio; scripts/gpu_bench.sh runs both in one call.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/backend.h"
#include "core/factory.h"
#include "nn/gpt.h"
#include "runtime/args.h"
#include "runtime/config.h"
#include "runtime/engine.h"
#ifdef ZT_HAVE_CUDA
#include "cuda/attention_cudnn.h"
#endif

namespace {

struct Options {
  int64_t n_layer = 12, n_head = 12, n_embd = 768, block_size = 1024, vocab = 50304;
  int64_t batch = 8;    // sequences per step
  int64_t steps = 20;   // timed steps
  int64_t warmup = 5;   // untimed steps first (allocator caches, cuBLAS heuristics)
  std::string dtype = "bf16";
  std::string device;
  double peak_tflops = 989.0;
  bool checkpoint_activations = false;
  int64_t zero_stage = 0;
  int64_t grad_accum = 1;               // micro-batches of --batch per optimizer step
  std::string offload_optimizer = "none";  // zero_optimization.offload_optimizer.device
  std::string nvme_path;
  bool profile = false;  // profiler capture around the timed steps only
  bool unfused_mlp = false;
  bool unfused_residual = false;
  bool time_optimizer_step = false;  // the last micro-step's engine->step() alone, between syncs
};

double gib(int64_t bytes) { return double(bytes) / double(int64_t(1) << 30); }

int run(const Options& o) {
  const bool have_cuda = zt::has_backend(zt::DeviceType::CUDA);
  const zt::Device device = zt::Device::parse(o.device.empty() ? (have_cuda ? "cuda" : "cpu") : o.device);
  ZT_CHECK(zt::has_backend(device.type), "--device ", device.str(), ": not available in this build or machine");
  ZT_CHECK(o.dtype == "bf16" || o.dtype == "f32", "--dtype: expected bf16 or f32, found '", o.dtype, "'");
  ZT_CHECK(o.grad_accum >= 1, "--grad-accum: expected at least 1, found ", o.grad_accum);
  nlohmann::json config = {{"train_batch_size", o.batch * o.grad_accum},
                           {"train_micro_batch_size_per_gpu", o.batch},
                           {"gradient_clipping", 1.0},
                           {"steps_per_print", 1000000},
                           {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 6e-4}, {"betas", {0.9, 0.95}},
                                                                          {"weight_decay", 0.1}}}}}};
  if (o.dtype == "bf16") config["bf16"] = {{"enabled", true}};
  if (o.zero_stage > 0) config["zero_optimization"] = {{"stage", o.zero_stage}};
  if (o.offload_optimizer != "none") {
    config["zero_optimization"]["stage"] = o.zero_stage;
    config["zero_optimization"]["offload_optimizer"] = {{"device", o.offload_optimizer}, {"pin_memory", true}};
    if (!o.nvme_path.empty()) config["zero_optimization"]["offload_optimizer"]["nvme_path"] = o.nvme_path;
  }
  const zt::Config cfg = zt::config_from_app_defaults(config, zt::ConfigOptions{});

  zt::GPTConfig gc;
  gc.n_layer = o.n_layer;
  gc.n_head = o.n_head;
  gc.n_embd = o.n_embd;
  gc.block_size = o.block_size;
  gc.vocab_size = o.vocab;
  gc.checkpoint_activations = o.checkpoint_activations;
  gc.fused_mlp = !o.unfused_mlp;
  gc.fused_residual = !o.unfused_residual;
  zt::Generator gen(1234);
  auto model = std::make_shared<zt::GPT>(gc, &gen);
  model->to(device);
  zt::InitOptions init;
  init.monitor = false;
  auto engine = zt::initialize(model, cfg, init);

  const zt::Tensor tokens = zt::raw::to(
      zt::randint(0, o.vocab, {o.batch, o.block_size + 1}, zt::TensorOptions(zt::DType::i64), &gen), device);
  const zt::Tensor x = zt::raw::contiguous(zt::raw::narrow(tokens, 1, 0, o.block_size));
  const zt::Tensor y = zt::raw::contiguous(zt::raw::narrow(tokens, 1, 1, o.block_size));
  using Clock = std::chrono::steady_clock;
  // Waits for the device's queue: one element read back after everything queued so far.
  auto wait_for_device = [&] { zt::raw::to(zt::raw::narrow(zt::raw::reshape(x, {-1}), 0, 0, 1), zt::Device::cpu()); };
  double optimizer_step_secs = 0;  // --time-optimizer-step: summed over the timed steps
  bool timing = false;
  auto step = [&] {  // one optimizer step: grad_accum micro-steps of the same batch
    zt::Tensor loss;
    for (int64_t m = 0; m < o.grad_accum; ++m) {
      loss = zt::cross_entropy(engine->forward(x), y);
      engine->backward(loss);
      const bool boundary = m + 1 == o.grad_accum;
      if (!(timing && boundary && o.time_optimizer_step)) {
        engine->step();
        continue;
      }
      wait_for_device();  // backward done: what follows is the step's own time
      const auto t0 = Clock::now();
      engine->step();
      wait_for_device();
      optimizer_step_secs += std::chrono::duration<double>(Clock::now() - t0).count();
    }
    return loss;
  };
  std::printf("bench_gpt: GPT %lld layers, %lld heads, %lld wide, context %lld, vocab %lld: %.1fM parameters | "
              "batch %lld x %lld tokens x %lld micro-steps, %s, AdamW, ZeRO stage %lld, offload_optimizer %s, device %s\n",
              (long long)o.n_layer, (long long)o.n_head, (long long)o.n_embd, (long long)o.block_size,
              (long long)o.vocab, double(model->num_parameters()) / 1e6, (long long)o.batch, (long long)o.block_size,
              (long long)o.grad_accum, o.dtype.c_str(), (long long)o.zero_stage, o.offload_optimizer.c_str(),
              device.str().c_str());
  double first_loss = 0;
  for (int64_t i = 0; i < o.warmup; ++i) {
    const double l = step().item();  // item() waits for the device
    if (i == 0) first_loss = l;
  }
  zt::allocator_for(device).reset_peak();
  timing = true;
  const auto start = Clock::now();
  zt::Tensor last;
  if (o.profile) zt::backend_for(device).profiler_capture(true);
  for (int64_t i = 0; i < o.steps; ++i) last = step();
  // Host time to issue the steps: close to the total when the host, not the GPU, sets the pace
  // (the optimizer's host syncs count here too).
  const double issue_secs = std::chrono::duration<double>(Clock::now() - start).count();
  const double last_loss = last.item();
  if (o.profile) zt::backend_for(device).profiler_capture(false);
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const double tokens_per_s = double(o.steps * o.grad_accum * o.batch * o.block_size) / secs;
  const double flops = tokens_per_s * model->flops_per_token(o.block_size);
  const zt::MemoryStats mem = zt::allocator_for(device).stats();
  std::printf("zerotrain: %.1f ms/step, %.0f tokens/s, %.1f TFLOP/s model, MFU %.1f%% of %.0f TFLOP/s, "
              "peak memory %.2f GiB (loss %.3f -> %.3f), host issue %.1f ms/step\n",
              1e3 * secs / double(o.steps), tokens_per_s, flops / 1e12, 100 * flops / (o.peak_tflops * 1e12),
              o.peak_tflops, double(mem.total.peak) / double(int64_t(1) << 30), first_loss, last_loss,
              1e3 * issue_secs / double(o.steps));
  if (o.time_optimizer_step)  // unscale, norm, clip, the step and (offload) the copies, in wall time
    std::printf("optimizer step: %.1f ms (the boundary micro-step's engine->step(), the device idle before it)\n",
                1e3 * optimizer_step_secs / double(o.steps));
  // Model states between steps (parameters, gradients, optimizer state), against Psi = the
  // parameter count: 16 bytes each for mixed-precision Adam on one device, about 2-4 with the
  // optimizer offloaded (bf16 weights and gradients stay).
  const auto model_state = [](const zt::MemoryStats& s) {
    return s.of(zt::MemoryCategory::parameters).in_use + s.of(zt::MemoryCategory::gradients).in_use +
           s.of(zt::MemoryCategory::optimizer_state).in_use;
  };
  const double psi = double(model->num_parameters());
  // The gradients' high-water mark over the timed steps: without offload the reduced shard plus
  // what backward holds until reduced; with ZeRO-2 offload only the latter (buckets in flight).
  std::printf("model states: device %.2f GiB (%.2f bytes/parameter; gradients peak %.2f GiB)", gib(model_state(mem)),
              double(model_state(mem)) / psi, gib(mem.of(zt::MemoryCategory::gradients).peak));
  if (!device.is_cpu()) {  // pageable and page-locked host memory (the offloaded state is pinned)
    int64_t host = model_state(zt::allocator_for(zt::Device::cpu()).stats());
    if (zt::Allocator* pinned = zt::pinned_host_allocator()) host += model_state(pinned->stats());
    std::printf(", host %.2f GiB (%.2f bytes/parameter)", gib(host), double(host) / psi);
  }
  std::printf("; %.0f tokens per optimizer step\n", double(o.grad_accum * o.batch * o.block_size));
#ifdef ZT_HAVE_CUDA
  if (!device.is_cpu()) {  // which attention the timed steps ran (Note [cuDNN attention])
    const zt::cuda::CudnnAttentionCounts c = zt::cuda::cudnn_attention_counts();
    std::printf("attention: %s (%lld forward and %lld backward calls through cuDNN)\n",
                c.forward > 0 ? "cuDNN fused flash attention" : "zerotrain's kernels",
                static_cast<long long>(c.forward), static_cast<long long>(c.backward));
  }
#endif
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  zt::ArgParser args("bench_gpt", "GPT training throughput through the engine (tokens/s, MFU, peak memory).");
  args.add("--n-layer", &o.n_layer, "Transformer blocks");
  args.add("--n-head", &o.n_head, "attention heads");
  args.add("--n-embd", &o.n_embd, "width");
  args.add("--block-size", &o.block_size, "context length");
  args.add("--vocab", &o.vocab, "vocabulary size");
  args.add("--batch", &o.batch, "sequences per step");
  args.add("--steps", &o.steps, "timed steps");
  args.add("--warmup", &o.warmup, "untimed steps first");
  args.add("--dtype", &o.dtype, "bf16 (fp32 masters) or f32");
  args.add("--device", &o.device, "cpu or cuda (default: cuda when present)");
  args.add("--peak-tflops", &o.peak_tflops, "the device's dense peak for MFU (H200 bf16: 989)");
  args.add("--zero-stage", &o.zero_stage, "ZeRO stage of the engine's optimizer (0-3)");
  args.add("--grad-accum", &o.grad_accum, "micro-batches of --batch sequences per optimizer step");
  args.add("--offload-optimizer", &o.offload_optimizer, "none, cpu or nvme (ZeRO stage 1-3)");
  args.add("--nvme-path", &o.nvme_path, "folder for --offload-optimizer nvme");
  args.add_switch("--profile", &o.profile,
                  "open the profiler capture for the timed steps only (ncu/nsys --profile-from-start off)");
  args.add_switch("--unfused-mlp", &o.unfused_mlp,
                  "run the MLP module by module (GPTConfig::fused_mlp off) to measure what the fusion saves");
  args.add_switch("--unfused-residual", &o.unfused_residual,
                  "add each block's residuals apart (GPTConfig::fused_residual off), not in the projections' GEMMs");
  args.add_switch("--time-optimizer-step", &o.time_optimizer_step,
                  "also time the optimizer step alone (syncs the device around it: adds a little to ms/step)");
  args.add_switch("--checkpoint-activations", &o.checkpoint_activations, "recompute block activations in backward");
  try {
    if (!args.parse(argc, argv)) return 0;
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpt: error: %s\n", e.what());
    return 1;
  }
}
