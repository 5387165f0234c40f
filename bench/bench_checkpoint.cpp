// Checkpoint speed: Engine::save_checkpoint and load_checkpoint of a model with Adam state,
// as bytes written/read per second beside a plain sequential file write of the same bytes in
// the same run (the disk's ceiling for this access pattern).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "runtime/args.h"
#include "runtime/config.h"
#include "runtime/engine.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

uint64_t directory_bytes(const fs::path& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

// The reference: one sequential write of `bytes` with an fsync, as the checkpoint writer does.
double plain_write_seconds(const fs::path& path, uint64_t bytes) {
  std::vector<char> block(size_t(64) << 20, 1);
  const auto t0 = Clock::now();
  {
    std::ofstream out(path, std::ios::binary);
    for (uint64_t left = bytes; left > 0;) {
      const size_t n = size_t(std::min<uint64_t>(left, block.size()));
      out.write(block.data(), std::streamsize(n));
      left -= n;
    }
  }
  std::FILE* f = std::fopen(path.c_str(), "rb+");
  if (f) {
    std::fflush(f);
    fsync(fileno(f));
    std::fclose(f);
  }
  const double t = seconds_since(t0);
  fs::remove(path);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t width = 2048, layers = 4;
  std::string device_name = zt::has_backend(zt::DeviceType::CUDA) ? "cuda" : "cpu";
  std::string dir = (fs::temp_directory_path() / "zt_bench_checkpoint").string();
  zt::ArgParser args("bench_checkpoint",
                     "Times Engine::save_checkpoint / load_checkpoint of an MLP (layers x width^2\n"
                     "parameters) with Adam state, beside a plain sequential file write.");
  args.add("--width", &width, "width of each square Linear layer");
  args.add("--layers", &layers, "number of Linear layers");
  args.add("--device", &device_name, "cpu or cuda");
  args.add("--dir", &dir, "scratch directory (removed afterwards)");
  try {
    if (!args.parse(argc, argv)) return 0;
    const zt::Device device = zt::Device::parse(device_name);
    auto model = std::make_shared<zt::Sequential>();
    for (int64_t i = 0; i < layers; ++i) model->push_back(std::make_shared<zt::Linear>(width, width));
    model->to(device);
    const nlohmann::json defaults = {{"train_batch_size", 8},
                                     {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 1e-3}}}}}};
    zt::InitOptions init;
    init.monitor = false;
    auto engine = zt::initialize(model, zt::config_from_app_defaults(defaults, {}), init);
    zt::Tensor x = zt::raw::to(zt::randn({8, width}), device);
    engine->backward(zt::mean(zt::square(engine->forward(x))));
    engine->step();  // Adam state exists from here

    fs::remove_all(dir);
    auto t0 = Clock::now();
    engine->save_checkpoint(dir, "bench");
    const double save_s = seconds_since(t0);
    const uint64_t bytes = directory_bytes(dir);
    t0 = Clock::now();
    engine->load_checkpoint(dir, "bench");
    const double load_s = seconds_since(t0);
    const double ref_s = plain_write_seconds(fs::path(dir) / "plain_write.bin", bytes);
    fs::remove_all(dir);

    const double mb = double(bytes) / 1e6;
    std::printf("model %lld parameters on %s, checkpoint %.1f MB (weights + Adam moments)\n",
                (long long)model->num_parameters(), device.str().c_str(), mb);
    std::printf("save_checkpoint  %8.3f s  %8.1f MB/s  (plain sequential write + fsync %.1f MB/s: %.0f%%)\n",
                save_s, mb / save_s, mb / ref_s, 100.0 * ref_s / save_s);
    std::printf("load_checkpoint  %8.3f s  %8.1f MB/s\n", load_s, mb / load_s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_checkpoint: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
