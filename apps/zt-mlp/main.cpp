// zt-mlp: trains a multi-layer perceptron on the built-in random dataset (32 features, 10
// classes, as DeepSpeed's classic example) or on MNIST IDX files, and reports held-out accuracy.
// Training runs through the engine (runtime/engine.h) with a DeepSpeed config: --config FILE, or
// one built from the flags. Flags given on the command line override the file's values.
// Under `mpirun -np N` it trains data-parallel: the global batch (train_batch_size, --batch-size)
// is micro-batch x accumulation x N, each rank reads its own disjoint share of it, gradients are
// averaged, and the logged loss is the mean over the whole global batch, so the log does not
// depend on N. Only rank 0 prints and writes the CSV.
//
// Note [zt-mlp checkpoints]
// --save DIR writes a checkpoint through the engine (tag global_step<N>, `latest` published) at
// the end of the run and every --save-every steps; --load DIR resumes from DIR's latest, and
// --steps N still means "train until global step N". The engine saves the model, masters,
// optimizer, schedule, loss scaler, step counters and each rank's default-generator state; the
// client_state adds the data-loader position as (epoch, global samples read in that epoch).
// Samples rather than batches, so the position does not depend on the number of ranks: the
// DistributedSampler interleaves one epoch order across ranks, so with the global batch fixed
// step k reads the same samples at any world size, and a checkpoint saved at N ranks resumes
// at M ranks on the same data (the loss then differs from the N-rank run only by the summation
// order of the gradient average).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "data/data_loader.h"
#include "data/mnist.h"
#include "data/random_dataset.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "parallel/mpi_runtime.h"
#include "runtime/args.h"
#include "runtime/config.h"
#include "runtime/engine.h"

