// zt-mnist: DeepSpeed's classic first program in native C++. Three modes:
//   train    a LeNet-style CNN from a DeepSpeed config (--config; built in: the text of
//            configs/mnist_ds_config.json), checkpoint through the engine each epoch (--save),
//            final weights as safetensors (--weights), per-epoch loss and held-out accuracy;
//   eval     loads --weights and prints "test accuracy: XX.XX%" on the held-out set;
//   predict  classifies one held-out image (--index, or random by --seed), draws it in the
//            terminal and writes it as a PNG (--png FILE).
// Data: --data DIR with the IDX files (.gz or plain; only t10k files: split 8,000 / 2,000), or
// without --data the built-in synthetic digits (synthetic_digits.h).
// Under `mpirun -np N` training is data-parallel as in zt-mlp: each rank reads its share
// (train_batch_size / N) of every global batch, gradients are averaged by the engine, and the
// logged loss is the mean over the global batch. Only rank 0 prints and writes the weights.
//
// Note [zt-mnist precision and ZeRO]
// DeepSpeed's CPU accelerator has no fp16 support and zerotrain's CPU kernels have no fast fp16
// path, so on the CPU an fp16.enabled config trains in f32 (a printed note says so); on CUDA the
// config is used as written. If the engine refuses the config's ZeRO stage, training falls back
// to stage 0 (plain data parallelism) with a printed note rather than failing.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "data/data_loader.h"
#include "data/mnist.h"
#include "nn/activation.h"
#include "nn/conv.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "nn/sequential.h"
#include "parallel/mpi_runtime.h"
#include "png.h"
#include "runtime/args.h"
#include "runtime/config.h"
#include "runtime/engine.h"
#include "runtime/safetensors.h"
#include "synthetic_digits.h"

namespace {

// The text of configs/mnist_ds_config.json (tests check that the two agree).
constexpr const char* kDefaultConfig = R"({
  "train_batch_size": 128,
  "steps_per_print": 100,
  "optimizer": {
    "type": "Adam",
    "params": {
      "lr": 0.00015,
      "betas": [0.9, 0.999],
      "eps": 1e-8,
      "weight_decay": 0
    }
  },
  "fp16": {
    "enabled": true,
    "loss_scale": 0,
    "initial_scale_power": 16,
    "loss_scale_window": 1000,
    "hysteresis": 2,
    "min_loss_scale": 1
  },
  "zero_optimization": {
    "stage": 2,
    "allgather_partitions": true,
    "allgather_bucket_size": 5e8,
    "overlap_comm": false,
    "reduce_scatter": true,
    "reduce_bucket_size": 5e8,
    "contiguous_gradients": true
  }
}
)";

constexpr int64_t kEvalChunk = 500;  // images per forward in evaluation (bounds im2col memory)

struct Options {
  std::string mode;
  std::string config;  // empty: kDefaultConfig
  std::string data;    // empty: synthetic digits
  std::string weights = "mnist_cnn.safetensors";
  std::string save = "mnist_checkpoints";
  std::string device;
  std::string png;
  int64_t epochs = 3;
  int64_t conv1 = 32, conv2 = 64, hidden = 128;
  int64_t index = -1;
  int64_t seed = -1;
  int64_t png_scale = 8;
  bool print_config = false;
};

struct ModelShape {
  int64_t conv1, conv2, hidden;
};

// conv 1->c1 5x5, relu, maxpool 2, conv c1->c2 5x5, relu, maxpool 2, flatten, linear
// c2*4*4 -> hidden, relu, linear hidden -> 10. (N, 1, 28, 28) -> (N, 10).
std::shared_ptr<zt::Sequential> build_lenet(const ModelShape& s) {
  ZT_CHECK(s.conv1 > 0 && s.conv2 > 0 && s.hidden > 0, "model widths must be positive, got conv1 ", s.conv1,
           ", conv2 ", s.conv2, ", hidden ", s.hidden);
  auto m = std::make_shared<zt::Sequential>();
  m->push_back(std::make_shared<zt::Conv2d>(zt::Conv2dOptions::square(1, s.conv1, 5)));  // (N, c1, 24, 24)
  m->push_back(std::make_shared<zt::ReLU>());
  m->push_back(std::make_shared<zt::MaxPool2d>(2));  // (N, c1, 12, 12)
  m->push_back(std::make_shared<zt::Conv2d>(zt::Conv2dOptions::square(s.conv1, s.conv2, 5)));  // (N, c2, 8, 8)
  m->push_back(std::make_shared<zt::ReLU>());
  m->push_back(std::make_shared<zt::MaxPool2d>(2));  // (N, c2, 4, 4)
  m->push_back(std::make_shared<zt::Flatten>());     // (N, c2 * 16)
  m->push_back(std::make_shared<zt::Linear>(s.conv2 * 16, s.hidden));
  m->push_back(std::make_shared<zt::ReLU>());
  m->push_back(std::make_shared<zt::Linear>(s.hidden, 10));
  return m;
}

