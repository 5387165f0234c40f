// zt-membench: measures the per-rank memory of ZeRO stages 0-3 on a real training run and sets it
// beside the ZeRO paper's prediction for the model states (DESIGN.md §5).
//
// Note [zt-membench measurements]
// On --device cuda the categories are the GPU allocator's (each rank its local GPU), the offloaded
// host bytes apart from them; step_ms waits for the GPU.
// For each stage a fresh model (--model mlp: depth x Linear(W, W), ReLU between; --model gpt: the
// GPT of nn/gpt.h, next-token cross-entropy on random tokens) is trained for --steps steps
// through the engine, each rank on its own random micro-batch. The numbers come from the CPU
// allocator's per-category counters (core/allocator.h), as deltas from the values before the
// model was built, on the last step:
//   gradients: in use after the gradient reduction of the step and before the optimizer step
//              (the bench finishes the ZeRO reduction itself, at every stage: stage 0 is the
//              unpartitioned flat optimizer, whose flat gradient buffer stays between steps).
//   parameters, optimizer_state: in use after the step (Adam allocates m and v on its first step).
//              At stage 3 that is the parameter shard alone: every unit gathered for forward and
//              backward has been released again (the bench sets stage3_param_persistence_threshold
//              to --persistence-threshold, 0 by default, so no unit stays gathered).
//   peak: the high-water mark of all categories during the last step, activations included.
//   step_ms: wall time of the last step (forward, backward, reduction, optimizer step).
// The model states are parameters + gradients + optimizer_state. The prediction (Ψ the unpadded
// parameter count, N the ranks, Adam):
//   bf16 (fp32 masters): stage 0: 16Ψ, stage 1: 4Ψ + 12Ψ/N, stage 2: 2Ψ + 14Ψ/N, stage 3: 16Ψ/N
//   f32:                 stage 0: 16Ψ, stage 1: 8Ψ + 8Ψ/N,  stage 2: 4Ψ + 12Ψ/N, stage 3: 16Ψ/N
// (f32 counts 4 bytes of parameters and gradients and 8 of Adam's moments, the master being the
// parameter itself.) ZeRO pads the flat parameter buffer (stage 3: each module's unit) to a
// multiple of N x 16 elements, so stages 1-3 hold a few padded elements more than Ψ. With bf16
// and Adam/AdamW, Adam (on the device, or the CPU Adam under offload) reads the 16-bit gradient
// shard with its unscale and clip factors: no fp32 master gradient exists. Other optimizers keep
// DeepSpeed's fp32 master gradient for the optimizer step only, so it is in the peak but not in
// the model states.
//
// With --offload cpu,nvme each stage from 1 up is also run with zero_optimization.offload_optimizer
// (ZeRO-Offload, Note [ZeRO-Offload] in zero/sharded_optimizer.h). The model states are then split
// into three places, measured and predicted (k = 2 bytes for bf16, 4 for f32):
//   device: what stays in the compute device's categories. Stage 1: kΨ parameters + kΨ gradients,
//           stage 2: kΨ (every micro-step's gradients stream to the host: Note [ZeRO-Offload
//           gradient streaming]), stage 3: kΨ/N + kΨ/N (no masters, no moments).
//   host:   the store (cpu: 12Ψ/N of fp32 master, exp_avg, exp_avg_sq; nvme: B swap buffers of
//           12 min(G, Ψ/N) bytes, G = sub_group_size, B = min(buffer_count, number of
//           sub-groups)) plus the gradient shard the CPU Adam reads, in the compute dtype (kΨ/N).
//   disk:   nvme: the state file, every sub-group in a whole slot: 12 G ceil(Ψ/(N G)) (12Ψ/N
//           when G divides the shard).
// On the CPU backend all of it is host memory: host is what ShardedOptimizer::offload_host_bytes()
// reports, disk the store's disk_bytes(), device the model states minus host.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/backend.h"
#include "nn/activation.h"
#include "nn/gpt.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "parallel/mpi_runtime.h"
#include "runtime/args.h"
#include "runtime/config.h"
#include "runtime/engine.h"
#include "apps/zt-membench/formulas.h"
#include "apps/zt-membench/max_model.h"
#include "zero/sharded_optimizer.h"

