// zt-mnist end to end: train / eval / predict on the built-in synthetic digits, the default
// config kept equal to configs/mnist_ds_config.json, real MNIST under mpirun (with ZT_DATA_DIR),
// the PNG it writes, and corrupt IDX input.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "apps/app_runner.h"
#include "apps/mpi_runner.h"
#include "data/mnist.h"

using zt::test::number_after;
using zt::test::run_app;

namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

uint32_t be32(const std::string& b, size_t at) {
  return uint32_t(uint8_t(b[at])) << 24 | uint32_t(uint8_t(b[at + 1])) << 16 | uint32_t(uint8_t(b[at + 2])) << 8 |
         uint32_t(uint8_t(b[at + 3]));
}

// A PNG's signature, its IHDR chunk right after it and the image size IHDR declares.
void check_png(const fs::path& path, uint32_t side) {
  const std::string b = slurp(path);
  REQUIRE(b.size() > 33);
  CHECK(b.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(be32(b, 8) == 13);  // IHDR data length
  CHECK(b.substr(12, 4) == "IHDR");
  CHECK(be32(b, 16) == side);
  CHECK(be32(b, 20) == side);
  CHECK(b.substr(b.size() - 8, 4) == "IEND");
}

// The digit after "predicted: " in predict's output, or -1.
int predicted_label(const std::string& out) {
  const auto pos = out.find("predicted: ");
  if (pos == std::string::npos) return -1;
  const char c = out[pos + 11];
  return c >= '0' && c <= '9' ? c - '0' : -1;
}

}  // namespace

TEST_CASE("zt-mnist --help lists its modes and flags") {
  auto r = run_app("zt-mnist", "--help");
  CHECK(r.exit_code == 0);
  for (const char* word : {"train", "eval", "predict", "--config", "--data", "--epochs", "--save", "--weights",
                           "--index", "--png"})
    CHECK_MESSAGE(r.output.find(word) != std::string::npos, word);
}

TEST_CASE("zt-mnist's built-in default config equals configs/mnist_ds_config.json") {
  const char* src = std::getenv("ZT_SOURCE_DIR");
  REQUIRE_MESSAGE(src != nullptr, "ZT_SOURCE_DIR is set by CTest");
  auto r = run_app("zt-mnist", "--print-config");
  REQUIRE(r.exit_code == 0);
  const auto file = nlohmann::json::parse(slurp(fs::path(src) / "configs/mnist_ds_config.json"));
  CHECK(nlohmann::json::parse(r.output) == file);
  CHECK(file["train_batch_size"] == 128);
  CHECK(file["zero_optimization"]["stage"] == 2);
}

TEST_CASE("zt-mnist trains on the synthetic digits, then eval and predict agree with it") {
  const fs::path dir = fresh_dir("zt_mnist_synthetic");
  const std::string weights = (dir / "w.safetensors").string();
  auto train = run_app("zt-mnist", "train --epochs 2 --save " + (dir / "ck").string() + " --weights " + weights);
  REQUIRE_MESSAGE(train.exit_code == 0, train.output);
  CHECK(train.output.find("epoch 1/2 | loss ") != std::string::npos);
  CHECK(train.output.find("synthetic digits") != std::string::npos);
  const double accuracy = number_after(train.output, "test accuracy: ");
  CHECK_MESSAGE(accuracy > 60.0, train.output);  // chance is 10%
  CHECK(fs::is_directory(dir / "ck" / "epoch1"));
  CHECK(fs::is_directory(dir / "ck" / "epoch2"));
  CHECK(slurp(dir / "ck" / "latest").find("epoch2") != std::string::npos);
  REQUIRE(fs::exists(weights));

  auto eval = run_app("zt-mnist", "eval --weights " + weights);
  REQUIRE_MESSAGE(eval.exit_code == 0, eval.output);
  CHECK(number_after(eval.output, "test accuracy: ") == doctest::Approx(accuracy).epsilon(1e-9));

  const fs::path png = dir / "digit.png";
  auto predict = run_app("zt-mnist", "predict --weights " + weights + " --index 3 --png " + png.string());
  REQUIRE_MESSAGE(predict.exit_code == 0, predict.output);
  CHECK(predicted_label(predict.output) >= 0);
  CHECK(predict.output.find("true label: ") != std::string::npos);
  CHECK(predict.output.find("@@") != std::string::npos);  // the drawing has full-ink pixels
  check_png(png, 28 * 8);

  // A random pick is reproducible with --seed.
  auto a = run_app("zt-mnist", "--mode predict --weights " + weights + " --seed 7");
  auto b = run_app("zt-mnist", "--mode predict --weights " + weights + " --seed 7");
  REQUIRE(a.exit_code == 0);
  CHECK(a.output == b.output);
}