namespace {

struct MlpOptions {
  int64_t steps = 0;   // train until this global step (0: until --epochs are done)
  int64_t epochs = 0;  // 0: 3 when --steps is not given, unbounded otherwise
  int64_t batch_size = 32;
  int64_t hidden = 128;
  int64_t print_every = 50;
  int64_t samples = 4096;  // random dataset size (train); a quarter more are held out
  int64_t seed = 0;
  double lr = 1e-3;
  std::string data;
  std::string device;
  std::string csv;
  std::string config;
  std::string save;        // checkpoint folder written at the end (and every save_every steps)
  std::string load;        // checkpoint folder to resume from (its latest tag)
  int64_t save_every = 0;  // 0: only at the end
};

struct Splits {
  std::shared_ptr<zt::TensorDataset> train, test;
  int64_t features = 0;
  int64_t classes = 10;
  std::string name;
};

Splits load_data(const MlpOptions& o) {
  Splits s;
  if (o.data.empty()) {
    zt::RandomDatasetOptions train_opts{o.samples, 32, 10, uint64_t(o.seed)};
    auto train = std::make_shared<zt::RandomDataset>(train_opts);
    // Held-out samples: fresh features, labelled by the same map as the training set.
    zt::Generator gen(uint64_t(o.seed) + 1);
    zt::Tensor x = zt::randn({o.samples / 4, 32}, {}, &gen);
    zt::Tensor y = zt::raw::argmax(zt::raw::matmul(x, train->label_map()), 1);
    s.train = train;
    s.test = std::make_shared<zt::TensorDataset>(x, y);
    s.features = 32;
    s.name = "random (32 features, 10 classes)";
  } else {
    zt::MnistSplits m = zt::load_mnist_train_test(o.data, zt::MnistOptions{true, true});
    s.train = std::make_shared<zt::TensorDataset>(m.train.images, m.train.labels);
    s.test = std::make_shared<zt::TensorDataset>(m.test.images, m.test.labels);
    s.features = 784;
    s.name = "MNIST from " + o.data;
  }
  return s;
}

// The mean of a per-rank value over the data-parallel ranks (each rank's loss is the mean over an
// equal share of the global batch, so this is the global-batch mean).
struct EvalResult {
  double loss = 0, accuracy = 0;
};

EvalResult evaluate(zt::Module& model, const zt::TensorDataset& test, zt::Device device, zt::DType dtype) {
  zt::NoGradGuard no_grad;
  model.eval();
  zt::Tensor x = zt::raw::to(zt::raw::to(test.inputs(), device), dtype), y = zt::raw::to(test.targets(), device);
  zt::Tensor logits = model(x);
  EvalResult r;
  r.loss = zt::cross_entropy(logits, y).item();
  zt::Tensor correct = zt::raw::to(zt::eq(zt::argmax(logits, 1), y), zt::DType::f32);
  r.accuracy = zt::raw::mean(correct).item();
  model.train();
  return r;
}

// The DeepSpeed config of this run: --config FILE with the flags given on the command line
// written over it, or (no file) the flags themselves as app defaults.
zt::Config make_config(const MlpOptions& o, const zt::ArgParser& args, int ranks) {
  zt::ConfigOptions options;
  options.world_size = ranks;
  if (o.config.empty()) {
    ZT_CHECK(o.batch_size % ranks == 0, "--batch-size ", o.batch_size, " is the global batch and must be "
             "divisible by the number of data-parallel ranks, ", ranks, " (each rank takes batch / ranks samples)");
    const nlohmann::json defaults = {{"train_batch_size", o.batch_size},
                                     {"gradient_accumulation_steps", 1},
                                     {"steps_per_print", o.print_every},
                                     {"seed", o.seed},
                                     {"optimizer", {{"type", "Adam"}, {"params", {{"lr", o.lr}}}}}};
    return zt::config_from_app_defaults(defaults, options);
  }
  const bool overridden = args.given("--batch-size") || args.given("--lr") || args.given("--seed");
  if (!overridden) return zt::load_config(o.config, options);
  std::ifstream in(o.config);
  ZT_CHECK(in.good(), "--config: cannot read '", o.config, "'");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json doc = zt::parse_config_document(text.str(), zt::ConfigFormat::detect, o.config);
  if (args.given("--batch-size")) {  // the global batch: the micro-batch follows from it
    doc["train_batch_size"] = o.batch_size;
    if (doc.contains("gradient_accumulation_steps")) doc.erase("train_micro_batch_size_per_gpu");
  }
  if (args.given("--lr")) doc["optimizer"]["params"]["lr"] = o.lr;
  if (args.given("--seed")) doc["seed"] = o.seed;
  return zt::parse_config(doc.dump(), zt::ConfigFormat::json, options, o.config + " (with command-line flags)");
}

// The loader position as the checkpoint's client_state (Note [zt-mlp checkpoints]).
nlohmann::json loader_client_state(const zt::DataLoader& loader) {
  const zt::DataLoaderOptions& lo = loader.options();
  const zt::LoaderPosition p = loader.position();
  return {{"data_loader",
           {{"epoch", p.epoch}, {"epoch_samples", p.batch * lo.batch_size * lo.world_size}, {"seed", lo.seed}}}};
}

void restore_loader(zt::DataLoader& loader, const nlohmann::json& client, const std::string& dir) {
  ZT_CHECK(client.contains("data_loader"), "--load ", dir, ": the checkpoint has no data-loader position "
           "(expected client_state.data_loader, found ", client.dump(), ")");
  const nlohmann::json& d = client.at("data_loader");
  const zt::DataLoaderOptions& lo = loader.options();
  const uint64_t seed = d.at("seed").get<uint64_t>();
  ZT_CHECK(seed == lo.seed, "--load ", dir, ": the checkpoint's data order was seeded with ", seed,
           " but this run's seed is ", lo.seed, " (resume with the same --seed/config seed)");
  const int64_t samples = d.at("epoch_samples").get<int64_t>(), per_batch = lo.batch_size * lo.world_size;
  ZT_CHECK(samples % per_batch == 0, "--load ", dir, ": the checkpoint stopped after ", samples,
           " samples of its epoch, which is not a whole number of this run's micro-batches of ", per_batch,
           " samples over all ranks (keep train_batch_size and gradient_accumulation_steps)");
  loader.set_position(d.at("epoch").get<int64_t>(), samples / per_batch);
}

void save(zt::Engine& engine, const zt::DataLoader& loader, const std::string& dir, bool lead) {
  const std::string tag = "global_step" + std::to_string(engine.global_step());
  engine.save_checkpoint(dir, tag, loader_client_state(loader));
  if (lead) std::printf("saved checkpoint %s/%s\n", dir.c_str(), tag.c_str());
}

// input -> hidden -> classes with a ReLU between, on `device`.
std::shared_ptr<zt::Sequential> make_model(int64_t features, int64_t hidden, int64_t classes, zt::Device device) {
  auto model = std::make_shared<zt::Sequential>();
  model->push_back(std::make_shared<zt::Linear>(features, hidden));
  model->push_back(std::make_shared<zt::ReLU>());
  model->push_back(std::make_shared<zt::Linear>(hidden, classes));
  model->to(device);
  return model;
}

// This rank's slice of every global batch: micro-batches of the config's size, seeded order.
zt::DataLoader make_loader(const Splits& data, const zt::Config& config, zt::Communicator& world) {
  zt::DataLoaderOptions options;
  options.batch_size = config.train_micro_batch_size_per_gpu;
  options.world_size = world.size();
  options.rank = world.rank();
  options.seed = uint64_t(config.seed);
  options.drop_last = true;
  return zt::DataLoader(data.train, options);
}

// The last lines: skipped steps, throughput of this process's steps, held-out accuracy.
void print_summary(zt::Engine& engine, const EvalResult& final_eval, const Splits& data, int64_t step,
                   int64_t steps_run, double seconds, double last_loss) {
  if (engine.skipped_steps() > 0)
    std::printf("%lld of %lld steps skipped for non-finite gradients\n", (long long)engine.skipped_steps(),
                (long long)step);
  std::printf("done: %lld steps in %.2f s (%.0f samples/s), final loss %.4f, "
              "held-out accuracy %.2f%% on %lld samples\n",
              (long long)step, seconds, steps_run * engine.train_batch_size() / std::max(seconds, 1e-9),
              last_loss, 100 * final_eval.accuracy, (long long)data.test->size());
}

// The run's first lines: data, model, batch, optimizer, device, dtype, accumulation, ranks.
void print_header(const MlpOptions& o, const Splits& data, const zt::Config& config, int64_t num_parameters,
                  zt::Device device, zt::DType dtype, int ranks) {
  std::printf("zt-mlp: %s, %lld train / %lld held-out samples, MLP %lld -> %lld -> %lld "
              "(%lld parameters), batch %lld, %s lr %g, device %s, %s\n",
              data.name.c_str(), (long long)data.train->size(), (long long)data.test->size(),
              (long long)data.features, (long long)o.hidden, (long long)data.classes,
              (long long)num_parameters, (long long)config.train_batch_size, config.optimizer.type.c_str(),
              config.optimizer.lr, device.str().c_str(), zt::dtype_name(dtype));
  if (!o.config.empty()) std::printf("config: %s\n", config.origin.c_str());
  if (config.gradient_accumulation_steps > 1)
    std::printf("gradient accumulation: %lld micro-batches of %lld per step\n",
                (long long)config.gradient_accumulation_steps, (long long)config.train_micro_batch_size_per_gpu);
  if (ranks > 1)
    std::printf("data parallel: %d ranks x %lld samples per step\n", ranks,
                (long long)(config.train_batch_size / ranks));
}

// One line on stdout and one CSV row (when a CSV path is given) per logged step.
class StepLog {
 public:
  explicit StepLog(const std::string& csv_path) {
    if (csv_path.empty()) return;
    csv_.open(csv_path);
    ZT_CHECK(csv_.good(), "--csv: cannot write '", csv_path, "'");
    csv_ << "step,epoch,loss,lr,samples_per_s,val_loss,val_accuracy\n";
  }