namespace {

using zt::membench::gpt_activation_bytes;
using zt::membench::gpt_parameters;
using zt::membench::predict;
using zt::membench::Prediction;

struct BenchOptions {
  std::string model = "mlp";
  int64_t width = 512;   // MLP width; GPT n_embd
  int64_t depth = 4;     // MLP Linear layers; GPT n_layer
  int64_t heads = 4;     // GPT only
  int64_t context = 64;  // GPT only: tokens per sequence
  int64_t vocab = 256;   // GPT only
  // Stage 3 keeps units of at most this many elements whole on every rank (DeepSpeed's
  // stage3_param_persistence_threshold, default 1e5); 0 here so the measurement shows the
  // partitioning alone, which the 16Ψ/N formula describes.
  int64_t persistence_threshold = 0;
  std::string stages = "0,1,2,3";
  std::string dtype = "f32";
  int64_t steps = 2;
  int64_t batch = 8;  // per rank
  std::string csv;
  std::string svg;
  bool estimate = false;
  int64_t ranks = 0;  // --estimate only: N (0: the launcher's world size, else 1)
  std::string offload = "none";  // comma-separated: none, cpu, nvme
  std::string nvme_path;
  int64_t sub_group_size = 1'000'000'000;
  int64_t buffer_count = 4;
  // --max-model (apps/zt-membench/max_model.h)
  bool max_model = false;
  int64_t max_model_stage = 2;
  int64_t min_heads = 1, max_heads = 1024;
  std::string max_model_search = "anchored";
  int64_t max_model_steps = 3;  // a model "trains" when this many steps run (--steps is the stages' count)
  int64_t max_model_ranks = 1;  // ranks of each trial (> 1: each trial a job started by the launcher)
  std::string max_model_launcher;
  int64_t max_model_trial = 0;    // > 0: be one rank of a trial job of this many heads (internal)
  std::string max_model_verdict;  // the trial job's verdict file prefix (internal)
  std::string device = "cpu";
  std::string device_memory, host_memory;
};

// One stage's numbers on one rank (bytes, except step_ms). host and disk: the offload's.
// params, grads and optim are the categories of the model's device allocator; on a GPU the
// offloaded host bytes are outside them (host_apart = 1), on the CPU inside.
struct Measure {
  double params = 0, grads = 0, optim = 0, peak = 0, step_ms = 0, padded = 0, host = 0, disk = 0, host_apart = 0;
  double model_state() const { return params + grads + optim + (host_apart > 0 ? host : 0); }
  double device() const { return model_state() - host; }
};
constexpr int kMeasureFields = 9;

// The predicted model states of one stage and offload mode (Note [zt-membench measurements]).
const char* kFormulaHelp =
    "Predicted model states per rank (Psi = parameter count, N = ranks, Adam):\n"
    "  bf16 (fp32 masters): stage 0: 16Psi, stage 1: 4Psi + 12Psi/N, stage 2: 2Psi + 14Psi/N, stage 3: 16Psi/N\n"
    "  f32:                 stage 0: 16Psi, stage 1: 8Psi + 8Psi/N,  stage 2: 4Psi + 12Psi/N, stage 3: 16Psi/N\n"
    "Measured on the last step (CPU allocator categories): gradients after the reduction and\n"
    "before the update; parameters and optimizer state after the step; peak over the step.\n"
    "Activations (--estimate): batch x width x depth x bytes(dtype) x 2 (each layer keeps its\n"
    "input and its output for backward).\n"
    "With --offload cpu|nvme (ZeRO-Offload of the Adam state, stages 1-3; k = 2 bytes bf16, 4 f32):\n"
    "  device: stage 1: kPsi params + kPsi grads, stage 2: kPsi + kPsi/N, stage 3: kPsi/N + kPsi/N\n"
    "  host:   cpu: 12Psi/N (fp32 master, exp_avg, exp_avg_sq) + 4Psi/N (fp32 gradient shard)\n"
    "          nvme: B x 12 x min(G, Psi/N) swap buffers + 4Psi/N; G = --sub-group-size,\n"
    "          B = min(--buffer-count, number of sub-groups)\n"
    "  disk:   nvme: 12 x G x ceil(Psi/N / G) (every sub-group takes a whole slot; 12Psi/N when G divides it)\n"
    "On the CPU all of it is host memory: host and disk are what the offload store reports, device\n"
    "the model states minus host.";

std::vector<std::string> parse_offloads(const std::string& text) {
  std::vector<std::string> modes;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    ZT_CHECK(item == "none" || item == "cpu" || item == "nvme", "--offload: expected a comma-separated list of "
             "none, cpu and nvme, found '", item, "' in '", text, "'");
    modes.push_back(item);
  }
  ZT_CHECK(!modes.empty(), "--offload: expected at least one of none, cpu, nvme, found '", text, "'");
  return modes;
}

std::vector<int> parse_stages(const std::string& text) {
  std::vector<int> stages;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    ZT_CHECK(item.size() == 1 && item[0] >= '0' && item[0] <= '3', "--stages: expected a comma-separated list "
             "of ZeRO stages 0..3, found '", item, "' in '", text, "'");
    stages.push_back(item[0] - '0');
  }
  ZT_CHECK(!stages.empty(), "--stages: expected at least one stage, found '", text, "'");
  return stages;
}