zt::MnistSplits load_data(const Options& o) {
  if (o.data.empty()) return zt::synthetic_train_test();
  return zt::load_mnist_train_test(o.data, zt::MnistOptions{false, true});
}

std::string data_name(const Options& o) {
  return o.data.empty() ? "synthetic digits (built in)" : "MNIST from " + o.data;
}

zt::Device pick_device(const Options& o) { return zt::device_for_flag(o.device, zt::launch_info_from_env()); }

// Correct predictions of `model` on (images, labels), in chunks; the model is left in train mode.
int64_t count_correct(zt::Module& model, const zt::MnistData& d, zt::Device device, zt::DType dtype) {
  zt::NoGradGuard no_grad;
  model.eval();
  int64_t correct = 0;
  for (int64_t start = 0; start < d.size(); start += kEvalChunk) {
    const int64_t len = std::min(kEvalChunk, d.size() - start);
    zt::Tensor x = zt::raw::to(zt::raw::to(zt::raw::narrow(d.images, 0, start, len), device), dtype);
    zt::Tensor y = zt::raw::to(zt::raw::narrow(d.labels, 0, start, len), device);
    zt::Tensor hits = zt::raw::to(zt::eq(zt::argmax(model(x), 1), y), zt::DType::i64);
    for (int64_t h : hits.to_vector<int64_t>()) correct += h;
  }
  model.train();
  return correct;
}

double accuracy_percent(int64_t correct, int64_t total) { return 100.0 * double(correct) / double(total); }

