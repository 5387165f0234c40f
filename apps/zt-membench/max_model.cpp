// zt-membench --max-model (Note [zt-membench max model] in max_model.h).
#include "apps/zt-membench/max_model.h"

#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "apps/zt-membench/formulas.h"
#include "apps/zt-membench/size_search.h"
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"
#include "nn/gpt.h"
#include "parallel/communicator.h"
#include "parallel/mpi_runtime.h"
#include "runtime/config.h"
#include "runtime/engine.h"
#include "zero/zero_optimizer.h"

namespace zt::membench {

namespace {

constexpr int64_t kHeadDim = 64;

double gib(double bytes) { return bytes / double(int64_t(1) << 30); }

Config trial_config(const MaxModelOptions& o, const std::string& offload, int world) {
  nlohmann::json j = {{"train_batch_size", o.batch * world},
                      {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 1e-4}}}}},
                      {"zero_optimization", {{"stage", o.stage}}}};
  if (o.dtype == "bf16") j["bf16"] = {{"enabled", true}};
  if (offload != "none") {
    j["zero_optimization"]["offload_optimizer"] = {
        {"device", offload}, {"pin_memory", true}, {"buffer_count", o.buffer_count}};
    j["zero_optimization"]["sub_group_size"] = o.sub_group_size;
    if (offload == "nvme") j["zero_optimization"]["offload_optimizer"]["nvme_path"] = o.nvme_path;
  }
  ConfigOptions options;
  options.world_size = world;
  return config_from_app_defaults(j, options);
}

bool contains(const std::string& text, const char* what) { return text.find(what) != std::string::npos; }

// What a trial's error means for the search: "out of disk", "out of host memory" (the host limit or
// the pinned allocator, with a GPU as the device), "out of memory"; empty: not a size that does not
// fit, so the search stops.
std::string failure_of(const std::string& what, const Device& device) {
  if (contains(what, "no space left on")) return "out of disk";
  const bool host = contains(what, "out of host memory") || contains(what, "CPU allocator: out of memory") ||
                    contains(what, "pinned host allocator: out of memory");
  if (host && !device.is_cpu()) return "out of host memory";
  return host || contains(what, "out of memory") ? "out of memory" : "";
}

struct TrialResult {
  std::string failure;  // empty: it trained
  std::string error;    // the failure's error message
  double device_peak = 0, host_peak = 0;  // bytes above what was in use before
};

// Trains the family's model with `heads` heads for o.steps steps (Note [zt-membench max model]),
// on this rank of `comm` (null: a world of one, on o.device).
TrialResult trial(const MaxModelOptions& o, const std::string& offload, int64_t heads,
                  const std::shared_ptr<Communicator>& comm) {
  const int world = comm ? comm->size() : 1;
  const Device device = world > 1 ? local_device(o.device.type, launch_info_from_env()) : o.device;
  Allocator& alloc = allocator_for(device);
  Allocator& cpu = allocator_for(Device::cpu());
  Allocator* pinned = pinned_host_allocator();  // null without a GPU
  const int64_t base = alloc.stats().total.in_use;
  for (Allocator* a : {&alloc, &cpu, pinned})
    if (a) a->reset_peak();
  reset_host_memory_peak();  // kept by the host limit check_options sets
  const int64_t host_base = host_memory_in_use();
  TrialResult r;
  try {
    GPTConfig c;
    c.n_layer = o.depth;
    c.n_head = heads;
    c.n_embd = heads * kHeadDim;
    c.block_size = o.context;
    c.vocab_size = o.vocab;
    auto model = std::make_shared<GPT>(c);  // f32 on the host, 4 bytes per parameter
    model->to(device);
    InitOptions init;
    init.monitor = false;
    init.communicator = comm;
    auto engine = initialize(model, trial_config(o, offload, world), init);
    for (int64_t s = 0; s < o.steps; ++s) {
      const Tensor x = raw::to(randint(0, o.vocab, {o.batch, o.context}), device);
      const Tensor y = raw::to(randint(0, o.vocab, {o.batch, o.context}), device);
      engine->backward(cross_entropy(engine->forward(x), y));
      engine->step();
    }
    raw::to(raw::sum(engine->module_state_dict().begin()->second), Device::cpu()).item();  // wait for the device
  } catch (const std::exception& e) {
    r.failure = failure_of(e.what(), device);
    if (r.failure.empty()) throw;
    r.error = e.what();
  }
  r.device_peak = double(alloc.stats().total.peak - base);
  // Pageable and pinned together at their joint high (on the CPU the device's peak already counts it).
  r.host_peak = double(host_memory_peak() - host_base);
  for (Allocator* a : {&alloc, &cpu, pinned})  // the next trial starts from what the system has
    if (a) a->empty_cache();
  return r;
}

