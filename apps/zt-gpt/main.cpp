// zt-gpt: trains a GPT (nn/gpt.h) on a byte-level text file or a nanoGPT-style uint16 token file
// (--data), or on a built-in synthetic text so it runs with no data, through the engine: a
// DeepSpeed config (--config) chooses precision, ZeRO stage, gradient accumulation, optimizer and
// schedule, and `mpirun -np N` trains data-parallel. Without --config: AdamW (weight decay on the
// weight matrices only), linear warmup then cosine decay to lr/10, gradient clipping at 1.0.
// 90/10 train/val split, periodic validation loss, checkpoints (--save/--load) and text sampled
// at the end (--sample).
//
// Every rank draws the same global batch from one generator and takes its own rows of it, so
// the data a step sees (and the logged loss, the mean over the global batch) does not depend on
// the number of ranks.
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
#include "core/backend.h"
#include "nn/gpt.h"
#include "optim/adam.h"
#include "optim/lr_schedule.h"
#include "parallel/mpi_runtime.h"
#include "runtime/args.h"
#include "runtime/config.h"
#include "runtime/engine.h"
#include "text_data.h"

namespace {

struct GptOptions {
  int64_t steps = 500;
  int64_t seed = 1337;
  std::string csv;
  std::string data;
  std::string device;
  std::string config;
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_embd = 128;
  int64_t block_size = 64;
  int64_t batch_size = 16;
  int64_t grad_accum = 1;
  double lr = 1e-3;
  int64_t warmup_steps = -1;     // -1: min(100, steps / 10)
  int64_t lr_decay_steps = 0;    // 0: --steps
  double weight_decay = 0.1;
  double dropout = 0.0;
  int64_t eval_every = 100;
  int64_t eval_iters = 20;
  bool checkpoint_activations = false;
  int64_t sample = 0;
  double temperature = 0.8;
  int64_t top_k = 0;
  int64_t print_every = 10;
  std::string save;
  std::string save_best;
  std::string load;
  int64_t save_every = 0;
};

void check_options(const GptOptions& o) {
  ZT_CHECK(o.steps >= 0, "--steps must be >= 0, found ", o.steps);
  ZT_CHECK(o.n_layer > 0 && o.n_head > 0 && o.n_embd > 0 && o.block_size > 0 && o.batch_size > 0 &&
               o.grad_accum > 0,
           "--n-layer, --n-head, --n-embd, --block-size, --batch-size and --grad-accum must be positive");
  ZT_CHECK(o.n_embd % o.n_head == 0, "--n-embd ", o.n_embd, " must be divisible by --n-head ", o.n_head);
  ZT_CHECK(o.lr > 0, "--lr must be positive, found ", o.lr);
  ZT_CHECK(o.dropout >= 0 && o.dropout < 1, "--dropout must be in [0, 1), found ", o.dropout);
  ZT_CHECK(o.eval_every > 0 && o.eval_iters > 0 && o.print_every > 0,
           "--eval-every, --eval-iters and --print-every must be positive");
  ZT_CHECK(o.sample >= 0 && o.top_k >= 0 && o.save_every >= 0 && o.lr_decay_steps >= 0,
           "--sample, --top-k, --save-every and --lr-decay-steps must be >= 0");
  ZT_CHECK(o.save_best.empty() || o.save_best != o.save, "--save-best and --save must name different folders "
           "(each folder's `latest` names one checkpoint), found ", o.save, " for both");
}

int64_t warmup_steps(const GptOptions& o) {
  return o.warmup_steps >= 0 ? o.warmup_steps : std::min<int64_t>(100, o.steps / 10);
}

// --config's file, with --batch-size/--grad-accum/--lr/--seed given on the command line written
// over it; without --config the flags' values and gradient clipping at 1.0.
zt::Config make_config(const GptOptions& o, const zt::ArgParser& args, int ranks) {
  zt::ConfigOptions options;
  options.world_size = ranks;
  zt::add_hidden_size_auto_values(options, o.n_embd);
  if (o.config.empty()) {
    const nlohmann::json defaults = {{"train_batch_size", o.batch_size},
                                     {"gradient_accumulation_steps", o.grad_accum},
                                     {"gradient_clipping", 1.0},
                                     {"steps_per_print", o.print_every},
                                     {"seed", o.seed}};
    return zt::config_from_app_defaults(defaults, options);
  }
  std::ifstream in(o.config);
  ZT_CHECK(in.good(), "--config: cannot read '", o.config, "'");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json doc = zt::parse_config_document(text.str(), zt::ConfigFormat::detect, o.config);
  const bool batch = args.given("--batch-size"), accum = args.given("--grad-accum");
  if (batch) doc["train_batch_size"] = o.batch_size;
  if (accum) doc["gradient_accumulation_steps"] = o.grad_accum;
  if (batch || accum) doc.erase("train_micro_batch_size_per_gpu");  // follows from the other two
  if (args.given("--lr") && doc.contains("optimizer")) doc["optimizer"]["params"]["lr"] = o.lr;
  if (args.given("--seed")) doc["seed"] = o.seed;
  return zt::parse_config(doc.dump(), zt::ConfigFormat::json, options, o.config + " (with command-line flags)");
}

// The optimizer and schedule the config does not name: AdamW with decay on the weight matrices
// only (nanoGPT's groups) and warmup + cosine decay to lr / 10.
void add_default_optimizer(const GptOptions& o, const zt::Config& config, zt::GPT& model, zt::InitOptions& init) {
  if (!config.optimizer.enabled()) {
    zt::AdamWOptions adam;
    adam.lr = o.lr;
    adam.beta2 = 0.99;
    adam.weight_decay = o.weight_decay;
    init.optimizer = std::make_shared<zt::AdamW>(zt::make_param_groups(model, o.weight_decay), adam);
  }
  if (!config.scheduler.enabled() && init.optimizer) {
    zt::WarmupCosineLROptions sched;
    sched.total_num_steps = std::max<int64_t>(o.lr_decay_steps > 0 ? o.lr_decay_steps : o.steps, 1);
    sched.warmup_num_steps = warmup_steps(o);
    sched.warmup_type = "linear";
    sched.cos_min_ratio = 0.1;
    init.scheduler = std::make_shared<zt::WarmupCosineLR>(*init.optimizer, sched);
  }
}

// Rows [begin, begin + n) of a batch, on the device.
zt::Batch rows(const zt::Batch& b, int64_t begin, int64_t n, zt::Device device) {
  return {zt::raw::to(zt::raw::contiguous(zt::raw::narrow(b.input, 0, begin, n)), device),
          zt::raw::to(zt::raw::contiguous(zt::raw::narrow(b.target, 0, begin, n)), device)};
}

struct Run {
  const GptOptions& o;
  const zt::TextDataset& data;
  zt::Engine& engine;
  zt::Communicator& world;
  zt::Device device;
  int64_t micro = 0;  // sequences per rank per micro-step
};

// Mean loss over eval_iters global batches of a split (each rank evaluates its rows); the
// batches are the same at every evaluation (a fixed generator), so values are comparable.
double estimate_loss(const Run& r, zt::TextSplit split) {
  zt::NoGradGuard no_grad;
  r.engine.eval();
  zt::Generator gen(uint64_t(r.o.seed) + 2);
  const int64_t W = r.world.size();
  double total = 0;
  for (int64_t i = 0; i < r.o.eval_iters; ++i) {
    const zt::Batch global = r.data.get_batch(split, r.micro * W, r.o.block_size, gen);
    const zt::Batch b = rows(global, r.world.rank() * r.micro, r.micro, r.device);
    total += zt::cross_entropy(r.engine.forward(b.input), b.target).item();
  }
  r.engine.train();
  return zt::mean_over_ranks(&r.world, total / double(r.o.eval_iters));
}

// Every rank runs the model (ZeRO-3 gathers collectively); the lead rank prints.
void print_sample(const Run& r, zt::GPT& model) {
  zt::Generator gen(uint64_t(r.o.seed) + 3);
  const int64_t start = r.data.byte_level() ? '\n' : 0;  // text starts from a newline
  zt::Tensor prompt = zt::raw::to(zt::from_vector<int64_t>({start}, {1, 1}), r.device);
  std::vector<int64_t> ids = model.generate(prompt, r.o.sample, r.o.temperature, r.o.top_k, gen).to_vector<int64_t>();
  if (r.world.rank() != 0) return;
  ids.erase(ids.begin());  // the prompt
  std::printf("---- sample (%lld tokens, temperature %g, top-k %lld) ----\n", (long long)r.o.sample,
              r.o.temperature, (long long)r.o.top_k);
  if (r.data.byte_level()) {
    const std::string text = r.data.decode(ids);  // may hold any byte, NUL included
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
  } else {
    for (int64_t id : ids) std::printf("%lld ", (long long)id);
    std::printf("\n");
  }
  std::printf("---- end of sample ----\n");
}

struct StepLog {
  int64_t step = 0;
  double loss = 0, lr = 0, tokens_per_s = 0;
  double val_loss = -1;  // < 0: not evaluated at this step
};

class Logger {
 public:
  Logger(const std::string& csv_path, int64_t steps) : steps_(steps) {
    if (csv_path.empty()) return;
    csv_.open(csv_path);
    ZT_CHECK(csv_.good(), "--csv: cannot write '", csv_path, "'");
    csv_ << "step,loss,lr,val_loss,tokens_per_s\n";
  }
  void log(const StepLog& s, int64_t peak_bytes) {
    std::printf("step %6lld/%lld | loss %.4f | lr %.2e | %.0f tokens/s | peak mem %.1f MiB", (long long)s.step,
                (long long)steps_, s.loss, s.lr, s.tokens_per_s, double(peak_bytes) / (1 << 20));
    if (s.val_loss >= 0) std::printf(" | val loss %.4f", s.val_loss);
    std::printf("\n");
    std::fflush(stdout);
    if (!csv_.is_open()) return;
    char loss_text[32];  // every bit of the double, so resumed runs can be compared exactly
    std::snprintf(loss_text, sizeof loss_text, "%.17g", s.loss);
    csv_ << s.step << "," << loss_text << "," << s.lr << ",";
    if (s.val_loss >= 0) csv_ << s.val_loss;
    csv_ << "," << s.tokens_per_s << "\n";
    csv_.flush();
  }

