// MNIST IDX reader: small valid files written by the test (plain and .gz), every corrupt case
// with its message, the t10k 8,000 / 2,000 split, and the real files when ZT_DATA_DIR is set.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "data/data_test_util.h"
#include "data/mnist.h"

using namespace zt;
using test::error_message;

namespace {
constexpr uint32_t kPixels = 28 * 28;

// Image i has pixel p = (i * 7 + p) % 256, so any mix-up of images or pixels shows.
std::vector<uint8_t> pixels(uint32_t n) {
  std::vector<uint8_t> px(n * kPixels);
  for (uint32_t i = 0; i < n; ++i) {
    for (uint32_t p = 0; p < kPixels; ++p) px[i * kPixels + p] = uint8_t((i * 7 + p) % 256);
  }
  return px;
}

std::vector<uint8_t> labels(uint32_t n) {
  std::vector<uint8_t> l(n);
  for (uint32_t i = 0; i < n; ++i) l[i] = uint8_t((i * 3) % 10);
  return l;
}

// Writes a valid split of n samples into dir.
void write_split(const std::string& dir, MnistSplit split, uint32_t n, bool gzip) {
  auto names = mnist_file_names(split);
  std::string ext = gzip ? ".gz" : "";
  write_idx(dir + "/" + names[0] + ext, kIdxImagesMagic, {n, 28, 28}, pixels(n), gzip);
  write_idx(dir + "/" + names[1] + ext, kIdxLabelsMagic, {n}, labels(n), gzip);
}

bool contains(const std::string& haystack, const std::string& needle) {
  if (haystack.find(needle) != std::string::npos) return true;
  MESSAGE("message \"" << haystack << "\" does not contain \"" << needle << "\"");
  return false;
}

void check_values(const MnistData& d, uint32_t n, bool normalized) {
  REQUIRE(d.size() == int64_t(n));
  std::vector<float> img = d.images.to_vector<float>();
  std::vector<int64_t> lab = d.labels.to_vector<int64_t>();
  std::vector<uint8_t> px = pixels(n), l = labels(n);
  for (size_t i = 0; i < img.size(); ++i) {
    double want = px[i] / 255.0;
    if (normalized) want = (want - 0.1307) / 0.3081;
    if (std::fabs(img[i] - want) > 1e-5) {
      FAIL_CHECK("pixel " << i << ": got " << img[i] << ", expected " << want);
      return;
    }
  }
  for (uint32_t i = 0; i < n; ++i) CHECK(lab[i] == l[i]);
}
}  // namespace

TEST_CASE("MNIST reads plain and gzip IDX files") {
  for (bool gzip : {false, true}) {
    CAPTURE(gzip);
    test::TempDir dir;
    write_split(dir.str(), MnistSplit::test, 5, gzip);
    // write_idx really writes the format asked for: gzip magic 1f 8b, or the raw IDX bytes.
    std::string written = test::read_file(dir.file(gzip ? "t10k-labels-idx1-ubyte.gz"
                                                        : "t10k-labels-idx1-ubyte"));
    if (gzip) {
      CHECK(written.substr(0, 2) == std::string("\x1f\x8b"));
    } else {
      CHECK(written == std::string("\0\0\x08\x01\0\0\0\x05\0\x03\x06\x09\x02", 13));
    }
    MnistData d = load_mnist(dir.str(), MnistSplit::test);
    CHECK(d.images.shape() == Shape{5, 1, 28, 28});
    CHECK(d.images.dtype() == DType::f32);
    CHECK(d.labels.shape() == Shape{5});
    CHECK(d.labels.dtype() == DType::i64);
    check_values(d, 5, true);
    // Pixel 255 normalises to (1 - 0.1307) / 0.3081 = 2.821486...; image 0 pixel 255 is 255.
    CHECK(d.images.to_vector<float>()[255] == doctest::Approx(2.8214865).epsilon(1e-6));

    MnistOptions raw;
    raw.flatten = true;
    raw.normalize = false;
    MnistData f = load_mnist(dir.str(), MnistSplit::test, raw);
    CHECK(f.images.shape() == Shape{5, 784});
    check_values(f, 5, false);
  }
}

TEST_CASE("MNIST reads a mix of plain and .gz files, and the train split names") {
  test::TempDir dir;
  write_idx(dir.file("train-images-idx3-ubyte.gz"), kIdxImagesMagic, {4, 28, 28}, pixels(4), true);
  write_idx(dir.file("train-labels-idx1-ubyte"), kIdxLabelsMagic, {4}, labels(4), false);
  MnistData d = load_mnist(dir.str(), MnistSplit::train);
  check_values(d, 4, true);
}