int64_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : 0;
}

// Free bytes of the file system holding `path` (what an unprivileged process may use).
int64_t free_disk_bytes(const std::string& path) {
  struct statvfs fs {};
  ZT_CHECK(::statvfs(path.c_str(), &fs) == 0, "--nvme-path '", path, "': cannot read its file system's free space: ",
           std::strerror(errno), " (expected an existing directory)");
  return int64_t(fs.f_bavail) * int64_t(fs.f_frsize);
}

// What the family at `heads` needs in each place (Note [zt-membench max model]).
Prediction predicted(const MaxModelOptions& o, const std::string& offload, int64_t heads) {
  const bool bf16 = o.dtype == "bf16", gpu = !o.device.is_cpu();
  const double c = double(heads * kHeadDim), t = double(o.context), b = double(o.batch), k = bf16 ? 2 : 4;
  const double psi = family_parameters(o, heads);
  Prediction p = predict(int(o.stage), offload, bf16, psi, int(o.ranks), o.sub_group_size, o.buffer_count);
  const double activations =
      gpt_activation_bytes(double(o.depth), t, b, c, double(heads), bf16) + b * t * double(o.vocab) * 8;
  p.device += activations;  // Adam reads the bf16 gradient shard: no fp32 copy at the step
  if (offload == "nvme") p.host += 4 * psi;  // the engine's start reads the whole master into host memory once
  if (gpu) p.host = std::max(4 * psi, p.host + (offload == "none" ? 0 : k * psi));
  // ZeRO-2 streams its gradients through page-locked staging slots (Note [ZeRO-Offload gradient
  // streaming]); the trials use DeepSpeed's default reduce_bucket_size.
  if (o.stage == 2 && offload != "none")
    p.host += stream_staging_bytes(psi / double(o.ranks), double(zt::ZeroOptions{}.reduce_bucket_size),
                                   int(o.ranks), k);
  return p;
}

// The largest heads the prediction allows, and what stops it.
void predict_largest(const MaxModelOptions& o, const std::string& offload, int64_t device_memory, int64_t host_memory,
                     int64_t disk_free, MaxModelResult* r) {
  r->predicted_bound = "--max-heads";
  for (int64_t h = 1; h <= o.max_heads; ++h) {
    const Prediction p = predicted(o, offload, h);
    // Per rank; on the CPU the host's needs share the device's memory, and the ranks of a job
    // share the host.
    const double ranks = double(o.ranks);
    const double device_bytes = o.device.is_cpu() ? (p.device + p.host) * ranks : p.device;
    const char* bound = nullptr;
    if (device_bytes > double(device_memory)) bound = "device";
    else if (!o.device.is_cpu() && p.host * ranks > double(host_memory)) bound = "host";
    else if (offload == "nvme" && p.disk > double(disk_free)) bound = "disk";
    if (bound) {
      r->predicted_bound = bound;
      break;
    }
    r->predicted_heads = h;
  }
  r->predicted_params = r->predicted_heads > 0 ? family_parameters(o, r->predicted_heads) : 0;
}

// Sets the CPU allocator's limit, which is the host's (Note [Host memory limit]), for a scope.
class HostLimitScope {
 public:
  explicit HostLimitScope(int64_t bytes) : previous_(allocator_for(Device::cpu()).memory_limit()) {
    allocator_for(Device::cpu()).set_memory_limit(bytes);
  }
  ~HostLimitScope() { allocator_for(Device::cpu()).set_memory_limit(previous_); }
  HostLimitScope(const HostLimitScope&) = delete;
  HostLimitScope& operator=(const HostLimitScope&) = delete;