 private:
  int64_t steps_;
  std::ofstream csv_;
};

zt::GPTConfig model_config(const GptOptions& o, const zt::TextDataset& data) {
  zt::GPTConfig c;
  c.n_layer = o.n_layer;
  c.n_head = o.n_head;
  c.n_embd = o.n_embd;
  c.block_size = o.block_size;
  // Token files: round the vocabulary up to a multiple of 64 (as nanoGPT's 50304) for GEMM shapes.
  c.vocab_size = data.byte_level() ? data.vocab_size() : (data.vocab_size() + 63) / 64 * 64;
  c.dropout = o.dropout;
  c.checkpoint_activations = o.checkpoint_activations;
  return c;
}

void print_header(const GptOptions& o, const std::string& data_name, const zt::TextDataset& data,
                  const zt::GPT& model, const zt::Engine& engine, int ranks) {
  const zt::Config& c = engine.config();
  std::printf("zt-gpt: %s, %lld train / %lld val tokens, vocab %lld | GPT %lld layers, %lld heads, "
              "%lld wide, context %lld | %.2fM parameters, %.3g FLOPs/token | batch %lld (%d ranks x %lld x "
              "%lld accumulation), %s, ZeRO stage %lld, dropout %g%s, device %s\n",
              data_name.c_str(), (long long)data.num_tokens(zt::TextSplit::train),
              (long long)data.num_tokens(zt::TextSplit::val), (long long)model.config().vocab_size,
              (long long)o.n_layer, (long long)o.n_head, (long long)o.n_embd, (long long)o.block_size,
              double(model.num_parameters_reported()) / 1e6, model.flops_per_token(),
              (long long)c.train_batch_size, ranks, (long long)c.train_micro_batch_size_per_gpu,
              (long long)c.gradient_accumulation_steps, zt::dtype_name(engine.dtype()),
              (long long)c.zero_optimization.stage, o.dropout,
              o.checkpoint_activations ? ", activation checkpointing" : "", engine.device().str().c_str());
  if (!o.config.empty()) std::printf("config: %s\n", c.origin.c_str());
}

void save(zt::Engine& engine, const zt::Generator& data_gen, const std::string& dir, bool lead) {
  const std::string tag = "global_step" + std::to_string(engine.global_step());
  engine.save_checkpoint(dir, tag, {{"data_generator", {{"seed", data_gen.seed()}, {"offset", data_gen.offset()}}}});
  if (lead) std::printf("saved checkpoint %s/%s\n", dir.c_str(), tag.c_str());
}

// The best-val checkpoint (tag "best", which `latest` then names): saved at every evaluation that
// improves on the best val loss so far, as nanoGPT keeps its best-val checkpoint for small
// corpora that overfit late in a run. Its client state records the val loss and the step.
void save_best(zt::Engine& engine, const zt::Generator& data_gen, const std::string& dir, bool lead, double val) {
  engine.save_checkpoint(dir, "best",
                         {{"data_generator", {{"seed", data_gen.seed()}, {"offset", data_gen.offset()}}},
                          {"val_loss", val}});
  if (lead)
    std::printf("saved best checkpoint %s/best (val loss %.4f at step %lld)\n", dir.c_str(), val,
                (long long)engine.global_step());
}

void restore(zt::Engine& engine, zt::Generator& data_gen, const std::string& dir) {
  const nlohmann::json client = engine.load_checkpoint(dir);
  ZT_CHECK(client.contains("data_generator"), "--load ", dir, ": the checkpoint has no data position "
           "(expected client_state.data_generator, found ", client.dump(), ")");
  const nlohmann::json& g = client.at("data_generator");
  ZT_CHECK(g.at("seed").get<uint64_t>() == data_gen.seed(), "--load ", dir, ": the checkpoint's batches were "
           "drawn with seed ", g.at("seed").get<uint64_t>(), " but this run's is ", data_gen.seed(),
           " (resume with the same --seed)");
  data_gen.set_state(data_gen.seed(), g.at("offset").get<uint64_t>());
}

// The training loop: a line per --print-every steps, val loss every --eval-every steps and at
// the end, then the summary line.
void train(const Run& r, zt::GPT& model) {
  const GptOptions& o = r.o;
  zt::Engine& engine = r.engine;
  const bool lead = r.world.rank() == 0;
  const int64_t W = r.world.size(), accumulation = engine.gradient_accumulation_steps();
  zt::Generator data_gen(uint64_t(o.seed) + 1);
  if (!o.load.empty()) {
    restore(engine, data_gen, o.load);
    if (lead) std::printf("resumed from %s at global step %lld\n", o.load.c_str(), (long long)engine.global_step());
  }
  const double initial_val = estimate_loss(r, zt::TextSplit::val);
  if (lead) std::printf("step %6lld/%lld | val loss %.4f\n", (long long)engine.global_step(), (long long)o.steps,
                        initial_val);
  Logger logger(lead ? o.csv : std::string(), o.steps);
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto window_start = start;
  const int64_t first_step = engine.global_step();
  int64_t window_tokens = 0, saved_step = -1;
  double last_loss = 0, last_val = initial_val, best_val = initial_val;
  int64_t best_step = first_step;
  for (int64_t step = first_step + 1; step <= o.steps; ++step) {
    const double lr = engine.lr();
    const zt::Batch global = r.data.get_batch(zt::TextSplit::train, engine.train_batch_size(), o.block_size, data_gen);
    zt::Tensor step_loss;  // this rank's mean over its micro-batches, kept on the device
    for (int64_t m = 0; m < accumulation; ++m) {
      const zt::Batch b = rows(global, (m * W + r.world.rank()) * r.micro, r.micro, r.device);
      zt::Tensor loss = zt::cross_entropy(engine.forward(b.input), b.target);
      engine.backward(loss);
      engine.step();
      zt::Tensor share = zt::raw::mul(zt::raw::to(loss, zt::DType::f64), 1.0 / double(accumulation));
      step_loss = step_loss.defined() ? zt::raw::add(step_loss, share) : share;
    }
    window_tokens += engine.train_batch_size() * o.block_size;
    const bool evaluate = step % o.eval_every == 0 || step == o.steps;
    if (step % o.print_every == 0 || evaluate) {
      const double secs = std::chrono::duration<double>(Clock::now() - window_start).count();
      StepLog s{step, zt::mean_over_ranks(&r.world, step_loss.item()), lr, double(window_tokens) / std::max(secs, 1e-9)};
      last_loss = s.loss;
      if (evaluate) {
        s.val_loss = last_val = estimate_loss(r, zt::TextSplit::val);
        if (last_val < best_val) {
          best_val = last_val;
          best_step = step;
          if (!o.save_best.empty()) save_best(engine, data_gen, o.save_best, lead, best_val);
        }
      }
      if (lead) logger.log(s, zt::allocator_for(r.device).stats().total.peak);
      window_start = Clock::now();
      window_tokens = 0;
    }
    if (!o.save.empty() && o.save_every > 0 && step % o.save_every == 0) {
      save(engine, data_gen, o.save, lead);
      saved_step = step;
    }
  }
  const int64_t last_step = std::max(first_step, o.steps);
  if (!o.save.empty() && saved_step != last_step) save(engine, data_gen, o.save, lead);
  if (!lead) return;
  if (engine.skipped_steps() > 0)
    std::printf("%lld of %lld steps skipped for non-finite gradients\n", (long long)engine.skipped_steps(),
                (long long)last_step);
  const double total = std::chrono::duration<double>(Clock::now() - start).count();
  const double tokens_per_s =
      double((last_step - first_step) * engine.train_batch_size() * o.block_size) / std::max(total, 1e-9);
  // Model FLOP/s counts 6 N + 12 L T C per token (GPT::flops_per_token), the basis of MFU.
  std::printf("done: %lld steps in %.2f s (%.0f tokens/s, %.3g model FLOP/s), final loss %.4f, "
              "val loss %.4f (initial %.4f), peak memory %.1f MiB per rank\n",
              (long long)(last_step - first_step), total, tokens_per_s,
              tokens_per_s * model.flops_per_token(o.block_size), last_loss, last_val, initial_val,
              double(zt::allocator_for(r.device).stats().total.peak) / (1 << 20));
  // Small corpora overfit late in a run (nanoGPT keeps the best-val checkpoint for them).
  std::printf("best validation: %.4f at step %lld\n", best_val, (long long)best_step);
  if (!o.save_best.empty() && best_step == first_step)
    std::printf("no evaluation improved on the initial val loss: nothing saved to %s\n", o.save_best.c_str());
}

int run(const GptOptions& o, const zt::ArgParser& args, const std::shared_ptr<zt::Communicator>& comm) {
  check_options(o);
  const int ranks = comm->size();
  const zt::Device device = zt::device_for_flag(o.device, zt::launch_info_from_env());
  const zt::Config config = make_config(o, args, ranks);
  zt::manual_seed(uint64_t(config.seed));  // dropout masks
  std::string data_name;
  std::unique_ptr<zt::TextDataset> data = ztgpt::load_text_data(o.data, data_name);
  zt::Generator init_gen(uint64_t(config.seed));
  auto model = std::make_shared<zt::GPT>(model_config(o, *data), &init_gen);
  model->to(device);
  zt::InitOptions init;
  init.communicator = comm;
  init.monitor = false;
  add_default_optimizer(o, config, *model, init);
  auto engine = zt::initialize(model, config, init);
  if (comm->rank() == 0) print_header(o, data_name, *data, *model, *engine, ranks);
  const Run r{o, *data, *engine, *comm, device, config.train_micro_batch_size_per_gpu};
  train(r, *model);
  if (o.sample > 0) print_sample(r, *model);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  GptOptions o;
  zt::ArgParser args("zt-gpt",
                     "Trains a GPT on byte-level text (--data FILE), a uint16 token file (--data\n"
                     "FILE.bin, as nanoGPT's train.bin) or a built-in synthetic text, split 90/10\n"
                     "into train and val; prints loss, lr, tokens/s and periodic val loss. Runs\n"
                     "data-parallel under mpirun; --config picks precision, ZeRO stage and more.");
  args.add("--steps", &o.steps, "train until this global step");
  args.add("--seed", &o.seed, "seed for init, batches, dropout and sampling");
  args.add("--csv", &o.csv, "write step,loss,lr,val_loss,tokens_per_s rows to this CSV file");
  args.add("--data", &o.data, "text file (bytes) or .bin uint16 tokens; empty: synthetic text");
  args.add("--device", &o.device, "cpu or cuda (default: cuda when a GPU is present and one rank runs)");
  args.add("--config", &o.config, "DeepSpeed config (JSON or YAML); flags given here override its values");
  args.add("--n-layer", &o.n_layer, "Transformer blocks");
  args.add("--n-head", &o.n_head, "attention heads");
  args.add("--n-embd", &o.n_embd, "embedding width");
  args.add("--block-size", &o.block_size, "context length");
  args.add("--batch-size", &o.batch_size, "sequences per optimizer step (the global batch, over all ranks)");
  args.add("--grad-accum", &o.grad_accum, "micro-batches per optimizer step");
  args.add("--lr", &o.lr, "peak AdamW learning rate (cosine decay to lr / 10)");
  args.add("--warmup-steps", &o.warmup_steps, "linear warmup steps (-1: min(100, steps / 10))");
  args.add("--lr-decay-steps", &o.lr_decay_steps,
           "steps of the cosine decay (0: --steps; keep it fixed when a run is resumed with --load)");
  args.add("--weight-decay", &o.weight_decay, "AdamW weight decay of the weight matrices");
  args.add("--dropout", &o.dropout, "dropout probability");
  args.add("--eval-every", &o.eval_every, "estimate the val loss every N steps (and at the end)");
  args.add("--eval-iters", &o.eval_iters, "batches per val loss estimate");
  args.add_switch("--checkpoint-activations", &o.checkpoint_activations,
                  "recompute each block's activations in backward instead of keeping them");
  args.add("--sample", &o.sample, "print N sampled tokens at the end (0: none)");
  args.add("--temperature", &o.temperature, "sampling temperature (<= 0: greedy)");
  args.add("--top-k", &o.top_k, "sample among the k most likely tokens (0: all)");
  args.add("--print-every", &o.print_every, "print a line every N steps");
  args.add("--save", &o.save, "checkpoint folder: saved at the end (and every --save-every steps)");
  args.add("--save-every", &o.save_every, "also save every N steps (0: only at the end)");
  args.add("--save-best", &o.save_best,
           "checkpoint folder for the best val loss: saved (tag \"best\") at every evaluation that improves on it");
  args.add("--load", &o.load, "resume from this checkpoint folder's latest tag (--steps is the global step to reach)");
  try {
    if (!args.parse(argc, argv)) return 0;
    zt::MpiRuntime mpi;  // a world of one without mpirun
    return run(o, args, mpi.world());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zt-gpt: error: %s\n", e.what());
    return 1;
  }
}
