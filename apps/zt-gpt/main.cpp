// zt-gpt: trains a GPT (nn/gpt.h) on a byte-level text file or a nanoGPT-style uint16 token file
// (--data), or on a built-in synthetic text so it runs with no data. 90/10 train/val split,
// AdamW with weight decay on the weight matrices only, linear warmup then cosine decay to lr/10,
// gradient clipping at 1.0, periodic validation loss, and text sampled at the end (--sample).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "core/backend.h"
#include "data/text_dataset.h"
#include "nn/gpt.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/lr_schedule.h"
#include "runtime/args.h"

namespace {

struct GptOptions {
  int64_t steps = 500;
  int64_t seed = 1337;
  std::string csv;
  std::string data;
  std::string device;
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_embd = 128;
  int64_t block_size = 64;
  int64_t batch_size = 16;
  double lr = 1e-3;
  int64_t warmup_steps = -1;  // -1: min(100, steps / 10)
  double weight_decay = 0.1;
  double dropout = 0.0;
  int64_t eval_every = 100;
  int64_t eval_iters = 20;
  bool checkpoint_activations = false;
  int64_t sample = 0;
  double temperature = 0.8;
  int64_t top_k = 0;
  int64_t print_every = 10;
};

// A deterministic English-like text (a few hundred KiB) from a small grammar: enough structure
// (spelling, word order, punctuation) for a byte-level model to learn within a few hundred steps.
// mt19937_64's raw output is specified by the standard, so the text is the same everywhere.
std::string synthetic_text(size_t min_bytes) {
  const std::vector<std::string> subjects = {
      "the king", "the queen", "a young knight", "my lord", "the old man", "her brother",
      "the fool", "a stranger", "the captain", "our friend", "the duke", "his daughter"};
  const std::vector<std::string> verbs = {"sees", "loves", "follows", "calls", "fears",
                                          "finds", "answers", "remembers", "serves", "greets"};
  const std::vector<std::string> objects = {
      "the castle", "a letter", "the sea", "his sword", "the crown", "a red rose",
      "the night", "her father", "the ship", "a golden ring", "the river", "the city"};
  const std::vector<std::string> tails = {" today", " again", " at dawn", " in silence", "",
                                          " with joy", " in the rain", ""};
  const std::vector<std::string> ends = {".", ".", "!", "?", ";"};
  std::mt19937_64 rng(20240601);
  auto pick = [&rng](const std::vector<std::string>& words) -> const std::string& {
    return words[size_t(rng() % words.size())];
  };
  std::string text;
  while (text.size() < min_bytes) {
    const size_t sentences = 1 + size_t(rng() % 3);
    for (size_t s = 0; s < sentences; ++s) {
      std::string sentence = pick(subjects) + " " + pick(verbs) + " " + pick(objects) + pick(tails);
      sentence[0] = char(sentence[0] - 'a' + 'A');
      text += (s ? " " : "") + sentence + pick(ends);
    }
    text += "\n";
  }
  return text;
}

// The dataset of --data, or the synthetic text (written to a temporary file TextDataset reads).
std::unique_ptr<zt::TextDataset> load_data(const std::string& path, std::string& name) {
  if (!path.empty()) {
    name = path;
    return std::make_unique<zt::TextDataset>(path);
  }
  const auto tmp = std::filesystem::temp_directory_path() /
                   ("zt-gpt-synthetic-" + std::to_string(getpid()) + ".txt");
  {
    std::ofstream out(tmp, std::ios::binary);
    out << synthetic_text(300000);
    ZT_CHECK(out.good(), "zt-gpt: cannot write the synthetic text to '", tmp.string(), "'");
  }
  std::unique_ptr<zt::TextDataset> data;
  try {
    data = std::make_unique<zt::TextDataset>(tmp.string());
  } catch (...) {
    std::filesystem::remove(tmp);
    throw;
  }
  std::filesystem::remove(tmp);
  name = "built-in synthetic text";
  return data;
}

// Mean loss over eval_iters batches of a split; the batches are the same at every evaluation
// (a fixed generator), so successive values are comparable.
double estimate_loss(zt::GPT& model, const zt::TextDataset& data, zt::TextSplit split,
                     const GptOptions& o, zt::Device device) {
  zt::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  zt::Generator gen(uint64_t(o.seed) + 2);
  double total = 0;
  for (int64_t i = 0; i < o.eval_iters; ++i) {
    zt::Batch b = data.get_batch(split, o.batch_size, o.block_size, gen);
    total += model.loss(zt::raw::to(b.input, device), zt::raw::to(b.target, device)).item();
  }
  model.train(was_training);
  return total / double(o.eval_iters);
}

void print_sample(zt::GPT& model, const zt::TextDataset& data, const GptOptions& o,
                  zt::Device device) {
  zt::Generator gen(uint64_t(o.seed) + 3);
  // Byte-level text starts from a newline; a token file from token 0.
  const int64_t start = data.byte_level() ? '\n' : 0;
  zt::Tensor prompt = zt::raw::to(zt::from_vector<int64_t>({start}, {1, 1}), device);
  std::vector<int64_t> ids =
      model.generate(prompt, o.sample, o.temperature, o.top_k, gen).to_vector<int64_t>();
  ids.erase(ids.begin());  // the prompt
  std::printf("---- sample (%lld tokens, temperature %g, top-k %lld) ----\n", (long long)o.sample,
              o.temperature, (long long)o.top_k);
  if (data.byte_level()) {
    const std::string text = data.decode(ids);  // may hold any byte, NUL included
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
  } else {
    for (int64_t id : ids) std::printf("%lld ", (long long)id);
    std::printf("\n");
  }
  std::printf("---- end of sample ----\n");
}

void check_options(const GptOptions& o) {
  ZT_CHECK(o.steps >= 0, "--steps must be >= 0, found ", o.steps);
  ZT_CHECK(o.n_layer > 0 && o.n_head > 0 && o.n_embd > 0 && o.block_size > 0 && o.batch_size > 0,
           "--n-layer, --n-head, --n-embd, --block-size and --batch-size must be positive");
  ZT_CHECK(o.n_embd % o.n_head == 0, "--n-embd ", o.n_embd, " must be divisible by --n-head ",
           o.n_head);
  ZT_CHECK(o.lr > 0, "--lr must be positive, found ", o.lr);
  ZT_CHECK(o.dropout >= 0 && o.dropout < 1, "--dropout must be in [0, 1), found ", o.dropout);
  ZT_CHECK(o.eval_every > 0 && o.eval_iters > 0 && o.print_every > 0,
           "--eval-every, --eval-iters and --print-every must be positive");
  ZT_CHECK(o.sample >= 0 && o.top_k >= 0, "--sample and --top-k must be >= 0");
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
  void log(const StepLog& s) {
    std::printf("step %6lld/%lld | loss %.4f | lr %.2e | %.0f tokens/s", (long long)s.step,
                (long long)steps_, s.loss, s.lr, s.tokens_per_s);
    if (s.val_loss >= 0) std::printf(" | val loss %.4f", s.val_loss);
    std::printf("\n");
    std::fflush(stdout);
    if (!csv_.is_open()) return;
    csv_ << s.step << "," << s.loss << "," << s.lr << ",";
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

zt::Device pick_device(const std::string& flag) {
  const bool have_cuda = zt::has_backend(zt::DeviceType::CUDA);
  const zt::Device device = zt::Device::parse(flag.empty() ? (have_cuda ? "cuda" : "cpu") : flag);
  ZT_CHECK(zt::has_backend(device.type), "--device ", device.str(),
           ": no such backend in this build or no GPU present (expected cpu",
           have_cuda ? " or cuda)" : ")");
  return device;
}

void print_header(const GptOptions& o, const std::string& data_name, const zt::TextDataset& data,
                  const zt::GPT& model, zt::Device device) {
  std::printf("zt-gpt: %s, %lld train / %lld val tokens, vocab %lld | GPT %lld layers, %lld heads, "
              "%lld wide, context %lld | %.2fM parameters, %.3g FLOPs/token | batch %lld, AdamW "
              "lr %g, dropout %g%s, device %s\n",
              data_name.c_str(), (long long)data.num_tokens(zt::TextSplit::train),
              (long long)data.num_tokens(zt::TextSplit::val), (long long)model.config().vocab_size,
              (long long)o.n_layer, (long long)o.n_head, (long long)o.n_embd, (long long)o.block_size,
              double(model.num_parameters_reported()) / 1e6, model.flops_per_token(),
              (long long)o.batch_size, o.lr, o.dropout,
              o.checkpoint_activations ? ", activation checkpointing" : "", device.str().c_str());
}

// The training loop: one line per --print-every steps, val loss every --eval-every steps and at
// the end, then the summary line.
void train(zt::GPT& model, const zt::TextDataset& data, const GptOptions& o, zt::Device device) {
  zt::AdamWOptions adam;
  adam.lr = o.lr;
  adam.beta2 = 0.99;
  adam.weight_decay = o.weight_decay;
  zt::AdamW optimizer(zt::make_param_groups(model, o.weight_decay), adam);
  zt::WarmupCosineLROptions sched;
  sched.total_num_steps = std::max<int64_t>(o.steps, 1);
  sched.warmup_num_steps = o.warmup_steps >= 0 ? o.warmup_steps : std::min<int64_t>(100, o.steps / 10);
  sched.warmup_type = "linear";
  sched.cos_min_ratio = 0.1;
  zt::WarmupCosineLR schedule(optimizer, sched);

  const double initial_val = estimate_loss(model, data, zt::TextSplit::val, o, device);
  std::printf("step %6d/%lld | val loss %.4f\n", 0, (long long)o.steps, initial_val);
  Logger logger(o.csv, o.steps);
  zt::Generator data_gen(uint64_t(o.seed) + 1);
  const std::vector<zt::Tensor> params = model.parameters();
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto window_start = start;
  int64_t window_tokens = 0;
  double last_loss = 0, last_val = initial_val;
  for (int64_t step = 1; step <= o.steps; ++step) {
    zt::Batch b = data.get_batch(zt::TextSplit::train, o.batch_size, o.block_size, data_gen);
    const double lr = optimizer.lr();
    zt::Tensor loss = model.loss(zt::raw::to(b.input, device), zt::raw::to(b.target, device));
    optimizer.zero_grad();
    zt::backward(loss);
    zt::clip_grad_norm_(params, 1.0);
    optimizer.step();
    schedule.step();
    window_tokens += o.batch_size * o.block_size;
    const bool evaluate = step % o.eval_every == 0 || step == o.steps;
    if (step % o.print_every != 0 && !evaluate) continue;
    const double secs = std::chrono::duration<double>(Clock::now() - window_start).count();
    StepLog s{step, loss.item(), lr, double(window_tokens) / std::max(secs, 1e-9)};
    last_loss = s.loss;
    if (evaluate) s.val_loss = last_val = estimate_loss(model, data, zt::TextSplit::val, o, device);
    logger.log(s);
    window_start = Clock::now();
    window_tokens = 0;
  }
  const double total = std::chrono::duration<double>(Clock::now() - start).count();
  const double tokens_per_s = double(o.steps * o.batch_size * o.block_size) / std::max(total, 1e-9);
  // Model FLOP/s counts 6 N + 12 L T C per token (GPT::flops_per_token), the basis of MFU.
  std::printf("done: %lld steps in %.2f s (%.0f tokens/s, %.3g model FLOP/s), final loss %.4f, "
              "val loss %.4f (initial %.4f)\n",
              (long long)o.steps, total, tokens_per_s,
              tokens_per_s * model.flops_per_token(o.block_size), last_loss, last_val, initial_val);
}

int run(const GptOptions& o) {
  check_options(o);
  const zt::Device device = pick_device(o.device);
  zt::manual_seed(uint64_t(o.seed));  // dropout masks
  std::string data_name;
  std::unique_ptr<zt::TextDataset> data = load_data(o.data, data_name);
  zt::Generator init_gen(uint64_t(o.seed));
  zt::GPT model(model_config(o, *data), &init_gen);
  model.to(device);
  print_header(o, data_name, *data, model, device);
  train(model, *data, o, device);
  if (o.sample > 0) print_sample(model, *data, o, device);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  GptOptions o;
  zt::ArgParser args("zt-gpt",
                     "Trains a GPT on byte-level text (--data FILE), a uint16 token file (--data\n"
                     "FILE.bin, as nanoGPT's train.bin) or a built-in synthetic text, split 90/10\n"
                     "into train and val; prints loss, lr, tokens/s and periodic val loss.");
  args.add("--steps", &o.steps, "optimizer steps to train");
  args.add("--seed", &o.seed, "seed for init, batches, dropout and sampling");
  args.add("--csv", &o.csv, "write step,loss,lr,val_loss,tokens_per_s rows to this CSV file");
  args.add("--data", &o.data, "text file (bytes) or .bin uint16 tokens; empty: synthetic text");
  args.add("--device", &o.device, "cpu or cuda (default: cuda when a GPU is present)");
  args.add("--n-layer", &o.n_layer, "Transformer blocks");
  args.add("--n-head", &o.n_head, "attention heads");
  args.add("--n-embd", &o.n_embd, "embedding width");
  args.add("--block-size", &o.block_size, "context length");
  args.add("--batch-size", &o.batch_size, "sequences per step");
  args.add("--lr", &o.lr, "peak AdamW learning rate (cosine decay to lr / 10)");
  args.add("--warmup-steps", &o.warmup_steps, "linear warmup steps (-1: min(100, steps / 10))");
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
  try {
    if (!args.parse(argc, argv)) return 0;
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zt-gpt: error: %s\n", e.what());
    return 1;
  }
}