 private:
  int64_t previous_;
};

// ---- trials as jobs of several ranks (Note [zt-membench max model]) ----

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char ch : text) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// The verdict file of one rank: "trains|fails <tab> failure <tab> device peak <tab> host peak",
// then the error message.
void write_verdict(const std::string& path, const TrialResult& t) {
  std::ofstream f(path);
  f << (t.failure.empty() ? "trains" : "fails") << '\t' << (t.failure.empty() ? "-" : t.failure) << '\t'
    << t.device_peak << '\t' << t.host_peak << '\n'
    << t.error << '\n';
  f.close();
  ZT_CHECK(f.good(), "--max-model-trial: cannot write the verdict file '", path, "'");
}

bool read_verdict(const std::string& path, bool* trains, TrialResult* t) {
  std::ifstream f(path);
  std::string head;
  if (!f || !std::getline(f, head)) return false;
  std::istringstream fields(head);
  std::string verdict, failure, device_peak, host_peak;
  if (!std::getline(fields, verdict, '\t') || !std::getline(fields, failure, '\t') ||
      !std::getline(fields, device_peak, '\t') || !std::getline(fields, host_peak, '\t'))
    return false;
  *trains = verdict == "trains";
  t->failure = *trains ? "" : failure;
  t->device_peak = std::stod(device_peak);
  t->host_peak = std::stod(host_peak);
  std::getline(f, t->error);
  return verdict == "trains" || verdict == "fails";
}

// Runs `heads` as a job of o.ranks ranks (o.launcher on this program with --max-model-trial),
// each under host_memory / ranks, and combines their verdicts: the device peak is the largest
// rank's, the host peak the ranks' sum (they share the host).
TrialResult trial_job(const MaxModelOptions& o, const std::string& offload, int64_t heads, int64_t host_memory) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string verdict = (std::filesystem::temp_directory_path() /
                               ("zt_max_model_" + std::to_string(::getpid()) + "_" + std::to_string(heads)))
                                  .string();
  const std::string launcher = o.launcher.empty() ? "mpirun -np " + std::to_string(o.ranks) : o.launcher;
  std::ostringstream cmd;
  cmd << launcher << ' ' << shell_quote(self) << " --model gpt --max-model-trial " << heads << " --offload " << offload
      << " --device " << (o.device.is_cpu() ? "cpu" : "cuda") << " --dtype " << o.dtype << " --depth " << o.depth
      << " --context " << o.context << " --vocab " << o.vocab << " --batch " << o.batch << " --max-model-steps "
      << o.steps << " --max-model-stage " << o.stage << " --sub-group-size " << o.sub_group_size
      << " --buffer-count " << o.buffer_count << " --host-memory " << host_memory / o.ranks
      << " --max-model-verdict " << shell_quote(verdict);
  if (!o.nvme_path.empty()) cmd << " --nvme-path " << shell_quote(o.nvme_path);
  cmd << " 2>&1";
  std::string output;
  FILE* pipe = ::popen(cmd.str().c_str(), "r");
  ZT_CHECK(pipe != nullptr, "--max-model: cannot start the trial job '", cmd.str(), "': ", std::strerror(errno));
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) output += buf;
  const int wait_status = ::pclose(pipe);
  const int status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
  TrialResult job;
  int trained = 0;
  bool any_failed = false;
  for (int64_t r = 0; r < o.ranks; ++r) {
    const std::string path = verdict + "." + std::to_string(r);
    bool trains = false;
    TrialResult t;
    const bool read = read_verdict(path, &trains, &t);
    std::filesystem::remove(path);
    if (!read) continue;  // a rank the launcher ended after another one stopped
    trained += trains ? 1 : 0;
    job.device_peak = std::max(job.device_peak, t.device_peak);
    job.host_peak += t.host_peak;
    if (!trains && !any_failed) {
      any_failed = true;
      job.failure = t.failure;
      job.error = "rank " + std::to_string(r) + ": " + t.error;
    }
  }
  if (any_failed || trained == o.ranks) return job;
  const size_t tail = output.size() > 3000 ? output.size() - 3000 : 0;
  ZT_FAIL("--max-model: the trial job for ", heads, " heads (", cmd.str(), ") exited with status ", status,
          " and ", trained, " of ", o.ranks, " ranks reported; expected a verdict from every rank or an out-of-memory "
          "one. Its output", tail > 0 ? " (last 3000 bytes)" : "", ":\n", output.substr(tail));
}

}  // namespace