std::string read_text(const std::string& path, const char* flag) {
  std::ifstream in(path);
  ZT_CHECK(in.good(), flag, ": cannot read '", path, "'");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The config document of this run (Note [zt-mnist precision and ZeRO] for the CPU's fp16).
nlohmann::json config_document(const Options& o, zt::Device device, bool lead) {
  const std::string origin = o.config.empty() ? "<built-in mnist_ds_config.json>" : o.config;
  nlohmann::json doc = zt::parse_config_document(o.config.empty() ? kDefaultConfig : read_text(o.config, "--config"),
                                                 zt::ConfigFormat::detect, origin);
  if (device.is_cpu() && doc.contains("fp16") && doc["fp16"].value("enabled", false) == true) {
    doc["fp16"]["enabled"] = false;
    if (lead)
      std::printf("note: fp16.enabled is ignored on the CPU (no fp16 kernels there, as in DeepSpeed's CPU "
                  "accelerator): training in f32\n");
  }
  return doc;
}

zt::Config resolve(const nlohmann::json& doc, const Options& o, int ranks) {
  zt::ConfigOptions options;
  options.world_size = ranks;
  const std::string origin = o.config.empty() ? "<built-in mnist_ds_config.json>" : o.config;
  return zt::parse_config(doc.dump(), zt::ConfigFormat::json, options, origin);
}

struct Trainer {
  std::shared_ptr<zt::Sequential> model;
  std::shared_ptr<zt::Engine> engine;
  zt::Config config;
};

// The model and engine; a refused ZeRO stage falls back to stage 0 (Note [zt-mnist precision
// and ZeRO]) with a fresh model, since a failed initialize may have converted the first one.
Trainer make_trainer(nlohmann::json doc, const Options& o, const ModelShape& shape,
                     const std::shared_ptr<zt::Communicator>& comm, zt::Device device, bool lead) {
  zt::InitOptions init;
  init.communicator = comm;
  init.monitor = false;  // the app prints its own per-epoch lines
  Trainer t;
  t.config = resolve(doc, o, comm->size());
  zt::manual_seed(uint64_t(t.config.seed));
  t.model = build_lenet(shape);
  t.model->to(device);
  try {
    t.engine = zt::initialize(t.model, t.config, init);
  } catch (const zt::Error& e) {
    const int64_t stage = t.config.zero_optimization.stage;
    if (stage == 0) throw;
    if (lead)
      std::printf("note: the engine refused ZeRO stage %lld (%s); training with stage 0 (plain data "
                  "parallelism) instead\n", (long long)stage, e.what());
    doc["zero_optimization"]["stage"] = 0;
    t.config = resolve(doc, o, comm->size());
    zt::manual_seed(uint64_t(t.config.seed));
    t.model = build_lenet(shape);
    t.model->to(device);
    t.engine = zt::initialize(t.model, t.config, init);
  }
  return t;
}

// The mean of a per-rank value over the data-parallel ranks.
// The metadata records the architecture and the compute dtype, so eval and predict rebuild the
// same model and compute as training did (an fp16-trained model evaluates in fp16).
void save_weights(const zt::TensorDict& weights, const Options& o, const ModelShape& s, zt::DType dtype) {
  zt::save_safetensors(o.weights, weights,
                       {{"zt-mnist.dtype", zt::safetensors_dtype_name(dtype)},
                        {"zt-mnist.conv1", std::to_string(s.conv1)},
                        {"zt-mnist.conv2", std::to_string(s.conv2)},
                        {"zt-mnist.hidden", std::to_string(s.hidden)}});
}

void print_header(const Options& o, const Trainer& t, const zt::MnistSplits& data, zt::Device device, int ranks) {
  const zt::Config& c = t.config;
  std::printf("zt-mnist train: %s, %lld train / %lld held-out images, CNN conv %lld-%lld fc %lld "
              "(%lld parameters)\n", data_name(o).c_str(), (long long)data.train.size(),
              (long long)data.test.size(), (long long)o.conv1, (long long)o.conv2, (long long)o.hidden,
              (long long)t.model->num_parameters());
  std::printf("config %s: train_batch_size %lld, %s lr %g, ZeRO stage %lld, %s on %s\n", c.origin.c_str(),
              (long long)c.train_batch_size, c.optimizer.type.c_str(), c.optimizer.lr,
              (long long)c.zero_optimization.stage, zt::dtype_name(t.engine->dtype()), device.str().c_str());
  if (ranks > 1)
    std::printf("data parallel: %d ranks x %lld images per step\n", ranks, (long long)(c.train_batch_size / ranks));
  std::fflush(stdout);
}

int train(const Options& o, const std::shared_ptr<zt::Communicator>& comm) {
  zt::Communicator& world = *comm;
  const int ranks = world.size();
  const bool lead = world.rank() == 0;
  ZT_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
  const zt::Device device = pick_device(o);
  const ModelShape shape{o.conv1, o.conv2, o.hidden};
  const zt::MnistSplits data = load_data(o);  // first: bad data fails before any setup
  Trainer t = make_trainer(config_document(o, device, lead), o, shape, comm, device, lead);
  if (lead) print_header(o, t, data, device, ranks);

  zt::DataLoaderOptions lo;
  lo.batch_size = t.config.train_micro_batch_size_per_gpu;
  lo.world_size = ranks;
  lo.rank = world.rank();
  lo.seed = uint64_t(t.config.seed);
  lo.drop_last = true;
  zt::DataLoader loader(std::make_shared<zt::TensorDataset>(data.train.images, data.train.labels), lo);
  ZT_CHECK(loader.num_batches() > 0, "the training set (", data.train.size(), " images) is smaller than one "
           "global batch of ", t.config.train_batch_size);
  zt::Engine& engine = *t.engine;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  double accuracy = 0;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    loader.set_epoch(epoch);
    zt::Tensor loss_sum;  // this rank's micro-batch losses summed, f64 on the device
    int64_t micro_batches = 0;
    for (const zt::Batch& batch : loader) {
      zt::Tensor x = zt::raw::to(zt::raw::to(batch.input, device), engine.dtype());
      zt::Tensor loss = zt::cross_entropy(engine.forward(x), zt::raw::to(batch.target, device));
      engine.backward(loss);
      engine.step();
      zt::Tensor l = zt::raw::to(zt::raw::to(loss, zt::DType::f64), zt::Device::cpu());
      loss_sum = loss_sum.defined() ? zt::raw::add(loss_sum, l) : l;
      ++micro_batches;
    }
    const double mean_loss = zt::mean_over_ranks(&world, loss_sum.item() / double(micro_batches));
    if (!o.save.empty()) engine.save_checkpoint(o.save, "epoch" + std::to_string(epoch + 1), {{"epoch", epoch + 1}});
    // Every rank evaluates: under ZeRO stage 3 the forward gathers parameters collectively.
    accuracy = accuracy_percent(count_correct(*t.model, data.test, device, engine.dtype()), data.test.size());
    if (!lead) continue;
    std::printf("epoch %lld/%lld | loss %.4f | held-out accuracy %.2f%% | %.1f s\n", (long long)epoch + 1,
                (long long)o.epochs, mean_loss, accuracy,
                std::chrono::duration<double>(Clock::now() - epoch_start).count());
    if (!o.save.empty()) std::printf("saved checkpoint %s/epoch%lld\n", o.save.c_str(), (long long)epoch + 1);
    std::fflush(stdout);
  }
  const zt::TensorDict weights = engine.module_state_dict();  // collective at ZeRO stage 3
  if (!lead) return 0;
  if (engine.skipped_steps() > 0)
    std::printf("%lld steps skipped for non-finite gradients\n", (long long)engine.skipped_steps());
  save_weights(weights, o, shape, engine.dtype());
  std::printf("saved weights %s\n", o.weights.c_str());
  std::printf("done: %lld epochs in %.1f s\n", (long long)o.epochs,
              std::chrono::duration<double>(Clock::now() - start).count());
  std::printf("test accuracy: %.2f%%\n", accuracy);
  return 0;
}

int64_t metadata_int(const zt::SafetensorsFile& f, const std::string& key, const std::string& path) {
  auto it = f.metadata.find(key);
  ZT_CHECK(it != f.metadata.end(), "--weights ", path, ": no '", key, "' in the file's metadata (expected "
           "weights written by `zt-mnist train`)");
  return std::stoll(it->second);
}

struct Loaded {
  std::shared_ptr<zt::Sequential> model;
  zt::DType dtype;  // the dtype it was trained in
};

// The trained model from --weights, on `device` in its training dtype.
Loaded load_model(const Options& o, zt::Device device) {
  const zt::SafetensorsFile file = zt::load_safetensors(o.weights);
  const ModelShape s{metadata_int(file, "zt-mnist.conv1", o.weights), metadata_int(file, "zt-mnist.conv2", o.weights),
                     metadata_int(file, "zt-mnist.hidden", o.weights)};
  auto model = build_lenet(s);
  zt::load_safetensors_into(*model, o.weights);
  auto dtype = file.metadata.find("zt-mnist.dtype");
  const zt::DType t = dtype == file.metadata.end() ? zt::DType::f32
                                                   : zt::parse_safetensors_dtype(dtype->second, "zt-mnist.dtype");
  model->to(device);
  model->to(t);
  return {model, t};
}

int eval(const Options& o) {
  const zt::Device device = pick_device(o);
  const Loaded loaded = load_model(o, device);
  const zt::MnistSplits data = load_data(o);
  const int64_t correct = count_correct(*loaded.model, data.test, device, loaded.dtype);
  std::printf("%s: %lld of %lld held-out images correct\n", data_name(o).c_str(), (long long)correct,
              (long long)data.test.size());
  std::printf("test accuracy: %.2f%%\n", accuracy_percent(correct, data.test.size()));
  return 0;
}

// The image's pixels 0..255 (white ink on black, as MNIST), undoing the normalisation.
std::vector<uint8_t> image_bytes(const zt::Tensor& image) {  // (1, 28, 28), normalised
  std::vector<uint8_t> out;
  for (float v : image.to_vector<float>())
    out.push_back(uint8_t(std::clamp((v * zt::kMnistStd + zt::kMnistMean) * 255.0 + 0.5, 0.0, 255.0)));
  return out;
}

void draw_ascii(const std::vector<uint8_t>& pixels) {  // 28 x 28
  static const char kShades[] = " .:-=+*#%@";
  for (int y = 0; y < 28; ++y) {
    std::string row;
    for (int x = 0; x < 28; ++x) row.append(2, kShades[pixels[size_t(y * 28 + x)] * 9 / 255]);
    std::printf("|%s|\n", row.c_str());
  }
}

int predict(const Options& o) {
  const zt::Device device = pick_device(o);
  const Loaded loaded = load_model(o, device);
  zt::Module& model = *loaded.model;
  const zt::MnistData test = load_data(o).test;
  int64_t index = o.index;
  if (index < 0) {  // random: reproducible with --seed
    std::mt19937_64 rng(o.seed >= 0 ? uint64_t(o.seed) : std::random_device{}());
    index = int64_t(rng() % uint64_t(test.size()));
  }
  ZT_CHECK(index < test.size(), "--index ", index, ": the held-out set has ", test.size(), " images (0..",
           test.size() - 1, ")");
  zt::NoGradGuard no_grad;
  model.eval();
  const zt::Tensor image = zt::raw::narrow(test.images, 0, index, 1);  // (1, 1, 28, 28)
  const zt::Tensor logits = model(zt::raw::to(zt::raw::to(image, device), loaded.dtype));  // (1, 10)
  const zt::Tensor probs = zt::raw::to(zt::softmax(logits, -1), zt::Device::cpu());
  const std::vector<float> p = probs.to_vector<float>();
  const int64_t predicted = std::max_element(p.begin(), p.end()) - p.begin();
  const int64_t truth = test.labels.to_vector<int64_t>()[size_t(index)];
  const std::vector<uint8_t> pixels = image_bytes(image);
  draw_ascii(pixels);
  std::printf("image %lld of the held-out set (%s)\n", (long long)index, data_name(o).c_str());
  std::printf("predicted: %lld (p = %.3f), true label: %lld%s\n", (long long)predicted, p[size_t(predicted)],
              (long long)truth, predicted == truth ? "" : "  [wrong]");
  if (!o.png.empty()) {
    ZT_CHECK(o.png_scale >= 1 && o.png_scale <= 64, "--png-scale must be 1..64, got ", o.png_scale);
    const int s = int(o.png_scale), side = 28 * s;
    std::vector<uint8_t> big(size_t(side) * size_t(side));
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x) big[size_t(y * side + x)] = pixels[size_t((y / s) * 28 + x / s)];
    zt::write_png_gray(o.png, big, side, side);
    std::printf("wrote %s (%dx%d)\n", o.png.c_str(), side, side);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  zt::ArgParser args("zt-mnist",
                     "MNIST with a LeNet-style CNN, DeepSpeed style. Usage: zt-mnist MODE [flags], MODE one of\n"
                     "  train    train from a DeepSpeed config, checkpoint each epoch, save the weights\n"
                     "  eval     print the held-out accuracy of --weights\n"
                     "  predict  classify one held-out image, draw it, optionally write a PNG\n"
                     "Without --data the built-in synthetic digits are used.");
  args.add("--mode", &o.mode, "train, eval or predict (or give it as the first argument)");
  args.add("--config", &o.config, "DeepSpeed config (JSON or YAML); default: built-in configs/mnist_ds_config.json");
  args.add("--data", &o.data, "MNIST directory with IDX files (.gz or plain); empty: synthetic digits");
  args.add("--epochs", &o.epochs, "train: epochs");
  args.add("--save", &o.save, "train: checkpoint folder, written through the engine each epoch");
  args.add("--weights", &o.weights, "the safetensors file train writes and eval/predict read");
  args.add("--conv1", &o.conv1, "train: channels of the first convolution");
  args.add("--conv2", &o.conv2, "train: channels of the second convolution");
  args.add("--hidden", &o.hidden, "train: width of the hidden linear layer");
  args.add("--device", &o.device, "cpu or cuda (default: cuda when a GPU is present and one rank runs)");
  args.add("--index", &o.index, "predict: index of the held-out image (-1: random)");
  args.add("--seed", &o.seed, "predict: seed of the random pick (-1: a fresh one each run)");
  args.add("--png", &o.png, "predict: write the image to this PNG file");
  args.add("--png-scale", &o.png_scale, "predict: PNG pixels per image pixel");
  args.add_switch("--print-config", &o.print_config, "print the built-in default config and exit");
  try {
    std::vector<const char*> rest(argv, argv + argc);
    if (argc > 1 && argv[1][0] != '-') {  // the mode as the first positional argument
      o.mode = argv[1];
      rest.erase(rest.begin() + 1);
    }
    if (!args.parse(int(rest.size()), rest.data())) return 0;
    if (o.print_config) {
      std::printf("%s", kDefaultConfig);
      return 0;
    }
    ZT_CHECK(o.mode == "train" || o.mode == "eval" || o.mode == "predict",
             "expected a mode (train, eval or predict) as the first argument or --mode, got '", o.mode, "'");
    if (o.mode == "eval") return eval(o);
    if (o.mode == "predict") return predict(o);
    zt::MpiRuntime mpi;  // a world of one without mpirun
    return train(o, mpi.world());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zt-mnist: error: %s\n", e.what());
    return 1;
  }
}
