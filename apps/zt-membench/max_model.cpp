// zt-membench --max-model (Note [zt-membench max model] in max_model.h).
#include "apps/zt-membench/max_model.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "apps/zt-membench/formulas.h"
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"
#include "nn/gpt.h"
#include "runtime/config.h"
#include "runtime/engine.h"

namespace zt::membench {

namespace {

constexpr int64_t kHeadDim = 64;

double gib(double bytes) { return bytes / double(int64_t(1) << 30); }

Config trial_config(const MaxModelOptions& o, const std::string& offload) {
  nlohmann::json j = {{"train_batch_size", o.batch},
                      {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 1e-4}}}}},
                      {"zero_optimization", {{"stage", o.stage}}}};
  if (o.dtype == "bf16") j["bf16"] = {{"enabled", true}};
  if (offload != "none") {
    j["zero_optimization"]["offload_optimizer"] = {
        {"device", offload}, {"pin_memory", true}, {"buffer_count", o.buffer_count}};
    j["zero_optimization"]["sub_group_size"] = o.sub_group_size;
    if (offload == "nvme") j["zero_optimization"]["offload_optimizer"]["nvme_path"] = o.nvme_path;
  }
  return config_from_app_defaults(j, ConfigOptions{});
}

bool is_out_of_memory(const std::string& what) {
  return what.find("out of memory") != std::string::npos || what.find("out of host memory") != std::string::npos;
}

// Trains the family's model with `heads` heads for o.steps steps; false when memory ran out.
// Sets *peak to the device allocator's high-water mark above what was in use before.
bool trial(const MaxModelOptions& o, const std::string& offload, int64_t heads, double* peak) {
  Allocator& alloc = allocator_for(o.device);
  const int64_t base = alloc.stats().total.in_use;
  alloc.reset_peak();
  bool trained = true;
  try {
    GPTConfig c;
    c.n_layer = o.depth;
    c.n_head = heads;
    c.n_embd = heads * kHeadDim;
    c.block_size = o.context;
    c.vocab_size = o.vocab;
    auto model = std::make_shared<GPT>(c);
    model->to(o.device);
    InitOptions init;
    init.monitor = false;
    auto engine = initialize(model, trial_config(o, offload), init);
    for (int64_t s = 0; s < o.steps; ++s) {
      const Tensor x = raw::to(randint(0, o.vocab, {o.batch, o.context}), o.device);
      const Tensor y = raw::to(randint(0, o.vocab, {o.batch, o.context}), o.device);
      engine->backward(cross_entropy(engine->forward(x), y));
      engine->step();
    }
    raw::to(raw::sum(engine->module_state_dict().begin()->second), Device::cpu()).item();  // wait for the device
  } catch (const std::exception& e) {
    if (!is_out_of_memory(e.what())) throw;
    trained = false;
  }
  *peak = double(alloc.stats().total.peak - base);
  alloc.empty_cache();  // the next trial starts from what the system has, not from this one's cache
  return trained;
}

int64_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : 0;
}

// What the formulas predict for the family at `heads` (Note [zt-membench max model]): on the
// device the model states and activations plus the logits and their gradient (B T V x 8 bytes);
// on the host the offloaded state.
Prediction predicted(const MaxModelOptions& o, const std::string& offload, int64_t heads) {
  const bool bf16 = o.dtype == "bf16";
  const double c = double(heads * kHeadDim), t = double(o.context), b = double(o.batch);
  Prediction p = predict(int(o.stage), offload, bf16, family_parameters(o, heads), 1, o.sub_group_size, o.buffer_count);
  p.device += gpt_activation_bytes(double(o.depth), t, b, c, double(heads), bf16) + b * t * double(o.vocab) * 8;
  return p;
}

}  // namespace

double family_parameters(const MaxModelOptions& o, int64_t heads) {
  return gpt_parameters(double(o.vocab), double(o.context), double(o.depth), double(heads * kHeadDim));
}