int run_trial_rank(const MaxModelOptions& o, const std::string& offload, int64_t heads,
                   const std::shared_ptr<Communicator>& comm, const std::string& verdict) {
  HostLimitScope limit(o.host_memory > 0 ? o.host_memory : allocator_for(Device::cpu()).memory_limit());
  const TrialResult t = trial(o, offload, heads, comm);
  write_verdict(verdict + "." + std::to_string(comm ? comm->rank() : 0), t);
  return t.failure.empty() ? 0 : 3;
}

double family_parameters(const MaxModelOptions& o, int64_t heads) {
  return gpt_parameters(double(o.vocab), double(o.context), double(o.depth), double(heads * kHeadDim));
}

std::vector<MaxModelResult> search_max_model(const MaxModelOptions& o) {
  ZT_CHECK(o.dtype == "bf16" || o.dtype == "f32", "--dtype: expected bf16 or f32, found '", o.dtype, "'");
  ZT_CHECK(o.depth > 0 && o.context > 0 && o.vocab > 0 && o.batch > 0 && o.steps > 0,
           "--max-model: --depth, --context, --vocab, --batch and --max-model-steps must be positive");
  ZT_CHECK(o.min_heads >= 1 && o.min_heads <= o.max_heads, "--max-model: expected 1 <= --min-heads <= --max-heads, "
           "found ", o.min_heads, " and ", o.max_heads);
  ZT_CHECK(o.ranks >= 1, "--max-model-ranks must be at least 1, found ", o.ranks);
  // The host limit first: on the CPU it is also the device memory of the prediction.
  const int64_t env_limit = allocator_for(Device::cpu()).memory_limit();
  const int64_t host_memory =
      o.host_memory > 0 ? o.host_memory : env_limit > 0 ? env_limit : physical_memory() / 10 * 9;
  const char* host_source = o.host_memory > 0 ? "--host-memory" : env_limit > 0 ? "ZT_HOST_MEMORY_LIMIT"
                                                                                : "90% of the machine's RAM";
  HostLimitScope host_limit(host_memory);
  const int64_t device_memory = o.device_memory > 0 ? o.device_memory : allocator_for(o.device).memory_limit();
  std::printf("  host memory limit %.2f GiB (%s), pageable and pinned together%s\n", gib(double(host_memory)),
              host_source, o.device.is_cpu() ? "; on the CPU also the device's" : "");
  if (o.ranks > 1) {
    std::printf("  each trial a job of %lld ranks (%s), each rank under %.2f GiB of the host limit\n",
                (long long)o.ranks, o.launcher.empty() ? ("mpirun -np " + std::to_string(o.ranks)).c_str()
                                                      : o.launcher.c_str(),
                gib(double(host_memory / o.ranks)));
  }
  if (device_memory > 0) std::printf("  device memory for the prediction %.2f GiB\n", gib(double(device_memory)));
  else std::printf("  device memory unknown: no prediction (pass --device-memory)\n");
  std::vector<MaxModelResult> results;
  for (const std::string& offload : o.offloads) {
    ZT_CHECK(offload == "none" || o.stage >= 1, "--max-model: offload ", offload, " needs --max-model-stage >= 1");
    MaxModelResult r;
    r.offload = offload;
    int64_t disk_free = 0;
    if (offload == "nvme") {
      disk_free = free_disk_bytes(o.nvme_path);
      std::printf("  nvme: %.2f GiB free on '%s'; the state file needs 12 bytes per parameter\n",
                  gib(double(disk_free)), o.nvme_path.c_str());
    }
    if (device_memory > 0) {
      predict_largest(o, offload, device_memory, host_memory, disk_free, &r);
      const Prediction p = predicted(o, offload, std::max<int64_t>(r.predicted_heads, 1));
      std::printf("  %s: predicted %lld heads (%.1fM parameters; device %.2f GiB, host %.2f GiB, disk %.2f GiB), "
                  "bound by %s\n", offload.c_str(), (long long)r.predicted_heads, r.predicted_params / 1e6,
                  gib(p.device), gib(p.host), gib(p.disk), r.predicted_bound.c_str());
    }
    std::fflush(stdout);  // a trial may run for minutes (nvme): show what it tries first
    std::map<int64_t, double> peaks;
    std::map<int64_t, std::string> failures;
    auto fits = [&](int64_t heads) {
      const auto start = std::chrono::steady_clock::now();
      const TrialResult t = o.ranks > 1 ? trial_job(o, offload, heads, host_memory) : trial(o, offload, heads, nullptr);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      // The time of each trial: the search's cost grows with the model, which a GPU session's
      // budget has to plan for.
      std::printf("  %s: %lld heads (%lld wide, %.1fM parameters): %s, peak %.3f GiB", offload.c_str(),
                  (long long)heads, (long long)(heads * kHeadDim), family_parameters(o, heads) / 1e6,
                  t.failure.empty() ? "trains" : t.failure.c_str(), gib(t.device_peak));
      if (!o.device.is_cpu()) std::printf(", host peak %.3f GiB", gib(t.host_peak));
      std::printf(", %.1f s\n", secs);
      if (!t.failure.empty()) std::printf("    (%s)\n", t.error.c_str());
      std::fflush(stdout);
      peaks[heads] = t.device_peak;
      failures[heads] = t.failure;
      return t.failure.empty();
    };
    const int64_t anchor = o.anchored ? r.predicted_heads : 0;
    const SizeSearchResult found = find_largest(o.min_heads, o.max_heads, anchor, fits);
    r.heads = found.largest;
    r.trials = found.trials;
    r.first_failure = found.first_failure;
    r.failure = found.first_failure > 0 ? failures[found.first_failure] : "";
    r.params = r.heads > 0 ? family_parameters(o, r.heads) : 0;
    r.peak_bytes = r.heads > 0 ? peaks[r.heads] : 0;
    std::printf("  %s: %lld trials, %s\n", offload.c_str(), (long long)r.trials,
                anchor > 0 ? ("anchored at the predicted " + std::to_string(anchor) + " heads").c_str()
                           : ("doubling from " + std::to_string(o.min_heads) + " heads").c_str());
    results.push_back(r);
  }
  return results;
}