TEST_CASE("zt-mnist reaches 95% on real MNIST in 3 epochs under mpirun -np 2") {
  const char* data_root = std::getenv("ZT_DATA_DIR");
  const char* src = std::getenv("ZT_SOURCE_DIR");
  if (!data_root || !src) {
    MESSAGE("ZT_DATA_DIR is unset: skipping the real-MNIST run");
    return;
  }
  const std::string data = std::string(data_root) + "/mnist";
  const fs::path dir = fresh_dir("zt_mnist_real");
  const std::string weights = (dir / "w.safetensors").string();
  const auto t = zt::test::run_command(zt::test::mpirun_prefix(2) + " " + zt::test::bin_dir() +
                                       "/zt-mnist train --config " + src + "/configs/mnist_ci_config.json --data " +
                                       data + " --epochs 3 --save " + (dir / "ck").string() + " --weights " + weights);
  REQUIRE_MESSAGE(t.run.exit_code == 0, t.run.output);
  MESSAGE("zt-mnist train under mpirun -np 2 took " << t.seconds << " s");
  CHECK(t.run.output.find("data parallel: 2 ranks x 32 images per step") != std::string::npos);
  CHECK(t.run.output.find("8000 train / 2000 held-out") != std::string::npos);
  const double accuracy = number_after(t.run.output, "test accuracy: ");
  CHECK_MESSAGE(accuracy >= 95.0, t.run.output);
  CHECK(t.seconds < 90.0);

  auto eval = run_app("zt-mnist", "eval --data " + data + " --weights " + weights);
  REQUIRE_MESSAGE(eval.exit_code == 0, eval.output);
  CHECK(eval.output.find("test accuracy: ") != std::string::npos);
  CHECK(number_after(eval.output, "test accuracy: ") == doctest::Approx(accuracy).epsilon(1e-9));

  const fs::path png = dir / "digit.png";
  auto predict = run_app("zt-mnist", "predict --data " + data + " --weights " + weights +
                                         " --seed 1 --png-scale 4 --png " + png.string());
  REQUIRE_MESSAGE(predict.exit_code == 0, predict.output);
  CHECK(predicted_label(predict.output) >= 0);
  check_png(png, 28 * 4);
}

TEST_CASE("zt-mnist reports corrupt IDX input clearly") {
  const fs::path dir = fresh_dir("zt_mnist_corrupt");
  const std::vector<uint8_t> pixels(6 * 28 * 28, 0), labels = {0, 1, 2, 3, 4, 5};
  auto write = [&](uint32_t image_magic, const std::vector<uint8_t>& image_bytes, uint32_t label_count) {
    zt::write_idx((dir / "t10k-images-idx3-ubyte").string(), image_magic, {6, 28, 28}, image_bytes);
    zt::write_idx((dir / "t10k-labels-idx1-ubyte").string(), zt::kIdxLabelsMagic, {label_count},
                  std::vector<uint8_t>(labels.begin(), labels.begin() + label_count));
  };
  auto train = [&] { return run_app("zt-mnist", "train --epochs 1 --data " + dir.string()); };

  write(zt::kIdxImagesMagic, std::vector<uint8_t>(pixels.begin(), pixels.end() - 100), 6);  // truncated
  auto truncated = train();
  CHECK(truncated.exit_code != 0);
  CHECK_MESSAGE(truncated.output.find("zt-mnist: error: MNIST:") != std::string::npos, truncated.output);
  CHECK(truncated.output.find("is truncated") != std::string::npos);

  write(1234, pixels, 6);  // wrong magic
  auto magic = train();
  CHECK(magic.exit_code != 0);
  CHECK_MESSAGE(magic.output.find("has magic number 1234 but expected 2051") != std::string::npos, magic.output);

  write(zt::kIdxImagesMagic, pixels, 5);  // 6 images, 5 labels
  auto mismatch = train();
  CHECK(mismatch.exit_code != 0);
  CHECK_MESSAGE(mismatch.output.find("holds 6 images but") != std::string::npos, mismatch.output);
  CHECK(mismatch.output.find("holds 5 labels") != std::string::npos);

  auto eval = run_app("zt-mnist", "eval --data " + dir.string() + " --weights " + (dir / "none.safetensors").string());
  CHECK(eval.exit_code != 0);
  CHECK(eval.output.find("none.safetensors") != std::string::npos);

  auto no_mode = run_app("zt-mnist", "--epochs 1");
  CHECK(no_mode.exit_code != 0);
  CHECK(no_mode.output.find("expected a mode (train, eval or predict)") != std::string::npos);
}

TEST_CASE("zt-mnist trains, evaluates and saves whole weights at ZeRO stage 3 under mpirun -np 2") {
  // Persistence threshold 0: every layer is partitioned, so the held-out evaluation and the
  // weights file both need every rank's gather (a rank-0-only evaluation would hang).
  const fs::path dir = fresh_dir("zt_mnist_zero3");
  const fs::path config = dir / "zero3.json";
  {
    std::ofstream out(config);
    out << R"({"train_batch_size": 64, "seed": 1234,
               "optimizer": {"type": "Adam", "params": {"lr": 0.001}},
               "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}})";
  }
  const std::string weights = (dir / "w.safetensors").string();
  const auto t = zt::test::run_command(zt::test::mpirun_prefix(2) + " " + zt::test::bin_dir() +
                                       "/zt-mnist train --device cpu --config " + config.string() +
                                       " --epochs 1 --weights " + weights);
  REQUIRE_MESSAGE(t.run.exit_code == 0, t.run.output);
  CHECK(t.run.output.find("ZeRO stage 3") != std::string::npos);
  const double trained = number_after(t.run.output, "held-out accuracy ");
  auto e = run_app("zt-mnist", "eval --device cpu --weights " + weights);
  REQUIRE_MESSAGE(e.exit_code == 0, e.output);
  // The weights file holds the whole model: a single process evaluates it to the same accuracy.
  CHECK(number_after(e.output, "test accuracy: ") == doctest::Approx(trained).epsilon(1e-6));
  fs::remove_all(dir);
}