std::vector<MaxModelResult> search_max_model(const MaxModelOptions& o) {
  ZT_CHECK(o.dtype == "bf16" || o.dtype == "f32", "--dtype: expected bf16 or f32, found '", o.dtype, "'");
  ZT_CHECK(o.depth > 0 && o.context > 0 && o.vocab > 0 && o.batch > 0 && o.steps > 0 && o.max_heads > 0,
           "--max-model: --depth, --context, --vocab, --batch, --steps and --max-heads must be positive");
  const int64_t device_memory = o.device_memory > 0 ? o.device_memory : allocator_for(o.device).memory_limit();
  const int64_t host_limit = allocator_for(Device::cpu()).memory_limit();
  const int64_t host_memory = o.host_memory > 0 ? o.host_memory : host_limit > 0 ? host_limit : physical_memory();
  std::vector<MaxModelResult> results;
  for (const std::string& offload : o.offloads) {
    ZT_CHECK(offload == "none" || o.stage >= 1, "--max-model: offload ", offload, " needs --max-model-stage >= 1");
    MaxModelResult r;
    r.offload = offload;
    double peak = 0;
    auto fits = [&](int64_t heads) {
      ++r.trials;
      const auto start = std::chrono::steady_clock::now();
      const bool ok = trial(o, offload, heads, &peak);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      // The time of each trial: the search's cost grows with the model, which a GPU session's
      // budget has to plan for.
      std::printf("  %s: %lld heads (%lld wide, %.1fM parameters): %s, peak %.3f GiB, %.1f s\n", offload.c_str(),
                  (long long)heads, (long long)(heads * kHeadDim), family_parameters(o, heads) / 1e6,
                  ok ? "trains" : "out of memory", gib(peak), secs);
      std::fflush(stdout);
      if (ok) r.peak_bytes = peak;
      return ok;
    };
    int64_t good = 0, bad = 0;  // largest success, smallest failure (0: none yet)
    for (int64_t h = 1; h <= o.max_heads; h *= 2) {
      if (!fits(h)) {
        bad = h;
        break;
      }
      good = h;
    }
    if (good > 0 && bad > 0) {
      const double good_peak = r.peak_bytes;
      double best_peak = good_peak;
      while (bad - good > 1) {
        const int64_t mid = good + (bad - good) / 2;
        if (fits(mid)) {
          good = mid;
          best_peak = r.peak_bytes;
        } else {
          bad = mid;
        }
      }
      r.peak_bytes = best_peak;
    }
    r.heads = good;
    r.params = good > 0 ? family_parameters(o, good) : 0;
    if (device_memory > 0) {
      for (int64_t h = 1; h <= o.max_heads; ++h) {
        // On the CPU the offloaded state shares the device's memory.
        const Prediction p = predicted(o, offload, h);
        const double host_bytes = p.host;
        const double device_bytes = p.device + (o.device.is_cpu() ? host_bytes : 0);
        const bool device_fits = device_bytes <= double(device_memory);
        const bool host_fits = o.device.is_cpu() || host_bytes <= double(host_memory);
        if (!device_fits || !host_fits) break;
        r.predicted_heads = h;
      }
      r.predicted_params = r.predicted_heads > 0 ? family_parameters(o, r.predicted_heads) : 0;
    }
    results.push_back(r);
  }
  return results;
}

void print_max_model(const MaxModelOptions& o, const std::vector<MaxModelResult>& results) {
  std::printf("largest trainable GPT (%lld layers, heads of 64, context %lld, vocab %lld, batch %lld, %s, ZeRO stage "
              "%lld, device %s):\n", (long long)o.depth, (long long)o.context, (long long)o.vocab, (long long)o.batch,
              o.dtype.c_str(), (long long)o.stage, o.device.str().c_str());
  std::printf("  %-8s %7s %7s %14s %10s %7s | %15s %14s\n", "offload", "heads", "width", "parameters", "peak GiB",
              "trials", "predicted width", "predicted params");
  for (const MaxModelResult& r : results) {
    std::printf("  %-8s %7lld %7lld %14.0f %10.3f %7lld | %15lld %14.0f\n", r.offload.c_str(), (long long)r.heads,
                (long long)(r.heads * kHeadDim), r.params, gib(r.peak_bytes), (long long)r.trials,
                (long long)(r.predicted_heads * kHeadDim), r.predicted_params);
  }
  for (const MaxModelResult& r : results)
    if (r.heads == o.max_heads)
      std::printf("  (%s: still trains at --max-heads %lld; raise it to search further)\n", r.offload.c_str(),
                  (long long)o.max_heads);
}

}  // namespace zt::membench