TEST_CASE("MNIST train/test: t10k alone splits 80/20, both splits load as they are") {
  test::TempDir dir;
  write_split(dir.str(), MnistSplit::test, 10, true);
  MnistSplits s = load_mnist_train_test(dir.str());
  CHECK(s.train.size() == 8);
  CHECK(s.test.size() == 2);
  std::vector<uint8_t> l = labels(10);
  CHECK(s.test.labels.to_vector<int64_t>() == std::vector<int64_t>{l[8], l[9]});
  CHECK(s.train.labels.to_vector<int64_t>()[7] == l[7]);
  // The first test image is image 8 of the file.
  std::vector<uint8_t> px = pixels(10);
  CHECK(s.test.images.to_vector<float>()[0] ==
        doctest::Approx((px[8 * kPixels] / 255.0 - 0.1307) / 0.3081));

  write_split(dir.str(), MnistSplit::train, 6, false);
  MnistSplits both = load_mnist_train_test(dir.str());
  CHECK(both.train.size() == 6);
  CHECK(both.test.size() == 10);

  CHECK(contains(error_message([&] { split_mnist(s.train, 8); }), "0 < n_train < 8"));
}

TEST_CASE("MNIST missing directory or files name what was looked for") {
  test::TempDir dir;
  std::string missing = dir.file("nope");
  std::string msg = error_message([&] { load_mnist(missing, MnistSplit::test); });
  CHECK(contains(msg, "does not exist"));
  CHECK(contains(msg, "t10k-images-idx3-ubyte"));
  CHECK(contains(msg, "t10k-labels-idx1-ubyte"));

  write_idx(dir.file("t10k-images-idx3-ubyte"), kIdxImagesMagic, {2, 28, 28}, pixels(2));
  msg = error_message([&] { load_mnist(dir.str(), MnistSplit::test); });
  CHECK(contains(msg, "missing t10k-labels-idx1-ubyte"));
  CHECK(contains(msg, "[.gz]"));

  test::TempDir empty_dir;
  msg = error_message([&] { load_mnist_train_test(empty_dir.str()); });
  CHECK(contains(msg, "neither the train nor the t10k files"));
  CHECK(contains(msg, "train-labels-idx1-ubyte"));
  CHECK(contains(msg, "t10k-images-idx3-ubyte"));
}

// The error from loading a t10k directory with valid labels (3) after `write(images, labels)`.
static std::string corrupt_message(bool gzip,
                            const std::function<void(const std::string&, const std::string&)>& write) {
  test::TempDir dir;
  const std::string ext = gzip ? ".gz" : "";
  const std::string images = dir.file("t10k-images-idx3-ubyte" + ext);
  const std::string labels_path = dir.file("t10k-labels-idx1-ubyte" + ext);
  write_idx(labels_path, kIdxLabelsMagic, {3}, labels(3), gzip);
  write(images, labels_path);
  return error_message([&] { load_mnist(dir.str(), MnistSplit::test); });
}

