// zt-membench: measures the per-rank memory of ZeRO stages 0-3 on a real training run and sets it
// beside the ZeRO paper's prediction for the model states (DESIGN.md §5).
//
// Note [zt-membench measurements]
// For each stage a fresh MLP (depth x Linear(W, W), ReLU between) is trained for --steps steps
// through the engine, each rank on its own random micro-batch. The numbers come from the CPU
// allocator's per-category counters (core/allocator.h), as deltas from the values before the
// model was built, on the last step:
//   gradients: in use after the gradient reduction of the step and before the optimizer step
//              (the bench finishes the ZeRO reduction itself; stage 0's DataParallel averages
//              into the parameters' gradients in place, so their size after backward is the
//              size after the reduction). After the step, stage 0 frees them.
//   parameters, optimizer_state: in use after the step (Adam allocates m and v on its first step).
//              At stage 3 that is the parameter shard alone: every unit gathered for forward and
//              backward has been released again (stage3_param_persistence_threshold keeps units of
//              at most 100,000 elements gathered; the bench's Linear layers are larger).
//   peak: the high-water mark of all categories during the last step, activations included.
//   step_ms: wall time of the last step (forward, backward, reduction, optimizer step).
// The model states are parameters + gradients + optimizer_state. The prediction (Ψ the unpadded
// parameter count, N the ranks, Adam):
//   bf16 (fp32 masters): stage 0: 16Ψ, stage 1: 4Ψ + 12Ψ/N, stage 2: 2Ψ + 14Ψ/N, stage 3: 16Ψ/N
//   f32:                 stage 0: 16Ψ, stage 1: 8Ψ + 8Ψ/N,  stage 2: 4Ψ + 12Ψ/N, stage 3: 16Ψ/N
// (f32 counts 4 bytes of parameters and gradients and 8 of Adam's moments, the master being the
// parameter itself.) ZeRO pads the flat parameter buffer (stage 3: each module's unit) to a
// multiple of N x 16 elements, so stages 1-3 hold a few padded elements more than Ψ. With bf16
// stages 0-2 also keep fp32 master gradients for the unscaled gradients (stage 0: 4Ψ, stages 1
// and 2: 4Ψ/N), which the paper's formula does not count: bf16 ratios above 1 by that much are
// expected, and the output says so. Stage 3 allocates them for the optimizer step only.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "parallel/mpi_runtime.h"
#include "runtime/args.h"
#include "runtime/config.h"
#include "runtime/engine.h"
#include "zero/sharded_optimizer.h"

namespace {

struct BenchOptions {
  std::string model = "mlp";
  int64_t width = 512;
  int64_t depth = 4;
  std::string stages = "0,1,2,3";
  std::string dtype = "f32";
  int64_t steps = 2;
  int64_t batch = 8;  // per rank
  std::string csv;
  std::string svg;
  bool estimate = false;
  int64_t ranks = 0;  // --estimate only: N (0: the launcher's world size, else 1)
};

// One stage's numbers on one rank (bytes, except step_ms).
struct Measure {
  double params = 0, grads = 0, optim = 0, peak = 0, step_ms = 0, padded = 0;
  double model_state() const { return params + grads + optim; }
};
constexpr int kMeasureFields = 6;

const char* kFormulaHelp =
    "Predicted model states per rank (Psi = parameter count, N = ranks, Adam):\n"
    "  bf16 (fp32 masters): stage 0: 16Psi, stage 1: 4Psi + 12Psi/N, stage 2: 2Psi + 14Psi/N, stage 3: 16Psi/N\n"
    "  f32:                 stage 0: 16Psi, stage 1: 8Psi + 8Psi/N,  stage 2: 4Psi + 12Psi/N, stage 3: 16Psi/N\n"
    "Measured on the last step (CPU allocator categories): gradients after the reduction and\n"
    "before the update; parameters and optimizer state after the step; peak over the step.\n"
    "Activations (--estimate): batch x width x depth x bytes(dtype) x 2 (each layer keeps its\n"
    "input and its output for backward).";

double predicted_model_state(int stage, bool bf16, double psi, int ranks) {
  const double n = ranks;
  if (stage == 0) return 16 * psi;
  if (stage == 3) return 16 * psi / n;
  if (bf16) return stage == 1 ? 4 * psi + 12 * psi / n : 2 * psi + 14 * psi / n;
  return stage == 1 ? 8 * psi + 8 * psi / n : 4 * psi + 12 * psi / n;
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

std::shared_ptr<zt::Sequential> make_mlp(int64_t width, int64_t depth) {
  auto model = std::make_shared<zt::Sequential>();
  for (int64_t i = 0; i < depth; ++i) {
    if (i > 0) model->push_back(std::make_shared<zt::ReLU>());
    model->push_back(std::make_shared<zt::Linear>(width, width));
  }
  return model;
}

zt::Config make_config(int stage, const BenchOptions& o, int ranks) {
  zt::ConfigOptions options;
  options.world_size = ranks;
  nlohmann::json defaults = {{"train_batch_size", o.batch * ranks},
                             {"gradient_accumulation_steps", 1},
                             {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 1e-3}}}}},
                             {"zero_optimization", {{"stage", stage}}}};
  if (o.dtype == "bf16") defaults["bf16"] = {{"enabled", true}};
  return zt::config_from_app_defaults(defaults, options);
}