// Ψ of --model: MLP depth x (W^2 + W); GPT (nn/gpt.h, biases, tied head) V C + T C + L (12 C^2 + 13 C) + 2 C.
double parameter_count(const BenchOptions& o) {
  const double w = double(o.width), d = double(o.depth);
  if (o.model == "mlp") return d * (w * w + w);
  return gpt_parameters(double(o.vocab), double(o.context), d, w);
}

std::string model_name(const BenchOptions& o) {
  if (o.model == "mlp")
    return "MLP " + std::to_string(o.depth) + " x Linear(" + std::to_string(o.width) + ", " + std::to_string(o.width) + ")";
  return "GPT " + std::to_string(o.depth) + " layers, " + std::to_string(o.heads) + " heads, " + std::to_string(o.width) +
         " wide, context " + std::to_string(o.context) + ", vocab " + std::to_string(o.vocab);
}

std::shared_ptr<zt::Sequential> make_mlp(int64_t width, int64_t depth) {
  auto model = std::make_shared<zt::Sequential>();
  for (int64_t i = 0; i < depth; ++i) {
    if (i > 0) model->push_back(std::make_shared<zt::ReLU>());
    model->push_back(std::make_shared<zt::Linear>(width, width));
  }
  return model;
}

std::shared_ptr<zt::Module> make_model(const BenchOptions& o) {
  if (o.model == "mlp") return make_mlp(o.width, o.depth);
  zt::GPTConfig c;
  c.n_layer = o.depth;
  c.n_head = o.heads;
  c.n_embd = o.width;
  c.block_size = o.context;
  c.vocab_size = o.vocab;
  auto gpt = std::make_shared<zt::GPT>(c);
  ZT_CHECK(double(gpt->num_parameters()) == parameter_count(o), "zt-membench: the GPT has ", gpt->num_parameters(),
           " parameters but the bench's formula says ", parameter_count(o), " (nn/gpt.h changed: update the formula)");
  return gpt;
}

zt::Config make_config(int stage, const std::string& offload, const BenchOptions& o, int ranks) {
  zt::ConfigOptions options;
  options.world_size = ranks;
  nlohmann::json defaults = {{"train_batch_size", o.batch * ranks},
                             {"gradient_accumulation_steps", 1},
                             {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 1e-3}}}}},
                             {"zero_optimization", {{"stage", stage},
                                                    {"stage3_param_persistence_threshold", o.persistence_threshold}}}};
  if (o.dtype == "bf16") defaults["bf16"] = {{"enabled", true}};
  if (offload != "none") {
    nlohmann::json& z = defaults["zero_optimization"];
    z["sub_group_size"] = o.sub_group_size;
    z["offload_optimizer"] = {{"device", offload}, {"buffer_count", o.buffer_count}};
    if (offload == "nvme") z["offload_optimizer"]["nvme_path"] = o.nvme_path;
  }
  return zt::config_from_app_defaults(defaults, options);
}

int64_t in_use(const zt::MemoryStats& s, zt::MemoryCategory c) { return s.of(c).in_use; }

// Trains a fresh model for o.steps steps at `stage` and measures the last one
// (Note [zt-membench measurements]).
Measure run_stage(int stage, const std::string& offload, const BenchOptions& o,
                  const std::shared_ptr<zt::Communicator>& comm) {
  using zt::MemoryCategory;
  const zt::Device device = zt::local_device(zt::Device::parse(o.device).type, zt::launch_info_from_env());
  zt::Allocator& alloc = zt::allocator_for(device);
  const zt::MemoryStats before = alloc.stats();
  Measure m;
  m.host_apart = device.is_cpu() ? 0 : 1;
  zt::manual_seed(uint64_t(comm->rank()) + 1);
  auto engine = [&] {
    zt::InitOptions init;
    init.communicator = comm;
    init.monitor = false;
    std::shared_ptr<zt::Module> model = make_model(o);
    model->to(device);
    return zt::initialize(model, make_config(stage, offload, o, comm->size()), init);
  }();
  auto* zero = dynamic_cast<zt::ShardedOptimizer*>(&engine->precision());
  m.padded = double(zero ? zero->padded_numel() : 0);
  const zt::DType dtype = engine->dtype();
  for (int64_t step = 0; step < o.steps; ++step) {
    // This rank's micro-batch: regression towards a random target (MLP), random tokens (GPT).
    const bool gpt = o.model == "gpt";
    zt::Tensor x = gpt ? zt::randint(0, o.vocab, {o.batch, o.context}) : zt::raw::to(zt::randn({o.batch, o.width}), dtype);
    zt::Tensor y = gpt ? zt::randint(0, o.vocab, {o.batch, o.context}) : zt::raw::to(zt::randn({o.batch, o.width}), dtype);
    x = zt::raw::to(x, device);
    y = zt::raw::to(y, device);
    alloc.reset_peak();
    const auto start = std::chrono::steady_clock::now();
    zt::Tensor out = engine->forward(x);
    const zt::Tensor loss = gpt ? zt::cross_entropy(out, y) : zt::mse_loss(out, y);
    engine->backward(loss);
    if (zero) zero->finish_gradient_reduction();
    const zt::MemoryStats mid = alloc.stats();
    engine->step();
    loss.item();  // on a GPU: the copy queues behind the step, so the clock stops after it
    m.step_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const zt::MemoryStats after = alloc.stats();
    m.grads = double(in_use(mid, MemoryCategory::gradients) - in_use(before, MemoryCategory::gradients));
    m.params = double(in_use(after, MemoryCategory::parameters) - in_use(before, MemoryCategory::parameters));
    m.optim = double(in_use(after, MemoryCategory::optimizer_state) - in_use(before, MemoryCategory::optimizer_state));
    m.peak = double(after.total.peak - before.total.in_use);
  }
  if (zero && zero->offloaded()) {
    m.host = double(zero->offload_host_bytes());
    m.disk = double(zero->offloaded_state()->disk_bytes());
  }
  return m;
}