  void write(int64_t step, int64_t max_steps, int64_t epoch, double loss, double lr, double rate,
             const EvalResult* val) {
    std::printf("step %6lld/%lld | epoch %lld | loss %.4f | lr %.2e | %.0f samples/s", (long long)step,
                (long long)max_steps, (long long)epoch, loss, lr, rate);
    if (val) std::printf(" | val loss %.4f | val acc %.2f%%", val->loss, 100 * val->accuracy);
    std::printf("\n");
    std::fflush(stdout);
    if (!csv_.is_open()) return;
    char loss_text[32];  // every bit of the double, so resumed runs can be compared exactly
    std::snprintf(loss_text, sizeof loss_text, "%.17g", loss);
    csv_ << step << "," << epoch << "," << loss_text << "," << lr << "," << rate << ",";
    if (val) csv_ << val->loss << "," << val->accuracy;
    else csv_ << ",";
    csv_ << "\n";
  }

 private:
  std::ofstream csv_;
};

int run(const MlpOptions& o, const zt::ArgParser& args, const std::shared_ptr<zt::Communicator>& comm) {
  zt::Communicator& world = *comm;
  const int ranks = world.size();
  const bool lead = world.rank() == 0;  // the rank that prints and writes
  const zt::Device device = zt::device_for_flag(o.device, zt::launch_info_from_env());
  ZT_CHECK(o.batch_size > 0 && o.hidden > 0 && o.lr > 0, "--batch-size, --hidden and --lr must be positive");
  const zt::Config config = make_config(o, args, ranks);
  const uint64_t seed = uint64_t(config.seed);
  zt::manual_seed(seed);
  MlpOptions data_options = o;
  data_options.seed = int64_t(seed);
  Splits data = load_data(data_options);

  auto model = make_model(data.features, o.hidden, data.classes, device);
  const int64_t num_parameters = model->num_parameters();
  // The engine converts the model to the config's dtype, broadcasts rank 0's weights when there
  // are several ranks and averages their gradients. The app prints its own lines (its CSV
  // columns are its interface), so the engine's periodic lines stay off.
  zt::InitOptions init;
  init.communicator = comm;
  init.monitor = false;
  auto engine = zt::initialize(model, config, init);
  const int64_t accumulation = config.gradient_accumulation_steps;

  zt::DataLoader loader = make_loader(data, config, world);
  if (!o.load.empty()) {
    restore_loader(loader, engine->load_checkpoint(o.load), o.load);
    if (lead)
      std::printf("resumed from %s at global step %lld\n", o.load.c_str(), (long long)engine->global_step());
  }
  const int64_t epochs = o.epochs > 0 ? o.epochs : (o.steps > 0 ? INT64_MAX : 3);
  const int64_t steps_per_epoch = std::max<int64_t>(1, loader.num_batches() / accumulation);
  const int64_t max_steps = o.steps > 0 ? o.steps : epochs * steps_per_epoch;
  const int64_t print_every = args.given("--print-every") || o.config.empty() ? o.print_every : config.steps_per_print;

  if (lead) print_header(o, data, config, num_parameters, device, engine->dtype(), ranks);
  StepLog log(lead ? o.csv : std::string());

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto window_start = start;
  int64_t step = engine->global_step(), window_samples = 0, saved_step = -1;
  const int64_t first_step = step;
  double last_loss = 0;
  while (step < max_steps) {
    const int64_t epoch = loader.position().epoch;
    if (epoch >= epochs) break;
    zt::Tensor step_loss;  // this rank's mean over the step's micro-batches, kept on the device
    for (int64_t micro = 0; micro < accumulation; ++micro) {
      zt::Batch batch = loader.next();
      zt::Tensor x = zt::raw::to(zt::raw::to(batch.input, device), engine->dtype());
      zt::Tensor y = zt::raw::to(batch.target, device);
      zt::Tensor loss = zt::cross_entropy(engine->forward(x), y);
      engine->backward(loss);
      engine->step();
      zt::Tensor share = zt::raw::mul(zt::raw::to(loss, zt::DType::f64), 1.0 / double(accumulation));
      step_loss = step_loss.defined() ? zt::raw::add(step_loss, share) : share;
    }
    ++step;
    window_samples += config.train_batch_size;
    const bool epoch_end = loader.position().batch == 0 || loader.position().batch == loader.num_batches();
    const bool last = step == max_steps || (epoch_end && epoch + 1 >= epochs);
    if (step % print_every == 0 || last || epoch_end) {
      last_loss = zt::mean_over_ranks(&world, step_loss.item());
      const double secs = std::chrono::duration<double>(Clock::now() - window_start).count();
      const double rate = window_samples / std::max(secs, 1e-9);
      EvalResult val;
      const bool validate = epoch_end || last;
      // Every rank evaluates: under ZeRO stage 3 the forward gathers parameters collectively.
      if (validate) val = evaluate(*model, *data.test, device, engine->dtype());
      if (lead) log.write(step, max_steps, epoch + 1, last_loss, engine->lr(), rate, validate ? &val : nullptr);
      window_start = Clock::now();
      window_samples = 0;
    }
    if (!o.save.empty() && o.save_every > 0 && step % o.save_every == 0) {
      save(*engine, loader, o.save, lead);
      saved_step = step;
    }
  }
  if (!o.save.empty() && saved_step != step) save(*engine, loader, o.save, lead);
  const double total = std::chrono::duration<double>(Clock::now() - start).count();
  const EvalResult final_eval = evaluate(*model, *data.test, device, engine->dtype());  // on every rank
  if (!lead) return 0;
  print_summary(*engine, final_eval, data, step, step - first_step, total, last_loss);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MlpOptions o;
  zt::ArgParser args("zt-mlp",
                     "Trains an MLP (input -> hidden -> 10, ReLU, Adam) on a built-in random dataset\n"
                     "(32 features, 10 classes) or on MNIST IDX files (--data DIR; a directory with\n"
                     "only the t10k files is split 8,000 train / 2,000 held-out).");
  args.add("--steps", &o.steps, "train until this global step (0: run --epochs)");
  args.add("--epochs", &o.epochs, "epochs to train (0: 3, or unbounded when --steps is given)");
  args.add("--batch-size", &o.batch_size, "samples per step (the global batch: split across ranks under mpirun)");
  args.add("--hidden", &o.hidden, "hidden layer width");
  args.add("--lr", &o.lr, "Adam learning rate");
  args.add("--samples", &o.samples, "random dataset: training samples");
  args.add("--print-every", &o.print_every, "print a line every N steps");
  args.add("--seed", &o.seed, "seed for init, data order and the random dataset");
  args.add("--data", &o.data, "MNIST directory with IDX files (.gz or plain); empty: random data");
  args.add("--device", &o.device, "cpu or cuda (default: cuda when a GPU is present and one rank runs)");
  args.add("--csv", &o.csv, "write one row per logged step to this CSV file");
  args.add("--config", &o.config, "DeepSpeed config (JSON or YAML); flags given here override its values");
  args.add("--save", &o.save, "checkpoint folder: saved at the end of the run (and every --save-every steps)");
  args.add("--save-every", &o.save_every, "also save every N steps (0: only at the end)");
  args.add("--load", &o.load, "resume from this checkpoint folder's latest tag (--steps is the global step to reach)");
  try {
    if (!args.parse(argc, argv)) return 0;
    zt::MpiRuntime mpi;  // a world of one without mpirun
    return run(o, args, mpi.world());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zt-mlp: error: %s\n", e.what());
    return 1;
  }
}