void print_max_model(const MaxModelOptions& o, const std::vector<MaxModelResult>& results) {
  std::printf("largest trainable GPT (%lld layers, heads of 64, context %lld, vocab %lld, batch %lld, %s, ZeRO stage "
              "%lld over %lld rank%s, device %s):\n", (long long)o.depth, (long long)o.context, (long long)o.vocab,
              (long long)o.batch, o.dtype.c_str(), (long long)o.stage, (long long)o.ranks, o.ranks > 1 ? "s" : "",
              o.device.str().c_str());
  std::printf("  %-8s %7s %7s %14s %10s %7s | %15s %16s %-11s | %s\n", "offload", "heads", "width", "parameters",
              "peak GiB", "trials", "predicted width", "predicted params", "bound by", "first that did not fit");
  for (const MaxModelResult& r : results) {
    const std::string failed = r.first_failure > 0 ? std::to_string(r.first_failure) + " heads, " + r.failure : "none";
    std::printf("  %-8s %7lld %7lld %14.0f %10.3f %7lld | %15lld %16.0f %-11s | %s\n", r.offload.c_str(),
                (long long)r.heads, (long long)(r.heads * kHeadDim), r.params, gib(r.peak_bytes), (long long)r.trials,
                (long long)(r.predicted_heads * kHeadDim), r.predicted_params,
                r.predicted_bound.empty() ? "-" : r.predicted_bound.c_str(), failed.c_str());
  }
  for (const MaxModelResult& r : results) {
    if (r.heads == o.max_heads)
      std::printf("  (%s: still trains at --max-heads %lld; raise it to search further)\n", r.offload.c_str(),
                  (long long)o.max_heads);
    if (r.heads == 0)
      std::printf("  (%s: does not train even at --min-heads %lld)\n", r.offload.c_str(), (long long)o.min_heads);
  }
}

}  // namespace zt::membench