// Every rank's Measure, in rank order (collective).
std::vector<Measure> gather(zt::Communicator& world, const Measure& mine) {
  const std::vector<double> fields = {mine.params, mine.grads, mine.optim, mine.peak,      mine.step_ms,
                                      mine.padded, mine.host,  mine.disk,  mine.host_apart};
  zt::Tensor all = world.all_gather(zt::from_vector(fields, {kMeasureFields}));
  const double* v = all.data<double>();
  std::vector<Measure> out(size_t(world.size()));
  for (size_t r = 0; r < out.size(); ++r) {
    const double* f = v + r * kMeasureFields;
    out[r] = Measure{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]};
  }
  return out;
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

struct Row {
  int stage = 0, rank = 0;
  std::string offload = "none";
  Measure m;
  Prediction predicted;
};

void print_stage_table(int stage, const std::string& offload, const std::vector<Measure>& ranks,
                       const Prediction& predicted, double psi) {
  std::printf("ZeRO stage %d%s (measured after the step; gradients after the reduction, before the update)\n", stage,
              offload == "none" ? "" : (", offload_optimizer " + offload).c_str());
  if (ranks[0].padded > 0 && ranks[0].padded != psi)
    std::printf("  sharded buffers padded to %.0f elements (Psi = %.0f unpadded)\n", ranks[0].padded, psi);
  std::printf("  %4s %11s %11s %11s %11s %11s %7s %11s %11s %11s %11s %11s %11s %10s %9s\n", "rank",
              "params MiB", "grads MiB", "optim MiB", "states MiB", "predict MiB", "ratio", "device MiB", "host MiB",
              "disk MiB", "pred dev", "pred host", "pred disk", "peak MiB", "step ms");
  for (size_t r = 0; r < ranks.size(); ++r) {
    const Measure& m = ranks[r];
    std::printf("  %4zu %11.3f %11.3f %11.3f %11.3f %11.3f %7.4f %11.3f %11.3f %11.3f %11.3f %11.3f %11.3f "
                "%10.3f %9.2f\n", r, mib(m.params), mib(m.grads), mib(m.optim), mib(m.model_state()), mib(predicted.model_state()),
                m.model_state() / predicted.model_state(), mib(m.device()), mib(m.host), mib(m.disk),
                mib(predicted.device), mib(predicted.host), mib(predicted.disk), mib(m.peak), m.step_ms);
  }
}

void write_csv(const std::string& path, const std::vector<Row>& rows, double psi) {
  std::ofstream out(path);
  ZT_CHECK(out.good(), "--csv: cannot write '", path, "'");
  out << "stage,rank,params,padded_params,measured_model_state_bytes,predicted_model_state_bytes,ratio,"
         "parameters_bytes,gradients_bytes,optimizer_state_bytes,peak_bytes,step_ms,offload,device_bytes,host_bytes,"
         "disk_bytes,predicted_device_bytes,predicted_host_bytes,predicted_disk_bytes\n";
  for (const Row& r : rows) {
    const double predicted = r.predicted.model_state();
    out << r.stage << "," << r.rank << "," << int64_t(psi) << "," << int64_t(r.m.padded > 0 ? r.m.padded : psi)
        << "," << int64_t(r.m.model_state()) << "," << int64_t(predicted) << "," << r.m.model_state() / predicted
        << "," << int64_t(r.m.params) << "," << int64_t(r.m.grads) << "," << int64_t(r.m.optim) << ","
        << int64_t(r.m.peak) << "," << r.m.step_ms << "," << r.offload << "," << int64_t(r.m.device()) << ","
        << int64_t(r.m.host) << "," << int64_t(r.m.disk) << "," << int64_t(r.predicted.device) << ","
        << int64_t(r.predicted.host) << "," << int64_t(r.predicted.disk) << "\n";
  }
}

