// MNIST from the IDX files (plain or .gz), checked byte for byte: magic, dims, exact size,
// image/label counts. Also write_idx, which tests use to create small valid and corrupt files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace zt {

enum class MnistSplit { train, test };  // train-* (60,000) or t10k-* (10,000) files

inline constexpr uint32_t kIdxImagesMagic = 2051;  // 0x00000803: unsigned bytes, 3 dims
inline constexpr uint32_t kIdxLabelsMagic = 2049;  // 0x00000801: unsigned bytes, 1 dim
inline constexpr double kMnistMean = 0.1307;
inline constexpr double kMnistStd = 0.3081;

struct MnistOptions {
  bool flatten = false;   // images (N, 784) instead of (N, 1, 28, 28)
  bool normalize = true;  // (x/255 - 0.1307) / 0.3081; otherwise x/255 in [0, 1]
};

struct MnistData {
  Tensor images;  // f32 (N, 1, 28, 28) or (N, 784)
  Tensor labels;  // i64 (N), values 0..9
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

struct MnistSplits {
  MnistData train;
  MnistData test;
};

// The standard file names of a split: {images, labels}, without ".gz".
std::vector<std::string> mnist_file_names(MnistSplit split);

// Reads <dir>/<name> or <dir>/<name>.gz for the split's two files.
MnistData load_mnist(const std::string& dir, MnistSplit split, MnistOptions options = {});

// The first n_train samples of `data` and the rest, as views (deterministic, no shuffle).
MnistSplits split_mnist(const MnistData& data, int64_t n_train);

// Train and test sets from `dir`: the train-* and t10k-* files when both exist; when only the
// t10k files are there, t10k split 8,000 train (first) / 2,000 test (last).
MnistSplits load_mnist_train_test(const std::string& dir, MnistOptions options = {});

// Writes an IDX file: big-endian magic, then dims, then payload as given (a payload that does
// not match the dims makes a corrupt file on purpose). gzip = true writes it through zlib.
void write_idx(const std::string& path, uint32_t magic, const std::vector<uint32_t>& dims,
               const std::vector<uint8_t>& payload, bool gzip = false);

}  // namespace zt