int64_t in_use(const zt::MemoryStats& s, zt::MemoryCategory c) { return s.of(c).in_use; }

// Trains a fresh model for o.steps steps at `stage` and measures the last one
// (Note [zt-membench measurements]).
Measure run_stage(int stage, const BenchOptions& o, const std::shared_ptr<zt::Communicator>& comm) {
  using zt::MemoryCategory;
  zt::Allocator& alloc = zt::allocator_for(zt::Device::cpu());
  const zt::MemoryStats before = alloc.stats();
  Measure m;
  zt::manual_seed(uint64_t(comm->rank()) + 1);
  auto engine = [&] {
    zt::InitOptions init;
    init.communicator = comm;
    init.monitor = false;
    return zt::initialize(make_mlp(o.width, o.depth), make_config(stage, o, comm->size()), init);
  }();
  auto* zero = dynamic_cast<zt::ShardedOptimizer*>(&engine->precision());
  m.padded = double(zero ? zero->padded_numel() : 0);
  const zt::DType dtype = engine->dtype();
  for (int64_t step = 0; step < o.steps; ++step) {
    // This rank's micro-batch, regression towards a random target.
    zt::Tensor x = zt::raw::to(zt::randn({o.batch, o.width}), dtype);
    zt::Tensor y = zt::raw::to(zt::randn({o.batch, o.width}), dtype);
    alloc.reset_peak();
    const auto start = std::chrono::steady_clock::now();
    engine->backward(zt::mse_loss(engine->forward(x), y));
    if (zero) zero->finish_gradient_reduction();
    const zt::MemoryStats mid = alloc.stats();
    engine->step();
    m.step_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const zt::MemoryStats after = alloc.stats();
    m.grads = double(in_use(mid, MemoryCategory::gradients) - in_use(before, MemoryCategory::gradients));
    m.params = double(in_use(after, MemoryCategory::parameters) - in_use(before, MemoryCategory::parameters));
    m.optim = double(in_use(after, MemoryCategory::optimizer_state) - in_use(before, MemoryCategory::optimizer_state));
    m.peak = double(after.total.peak - before.total.in_use);
  }
  return m;
}