// Grouped bars per stage: the per-rank mean of the measured model states beside the prediction.
void write_svg(const std::string& path, const std::vector<Row>& rows, const std::string& title) {
  std::vector<std::string> stages;  // one group per stage and offload mode: "2", "2 cpu"
  std::vector<double> measured, predicted, count;
  for (const Row& r : rows) {
    const std::string label = std::to_string(r.stage) + (r.offload == "none" ? "" : " " + r.offload);
    if (stages.empty() || stages.back() != label) {
      stages.push_back(label);
      measured.push_back(0);
      predicted.push_back(r.predicted.model_state());
      count.push_back(0);
    }
    measured.back() += r.m.model_state();
    count.back() += 1;
  }
  for (size_t i = 0; i < stages.size(); ++i) measured[i] /= count[i];
  double top = 1;
  for (size_t i = 0; i < stages.size(); ++i) top = std::max({top, mib(measured[i]), mib(predicted[i])});
  const int left = 70, bottom = 260, plot_h = 200, group_w = 120, bar_w = 40;
  const int width = left + int(stages.size()) * group_w + 170;
  std::ofstream out(path);
  ZT_CHECK(out.good(), "--svg: cannot write '", path, "'");
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"310\" font-family=\"sans-serif\" "
         "font-size=\"12\">\n";
  out << "<text x=\"" << left << "\" y=\"20\" font-size=\"14\">" << title << "</text>\n";
  out << "<line x1=\"" << left << "\" y1=\"" << bottom << "\" x2=\"" << left << "\" y2=\"" << bottom - plot_h
      << "\" stroke=\"black\"/>\n<line x1=\"" << left << "\" y1=\"" << bottom << "\" x2=\"" << width - 170
      << "\" y2=\"" << bottom << "\" stroke=\"black\"/>\n";
  out << "<text x=\"15\" y=\"" << bottom - plot_h / 2 << "\" transform=\"rotate(-90 15 " << bottom - plot_h / 2
      << ")\" text-anchor=\"middle\">model states per rank (MiB)</text>\n";
  out << "<text x=\"" << left + int(stages.size()) * group_w / 2 << "\" y=\"300\" text-anchor=\"middle\">ZeRO stage</text>\n";
  out << "<text x=\"" << left - 5 << "\" y=\"" << bottom - plot_h + 4 << "\" text-anchor=\"end\">" << top << "</text>\n";
  out << "<text x=\"" << left - 5 << "\" y=\"" << bottom + 4 << "\" text-anchor=\"end\">0</text>\n";
  for (size_t i = 0; i < stages.size(); ++i) {
    const int x0 = left + int(i) * group_w + 15;
    const double hm = plot_h * mib(measured[i]) / top, hp = plot_h * mib(predicted[i]) / top;
    std::string id = "stage" + stages[i];
    std::replace(id.begin(), id.end(), ' ', '-');
    out << "<g class=\"stage\" id=\"" << id << "\">\n";
    out << "  <rect x=\"" << x0 << "\" y=\"" << bottom - hm << "\" width=\"" << bar_w << "\" height=\"" << hm
        << "\" fill=\"#4477aa\"><title>measured " << mib(measured[i]) << " MiB</title></rect>\n";
    out << "  <rect x=\"" << x0 + bar_w << "\" y=\"" << bottom - hp << "\" width=\"" << bar_w << "\" height=\"" << hp
        << "\" fill=\"#ee8866\"><title>predicted " << mib(predicted[i]) << " MiB</title></rect>\n";
    out << "  <text x=\"" << x0 + bar_w << "\" y=\"" << bottom + 16 << "\" text-anchor=\"middle\">" << stages[i]
        << "</text>\n</g>\n";
  }
  const int lx = width - 160;
  out << "<rect x=\"" << lx << "\" y=\"40\" width=\"12\" height=\"12\" fill=\"#4477aa\"/><text x=\"" << lx + 18
      << "\" y=\"50\">measured (rank mean)</text>\n";
  out << "<rect x=\"" << lx << "\" y=\"60\" width=\"12\" height=\"12\" fill=\"#ee8866\"/><text x=\"" << lx + 18
      << "\" y=\"70\">predicted (ZeRO)</text>\n";
  out << "</svg>\n";
}