TEST_CASE("MNIST corrupt files give errors naming the problem") {
  for (bool gzip : {false, true}) {
    CAPTURE(gzip);
    std::string msg = corrupt_message(gzip, [&](const std::string& images, const std::string&) {
      std::vector<uint8_t> px = pixels(3);
      px.erase(px.end() - 100, px.end());
      write_idx(images, kIdxImagesMagic, {3, 28, 28}, px, gzip);
    });
    CHECK(contains(msg, "t10k-images-idx3-ubyte"));
    CHECK(contains(msg, "truncated"));
    CHECK(contains(msg, std::to_string(16 + 3 * kPixels) + " bytes in all"));  // expected
    CHECK(contains(msg, "holds " + std::to_string(16 + 3 * kPixels - 100)));   // actual

    msg = corrupt_message(gzip, [&](const std::string& images, const std::string&) {
      write_idx(images, kIdxImagesMagic, {3}, {}, gzip);
    });
    CHECK(contains(msg, "truncated"));
    CHECK(contains(msg, "header of 16 bytes"));

    msg = corrupt_message(gzip, [&](const std::string& images, const std::string&) {
      std::vector<uint8_t> px = pixels(3);
      px.insert(px.end(), {1, 2, 3});
      write_idx(images, kIdxImagesMagic, {3, 28, 28}, px, gzip);
    });
    CHECK(contains(msg, "3 bytes of trailing garbage"));
    CHECK(contains(msg, "t10k-images-idx3-ubyte"));

    msg = corrupt_message(gzip, [&](const std::string& images, const std::string&) {
      write_idx(images, 1234, {3, 28, 28}, pixels(3), gzip);
    });
    CHECK(contains(msg, "magic number 1234 but expected 2051"));

    msg = corrupt_message(gzip, [&](const std::string& images, const std::string&) {
      write_idx(images, kIdxLabelsMagic, {3}, labels(3), gzip);
    });
    CHECK(contains(msg, "swapped"));

    msg = corrupt_message(gzip, [&](const std::string& images, const std::string&) {
      write_idx(images, kIdxImagesMagic, {3, 28, 27}, std::vector<uint8_t>(3 * 28 * 27), gzip);
    });
    CHECK(contains(msg, "holds 28x27 images but expected 28x28"));

    msg = corrupt_message(gzip, [&](const std::string& images, const std::string&) {
      write_idx(images, kIdxImagesMagic, {4, 28, 28}, pixels(4), gzip);
    });
    CHECK(contains(msg, "holds 4 images"));
    CHECK(contains(msg, "holds 3 labels"));

    msg = corrupt_message(gzip, [&](const std::string& images, const std::string& labels_path) {
      write_idx(images, kIdxImagesMagic, {3, 28, 28}, pixels(3), gzip);
      write_idx(labels_path, kIdxLabelsMagic, {3}, {1, 10, 2}, gzip);
    });
    CHECK(contains(msg, "label 10 at index 1"));

    msg = corrupt_message(gzip, [&](const std::string& images, const std::string& labels_path) {
      write_idx(images, kIdxImagesMagic, {3, 28, 28}, pixels(3), gzip);
      write_idx(labels_path, kIdxLabelsMagic, {3}, {1, 2}, gzip);
    });
    CHECK(contains(msg, "t10k-labels-idx1-ubyte"));
    CHECK(contains(msg, "truncated"));
  }
}

TEST_CASE("MNIST truncated gzip stream is an error, not a short read") {
  test::TempDir dir;
  write_idx(dir.file("t10k-labels-idx1-ubyte"), kIdxLabelsMagic, {3}, labels(3));
  const std::string images = dir.file("t10k-images-idx3-ubyte.gz");
  write_idx(images, kIdxImagesMagic, {3, 28, 28}, pixels(3), true);
  std::string bytes = test::read_file(images);
  test::write_file(images, bytes.substr(0, bytes.size() / 2));
  std::string msg = error_message([&] { load_mnist(dir.str(), MnistSplit::test); });
  CHECK(contains(msg, "t10k-images-idx3-ubyte.gz"));
  CHECK((contains(msg, "corrupt or truncated") || contains(msg, "truncated")));
}

TEST_CASE("MNIST real t10k files from ZT_DATA_DIR") {
  std::string root = test::data_dir_or_skip("the real MNIST files ($ZT_DATA_DIR/mnist)");
  if (root.empty()) return;
  MnistSplits s = load_mnist_train_test(root + "/mnist");
  MnistData all = load_mnist(root + "/mnist", MnistSplit::test);
  CHECK(all.size() == 10000);
  CHECK(s.train.size() == 8000);
  CHECK(s.test.size() == 2000);
  CHECK(s.train.images.shape() == Shape{8000, 1, 28, 28});
  for (const MnistData* d : {&s.train, &s.test}) {
    std::vector<int64_t> lab = d->labels.to_vector<int64_t>();
    std::vector<int64_t> counts(10, 0);
    for (int64_t l : lab) {
      REQUIRE(l >= 0);
      REQUIRE(l <= 9);
      ++counts[size_t(l)];
    }
    for (int64_t c : counts) CHECK(c > int64_t(lab.size()) / 20);  // every digit is common
  }
  // Normalised with the training-set statistics, the test images have mean ~0 and std ~1.
  std::vector<float> px = all.images.to_vector<float>();
  double mean = 0, sq = 0;
  for (float v : px) mean += v, sq += double(v) * v;
  mean /= double(px.size());
  double stddev = std::sqrt(sq / double(px.size()) - mean * mean);
  MESSAGE("t10k normalised pixel mean " << mean << ", std " << stddev);
  CHECK(std::fabs(mean) < 0.05);
  CHECK(std::fabs(stddev - 1.0) < 0.05);
  // The split is the first 8,000 and last 2,000 labels of the file.
  std::vector<int64_t> every = all.labels.to_vector<int64_t>();
  CHECK(s.test.labels.to_vector<int64_t>() ==
        std::vector<int64_t>(every.begin() + 8000, every.end()));
}