// Every rank's Measure, in rank order (collective).
std::vector<Measure> gather(zt::Communicator& world, const Measure& mine) {
  const std::vector<double> fields = {mine.params, mine.grads, mine.optim, mine.peak, mine.step_ms, mine.padded};
  zt::Tensor all = world.all_gather(zt::from_vector(fields, {kMeasureFields}));
  const double* v = all.data<double>();
  std::vector<Measure> out(size_t(world.size()));
  for (size_t r = 0; r < out.size(); ++r) {
    const double* f = v + r * kMeasureFields;
    out[r] = Measure{f[0], f[1], f[2], f[3], f[4], f[5]};
  }
  return out;
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

struct Row {
  int stage = 0, rank = 0;
  Measure m;
  double predicted = 0;
};

void print_stage_table(int stage, const std::vector<Measure>& ranks, double predicted, double psi) {
  std::printf("ZeRO stage %d (measured after the step; gradients after the reduction, before the update)\n", stage);
  if (ranks[0].padded > 0 && ranks[0].padded != psi)
    std::printf("  sharded buffers padded to %.0f elements (Psi = %.0f unpadded)\n", ranks[0].padded, psi);
  std::printf("  %4s %12s %12s %12s %12s %12s %8s %10s %10s\n", "rank", "params MiB", "grads MiB", "optim MiB",
              "states MiB", "predict MiB", "ratio", "peak MiB", "step ms");
  for (size_t r = 0; r < ranks.size(); ++r) {
    const Measure& m = ranks[r];
    std::printf("  %4zu %12.3f %12.3f %12.3f %12.3f %12.3f %8.4f %10.3f %10.2f\n", r, mib(m.params), mib(m.grads),
                mib(m.optim), mib(m.model_state()), mib(predicted), m.model_state() / predicted, mib(m.peak),
                m.step_ms);
  }
}

void write_csv(const std::string& path, const std::vector<Row>& rows, double psi) {
  std::ofstream out(path);
  ZT_CHECK(out.good(), "--csv: cannot write '", path, "'");
  out << "stage,rank,params,padded_params,measured_model_state_bytes,predicted_model_state_bytes,ratio,"
         "parameters_bytes,gradients_bytes,optimizer_state_bytes,peak_bytes,step_ms\n";
  for (const Row& r : rows)
    out << r.stage << "," << r.rank << "," << int64_t(psi) << "," << int64_t(r.m.padded > 0 ? r.m.padded : psi)
        << "," << int64_t(r.m.model_state()) << "," << int64_t(r.predicted) << "," << r.m.model_state() / r.predicted
        << "," << int64_t(r.m.params) << "," << int64_t(r.m.grads) << "," << int64_t(r.m.optim) << ","
        << int64_t(r.m.peak) << "," << r.m.step_ms << "\n";
}

// Grouped bars per stage: the per-rank mean of the measured model states beside the prediction.
void write_svg(const std::string& path, const std::vector<Row>& rows, const std::string& title) {
  std::vector<int> stages;
  std::vector<double> measured, predicted;
  for (const Row& r : rows) {
    if (stages.empty() || stages.back() != r.stage) {
      stages.push_back(r.stage);
      measured.push_back(0);
      predicted.push_back(r.predicted);
    }
    measured.back() += r.m.model_state();
  }
  for (size_t i = 0; i < stages.size(); ++i) {
    int64_t count = 0;
    for (const Row& r : rows) count += r.stage == stages[i];
    measured[i] /= double(count);
  }
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
    out << "<g class=\"stage\" id=\"stage" << stages[i] << "\">\n";
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

double parameter_count(const BenchOptions& o) { return double(o.depth) * double(o.width * o.width + o.width); }

void print_estimate(const BenchOptions& o, const std::vector<int>& stages, int ranks) {
  const bool bf16 = o.dtype == "bf16";
  const double psi = parameter_count(o);
  const double act = double(o.batch) * double(o.width) * double(o.depth) * (bf16 ? 2 : 4) * 2;
  std::printf("zt-membench --estimate: MLP %lld x Linear(%lld, %lld), Psi = %.0f parameters, %s, N = %d ranks, "
              "batch %lld per rank\n",
              (long long)o.depth, (long long)o.width, (long long)o.width, psi, o.dtype.c_str(), ranks,
              (long long)o.batch);
  std::printf("activations: batch x width x depth x %d bytes x 2 = %.3f MiB\n", bf16 ? 2 : 4, mib(act));
  for (int s : stages) {
    const double p = predicted_model_state(s, bf16, psi, ranks);
    std::printf("stage %d: model states %.3f MiB, with activations %.3f MiB\n", s, mib(p), mib(p + act));
  }
}

int run(const BenchOptions& o, const std::shared_ptr<zt::Communicator>& comm) {
  const std::vector<int> stages = parse_stages(o.stages);
  const bool bf16 = o.dtype == "bf16";
  const bool lead = comm->rank() == 0;
  const double psi = parameter_count(o);
  std::vector<Row> rows;
  if (lead)
    std::printf("zt-membench: MLP %lld x Linear(%lld, %lld), Psi = %.0f parameters, %s, Adam, %d ranks, "
                "%lld steps, batch %lld per rank\nprediction (%s): %s\n",
                (long long)o.depth, (long long)o.width, (long long)o.width, psi, o.dtype.c_str(), comm->size(),
                (long long)o.steps, (long long)o.batch, o.dtype.c_str(),
                bf16 ? "stage 0: 16Psi, 1: 4Psi + 12Psi/N, 2: 2Psi + 14Psi/N, 3: 16Psi/N"
                     : "stage 0: 16Psi, 1: 8Psi + 8Psi/N, 2: 4Psi + 12Psi/N, 3: 16Psi/N");
  if (lead && bf16)
    std::printf("note: with bf16 the measured gradients include fp32 master gradients (stage 0: 4Psi, stages "
                "1-2: 4Psi/N) that the formula does not count; stage 3 holds them during the update only\n");
  for (int s : stages) {
    const std::vector<Measure> all = gather(*comm, run_stage(s, o, comm));
    const double predicted = predicted_model_state(s, bf16, psi, comm->size());
    if (lead) print_stage_table(s, all, predicted, psi);
    for (size_t r = 0; r < all.size(); ++r) rows.push_back(Row{s, int(r), all[r], predicted});
  }
  if (!lead) return 0;
  if (!o.csv.empty()) write_csv(o.csv, rows, psi);
  if (!o.svg.empty() && !rows.empty())
    write_svg(o.svg, rows, "zt-membench: MLP " + std::to_string(o.depth) + " x " + std::to_string(o.width) + ", " +
                               o.dtype + ", " + std::to_string(comm->size()) + " ranks");
  return 0;
}

void check_options(const BenchOptions& o) {
  ZT_CHECK(o.model == "mlp", "--model: expected mlp (the only model of this bench), found '", o.model, "'");
  ZT_CHECK(o.dtype == "f32" || o.dtype == "bf16", "--dtype: expected f32 or bf16, found '", o.dtype, "'");
  ZT_CHECK(o.width > 0 && o.depth > 0 && o.batch > 0, "--width, --depth and --batch must be positive, found ",
           o.width, ", ", o.depth, ", ", o.batch);
  ZT_CHECK(o.steps > 0, "--steps: expected at least 1 training step, found ", o.steps);
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions o;
  zt::ArgParser args("zt-membench",
                     std::string("Measures per-rank memory of ZeRO stages 0-3 (run under mpirun -np N) and\n"
                                 "compares the model states with the ZeRO formula.\n") + kFormulaHelp);
  args.add("--model", &o.model, "model to build (mlp: depth x Linear(width, width))");
  args.add("--width", &o.width, "MLP width W");
  args.add("--depth", &o.depth, "MLP depth D (number of Linear layers)");
  args.add("--stages", &o.stages, "comma-separated ZeRO stages to measure (0-3)");
  args.add("--dtype", &o.dtype, "f32 or bf16 (bf16 params with fp32 masters)");
  args.add("--steps", &o.steps, "training steps per stage; the last one is measured");
  args.add("--batch", &o.batch, "samples per rank per step");
  args.add("--csv", &o.csv, "write one row per stage and rank to this CSV file");
  args.add("--svg", &o.svg, "write a bar chart (measured vs predicted, rank mean) to this SVG file");
  args.add("--ranks", &o.ranks, "--estimate only: ranks N of the prediction (0: from the launcher, else 1)");
  args.add_switch("--estimate", &o.estimate, "print the predictions only (with activations), without training");
  try {
    if (!args.parse(argc, argv)) return 0;
    check_options(o);
    if (o.estimate) {
      // No MPI: the rank count comes from the launcher's environment when there is one.
      const int ranks = o.ranks > 0 ? int(o.ranks) : zt::launch_info_from_env().world_size;
      print_estimate(o, parse_stages(o.stages), ranks);
      return 0;
    }
    zt::MpiRuntime mpi;  // a world of one without mpirun
    return run(o, mpi.world());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zt-membench: error: %s\n", e.what());
    return 1;
  }
}