void print_estimate(const BenchOptions& o, const std::vector<int>& stages, const std::vector<std::string>& offloads,
                    int ranks) {
  const bool bf16 = o.dtype == "bf16";
  const double psi = parameter_count(o);
  // MLP: each layer keeps its input and output. GPT: Megatron's count (formulas.h).
  const double b = double(o.batch), c = double(o.width), l = double(o.depth);
  const double act = o.model == "mlp"
                         ? b * c * l * (bf16 ? 2 : 4) * 2
                         : gpt_activation_bytes(l, double(o.context), b, c, double(o.heads), bf16);
  std::printf("zt-membench --estimate: %s, Psi = %.0f parameters, %s, N = %d ranks, batch %lld per rank\n",
              model_name(o).c_str(), psi, o.dtype.c_str(), ranks, (long long)o.batch);
  std::printf("activations (%s) = %.3f MiB\n",
              o.model == "mlp" ? "batch x width x depth x bytes x 2" : "depth x T B C (34 + 5 H T / C), 16-bit",
              mib(act));
  for (const std::string& offload : offloads) {
    for (int s : stages) {
      if (offload != "none" && s == 0) continue;  // offload_optimizer needs stage >= 1
      const Prediction p = predict(s, offload, bf16, psi, ranks, o.sub_group_size, o.buffer_count);
      if (offload == "none") {
        std::printf("stage %d: model states %.3f MiB, with activations %.3f MiB\n", s, mib(p.model_state()),
                    mib(p.model_state() + act));
      } else {
        std::printf("stage %d, offload %s: device %.3f MiB (with activations %.3f MiB), host %.3f MiB, disk %.3f "
                    "MiB\n", s, offload.c_str(), mib(p.device), mib(p.device + act), mib(p.host), mib(p.disk));
      }
    }
  }
}

int run(const BenchOptions& o, const std::shared_ptr<zt::Communicator>& comm) {
  const std::vector<int> stages = parse_stages(o.stages);
  const std::vector<std::string> offloads = parse_offloads(o.offload);
  const bool bf16 = o.dtype == "bf16";
  const bool lead = comm->rank() == 0;
  const double psi = parameter_count(o);
  std::vector<Row> rows;
  if (lead)
    std::printf("zt-membench: %s, Psi = %.0f parameters, %s, Adam, %d ranks, "
                "%lld steps, batch %lld per rank\nprediction (%s): %s\n",
                model_name(o).c_str(), psi, o.dtype.c_str(), comm->size(),
                (long long)o.steps, (long long)o.batch, o.dtype.c_str(),
                bf16 ? "stage 0: 16Psi, 1: 4Psi + 12Psi/N, 2: 2Psi + 14Psi/N, 3: 16Psi/N"
                     : "stage 0: 16Psi, 1: 8Psi + 8Psi/N, 2: 4Psi + 12Psi/N, 3: 16Psi/N");
  for (int s : stages) {
    for (const std::string& offload : offloads) {
      if (offload != "none" && s == 0) {
        if (lead)
          std::printf("ZeRO stage 0, offload_optimizer %s: skipped (offload needs stage >= 1)\n", offload.c_str());
        continue;
      }
      const std::vector<Measure> all = gather(*comm, run_stage(s, offload, o, comm));
      const Prediction predicted = predict(s, offload, bf16, psi, comm->size(), o.sub_group_size, o.buffer_count);
      if (lead) print_stage_table(s, offload, all, predicted, psi);
      for (size_t r = 0; r < all.size(); ++r) rows.push_back(Row{s, int(r), offload, all[r], predicted});
    }
  }
  if (!lead) return 0;
  if (!o.csv.empty()) write_csv(o.csv, rows, psi);
  if (!o.svg.empty() && !rows.empty())
    write_svg(o.svg, rows, "zt-membench: " + model_name(o) + ", " + o.dtype + ", " + std::to_string(comm->size()) +
                               " ranks");
  return 0;
}

void check_options(const BenchOptions& o) {
  ZT_CHECK(o.model == "mlp" || o.model == "gpt", "--model: expected mlp or gpt, found '", o.model, "'");
  ZT_CHECK(o.model == "mlp" || (o.heads > 0 && o.width % o.heads == 0 && o.context > 0 && o.vocab > 0),
           "--model gpt: --heads must divide --width, and --context and --vocab must be positive; found heads ",
           o.heads, ", width ", o.width, ", context ", o.context, ", vocab ", o.vocab);
  ZT_CHECK(o.dtype == "f32" || o.dtype == "bf16", "--dtype: expected f32 or bf16, found '", o.dtype, "'");
  ZT_CHECK(o.width > 0 && o.depth > 0 && o.batch > 0, "--width, --depth and --batch must be positive, found ",
           o.width, ", ", o.depth, ", ", o.batch);
  ZT_CHECK(o.steps > 0, "--steps: expected at least 1 training step, found ", o.steps);
  ZT_CHECK(zt::has_backend(zt::Device::parse(o.device).type), "--device ", o.device,
           ": not available in this build or on this machine (expected cpu, or cuda with a GPU)");
  const std::vector<std::string> offloads = parse_offloads(o.offload);
  const bool nvme = std::find(offloads.begin(), offloads.end(), "nvme") != offloads.end();
  ZT_CHECK(!nvme || !o.nvme_path.empty(), "--offload nvme needs --nvme-path DIR (an existing, writable directory "
           "for the optimizer state files)");
  ZT_CHECK(o.sub_group_size > 0 && o.buffer_count > 0, "--sub-group-size and --buffer-count must be positive, found ",
           o.sub_group_size, " and ", o.buffer_count);
}

// The options of --max-model and of its trials.
zt::membench::MaxModelOptions max_model_options(const BenchOptions& o) {
  ZT_CHECK(o.model == "gpt", "--max-model searches GPT sizes: pass --model gpt");
  zt::membench::MaxModelOptions m;
  m.device = zt::Device::parse(o.device);  // check_options made sure it is there
  m.dtype = o.dtype;
  m.depth = o.depth;
  m.context = o.context;
  m.vocab = o.vocab;
  m.batch = o.batch;
  m.steps = o.max_model_steps;
  m.stage = o.max_model_stage;
  m.min_heads = o.min_heads;
  m.max_heads = o.max_heads;
  ZT_CHECK(o.max_model_search == "anchored" || o.max_model_search == "doubling", "--max-model-search: expected "
           "anchored or doubling, found '", o.max_model_search, "'");
  m.anchored = o.max_model_search == "anchored";
  m.offloads = parse_offloads(o.offload);
  m.nvme_path = o.nvme_path;
  m.sub_group_size = o.sub_group_size;
  m.buffer_count = o.buffer_count;
  if (!o.device_memory.empty()) m.device_memory = zt::parse_byte_size(o.device_memory, "--device-memory");
  if (!o.host_memory.empty()) m.host_memory = zt::parse_byte_size(o.host_memory, "--host-memory");
  m.ranks = o.max_model_ranks;
  m.launcher = o.max_model_launcher;
  return m;
}

// --max-model: the search of max_model.h over the options of this run, in one process; with
// --max-model-ranks N its trials are jobs of their own (Note [zt-membench max model]).
int run_max_model(const BenchOptions& o, int world_size) {
  ZT_CHECK(world_size == 1, "--max-model runs in one process; found ", world_size, " ranks (run it without mpirun; "
           "--max-model-ranks N starts each trial on N ranks itself)");
  const zt::membench::MaxModelOptions m = max_model_options(o);
  std::printf("zt-membench --max-model: searching the largest GPT per offload mode (each trial %lld steps)\n",
              (long long)m.steps);
  const auto results = zt::membench::search_max_model(m);
  zt::membench::print_max_model(m, results);
  return 0;
}

// --max-model-trial: this process is one rank of a trial job that --max-model started. Returns
// the exit status: 0 trained, 3 did not fit.
int run_max_model_trial(const BenchOptions& o, const std::shared_ptr<zt::Communicator>& world) {
  ZT_CHECK(!o.max_model_verdict.empty(), "--max-model-trial is started by --max-model --max-model-ranks, with "
           "--max-model-verdict");
  const std::vector<std::string> offloads = parse_offloads(o.offload);
  ZT_CHECK(offloads.size() == 1, "--max-model-trial takes one --offload mode, found '", o.offload, "'");
  return zt::membench::run_trial_rank(max_model_options(o), offloads.front(), o.max_model_trial, world,
                                      o.max_model_verdict);
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions o;
  zt::ArgParser args("zt-membench",
                     std::string("Measures per-rank memory of ZeRO stages 0-3 (run under mpirun -np N) and\n"
                                 "compares the model states with the ZeRO formula.\n") + kFormulaHelp);
  args.add("--model", &o.model, "mlp (depth x Linear(width, width)) or gpt (nn/gpt.h, tied head, biases)");
  args.add("--width", &o.width, "MLP width W; GPT n_embd");
  args.add("--depth", &o.depth, "MLP depth D (number of Linear layers); GPT n_layer");
  args.add("--heads", &o.heads, "GPT attention heads");
  args.add("--persistence-threshold", &o.persistence_threshold,
           "stage 3: units of at most this many elements stay whole on every rank (0: none, so the formula holds)");
  args.add("--context", &o.context, "GPT tokens per sequence");
  args.add("--vocab", &o.vocab, "GPT vocabulary size");
  args.add("--stages", &o.stages, "comma-separated ZeRO stages to measure (0-3)");
  args.add("--dtype", &o.dtype, "f32 or bf16 (bf16 params with fp32 masters)");
  args.add("--steps", &o.steps, "training steps per stage; the last one is measured");
  args.add("--batch", &o.batch, "samples (GPT: sequences) per rank per step");
  args.add("--csv", &o.csv, "write one row per stage and rank to this CSV file");
  args.add("--svg", &o.svg, "write a bar chart (measured vs predicted, rank mean) to this SVG file");
  args.add("--ranks", &o.ranks, "--estimate only: ranks N of the prediction (0: from the launcher, else 1)");
  args.add_switch("--estimate", &o.estimate, "print the predictions only (with activations), without training");
  args.add("--offload", &o.offload,
           "comma-separated offload_optimizer devices to measure per stage >= 1: none, cpu, nvme");
  args.add("--nvme-path", &o.nvme_path, "--offload nvme: directory for the optimizer state files");
  args.add("--sub-group-size", &o.sub_group_size, "--offload: zero_optimization.sub_group_size (elements)");
  args.add("--buffer-count", &o.buffer_count, "--offload nvme: offload_optimizer.buffer_count (swap buffers)");
  args.add_switch("--max-model", &o.max_model,
                  "find the largest GPT (--depth layers, heads of 64) that trains --max-model-steps steps in each "
                  "--offload mode on --device, searching from the formula's prediction (one process)");
  args.add("--max-model-stage", &o.max_model_stage, "--max-model: ZeRO stage of the trials");
  args.add("--min-heads", &o.min_heads, "--max-model: the smallest size searched (heads)");
  args.add("--max-heads", &o.max_heads, "--max-model: the largest size searched (heads)");
  args.add("--max-model-search", &o.max_model_search,
           "--max-model: anchored (start at the prediction, gallop, bisect) or doubling (from --min-heads)");
  args.add("--max-model-steps", &o.max_model_steps, "--max-model: training steps a trial must complete");
  args.add("--max-model-ranks", &o.max_model_ranks,
           "--max-model: ranks per trial (e.g. 2 for ZeRO stage 3 over two GPUs); > 1 starts each trial as a job of "
           "its own through --max-model-launcher");
  args.add("--max-model-launcher", &o.max_model_launcher,
           "--max-model-ranks: the command that starts a job of that many ranks (default \"mpirun -np N\"; e.g. "
           "\"mpirun -np 2 --oversubscribe\")");
  args.add("--max-model-trial", &o.max_model_trial, "internal: one rank of a --max-model-ranks trial of this many heads");
  args.add("--max-model-verdict", &o.max_model_verdict, "internal: where a --max-model-trial rank writes its verdict");
  args.add("--device", &o.device, "cpu or cuda (under mpirun: each rank's GPU by local rank; NCCL between them)");
  args.add("--device-memory", &o.device_memory,
           "--max-model: device bytes for the prediction, e.g. 141G (default: the allocator's limit)");
  args.add("--host-memory", &o.host_memory,
           "--max-model: host memory limit of the trials and the prediction, pageable and pinned together "
           "(default: ZT_HOST_MEMORY_LIMIT, else 90% of the machine's)");
  try {
    if (!args.parse(argc, argv)) return 0;
    check_options(o);
    if (o.estimate) {
      // No MPI: the rank count comes from the launcher's environment when there is one.
      const int ranks = o.ranks > 0 ? int(o.ranks) : zt::launch_info_from_env().world_size;
      print_estimate(o, parse_stages(o.stages), parse_offloads(o.offload), ranks);
      return 0;
    }
    // The search over jobs of several ranks starts them itself and never initialises MPI here.
    if (o.max_model && o.max_model_ranks > 1) return run_max_model(o, zt::launch_info_from_env().world_size);
    zt::MpiRuntime mpi;  // a world of one without mpirun
    if (o.max_model_trial > 0) {
      int status = 1;
      try {
        status = run_max_model_trial(o, mpi.world());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "zt-membench: error: %s\n", e.what());
      }
      // A rank that stops early must not wait in MPI_Finalize for ranks still in a collective:
      // it leaves at once, and the launcher ends the job's other ranks.
      if (status != 0) {
        std::fflush(nullptr);
        std::_Exit(status);
      }
      return 0;
    }
    if (o.max_model) return run_max_model(o, mpi.world()->size());
    return run(o, mpi.world());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zt-membench: error: %s\n", e.what());
    return 1;
  }
}
