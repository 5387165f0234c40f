// MNIST IDX reader and writer. Files are read whole through zlib (which also reads plain files),
// then the header is checked against the exact byte count before any pixel is converted.
#include "data/mnist.h"

#include <zlib.h>

#include <filesystem>

#include "core/factory.h"
#include "core/ops.h"

namespace zt {

namespace {

constexpr int64_t kRows = 28, kCols = 28;

bool file_exists(const std::string& path) { return std::filesystem::is_regular_file(path); }

// The whole (decompressed) content of `path`.
std::vector<uint8_t> read_all(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  ZT_CHECK(f != nullptr, "MNIST: cannot open '", path, "'");
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  for (;;) {
    int got = gzread(f, chunk.data(), unsigned(chunk.size()));
    if (got < 0) {
      int code = 0;
      std::string why = gzerror(f, &code);
      gzclose(f);
      ZT_FAIL("MNIST: '", path, "' is corrupt or truncated (zlib: ", why, ") after ",
              bytes.size(), " decompressed bytes");
    }
    if (got == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
  }
  // A gzip stream cut short reads as a clean end of file with the error set only here.
  int code = 0;
  std::string why = gzerror(f, &code);
  gzclose(f);
  ZT_CHECK(code == Z_OK || code == Z_STREAM_END, "MNIST: '", path,
           "' is corrupt or truncated (zlib: ", why, ")");
  return bytes;
}

uint32_t read_be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) |
         uint32_t(b[at + 3]);
}

// Checks the magic and exact length; returns the dims that follow the magic.
std::vector<uint32_t> parse_header(const std::vector<uint8_t>& b, const std::string& path,
                                   uint32_t magic, size_t ndims, int64_t item_bytes_per_count) {
  // The magic first: a labels file in the images slot should say "swapped", not "truncated".
  const size_t header = 4 + 4 * ndims;
  ZT_CHECK(b.size() >= header || (b.size() >= 4 && read_be32(b, 0) != magic), "MNIST: '", path,
           "' is truncated: expected an IDX header of ", header,
           " bytes but the file holds only ", b.size(), " bytes");
  uint32_t found = read_be32(b, 0);
  ZT_CHECK(found == magic, "MNIST: '", path, "' has magic number ", found, " but expected ", magic,
           magic == kIdxImagesMagic ? " (an images file)" : " (a labels file)",
           found == kIdxImagesMagic || found == kIdxLabelsMagic ? "; images and labels swapped?"
                                                               : "");
  std::vector<uint32_t> dims(ndims);
  for (size_t d = 0; d < ndims; ++d) dims[d] = read_be32(b, 4 + 4 * d);
  const uint64_t expected = header + uint64_t(dims[0]) * uint64_t(item_bytes_per_count);
  ZT_CHECK(b.size() >= expected, "MNIST: '", path, "' is truncated: its header promises ",
           dims[0], " items, ", expected, " bytes in all, but the file holds ", b.size(),
           " bytes");
  ZT_CHECK(b.size() == expected, "MNIST: '", path, "' has ", b.size() - expected,
           " bytes of trailing garbage: its header promises ", dims[0], " items, ", expected,
           " bytes in all, but the file holds ", b.size(), " bytes");
  return dims;
}

Tensor read_images(const std::string& path, const MnistOptions& options) {
  std::vector<uint8_t> b = read_all(path);
  // The dims must be checked before the size: item size depends on rows x cols.
  if (b.size() >= 16 && read_be32(b, 0) == kIdxImagesMagic) {
    uint32_t rows = read_be32(b, 8), cols = read_be32(b, 12);
    ZT_CHECK(rows == kRows && cols == kCols, "MNIST: '", path, "' holds ", rows, "x", cols,
             " images but expected 28x28");
  }
  std::vector<uint32_t> dims = parse_header(b, path, kIdxImagesMagic, 3, kRows * kCols);
  const int64_t n = dims[0];
  Shape shape = options.flatten ? Shape{n, kRows * kCols} : Shape{n, 1, kRows, kCols};
  Tensor images = empty(shape, DType::f32);
  float* out = images.data<float>();  // (N, 784)
  const uint8_t* px = b.data() + 16;
  const float scale = options.normalize ? float(1.0 / (255.0 * kMnistStd)) : 1.0f / 255.0f;
  const float shift = options.normalize ? float(kMnistMean / kMnistStd) : 0.0f;
  for (int64_t i = 0; i < n * kRows * kCols; ++i) out[i] = float(px[i]) * scale - shift;
  return images;
}

Tensor read_labels(const std::string& path) {
  std::vector<uint8_t> b = read_all(path);
  std::vector<uint32_t> dims = parse_header(b, path, kIdxLabelsMagic, 1, 1);
  const int64_t n = dims[0];
  Tensor labels = empty({n}, DType::i64);
  int64_t* out = labels.data<int64_t>();  // (N)
  for (int64_t i = 0; i < n; ++i) {
    uint8_t v = b[size_t(8 + i)];
    ZT_CHECK(v <= 9, "MNIST: '", path, "' has label ", int(v), " at index ", i,
             " but expected a digit 0..9");
    out[i] = v;
  }
  return labels;
}

// <dir>/<name> or <dir>/<name>.gz, or "" when neither exists.
std::string find_file(const std::string& dir, const std::string& name) {
  std::string plain = dir + "/" + name;
  if (file_exists(plain)) return plain;
  if (file_exists(plain + ".gz")) return plain + ".gz";
  return "";
}

bool split_present(const std::string& dir, MnistSplit split) {
  for (const std::string& name : mnist_file_names(split)) {
    if (find_file(dir, name).empty()) return false;
  }
  return true;
}

std::string looked_for(const std::string& dir, const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& name : names) {
    if (!s.empty()) s += ", ";
    s += dir + "/" + name + "[.gz]";
  }
  return s;
}

}  // namespace

std::vector<std::string> mnist_file_names(MnistSplit split) {
  const std::string prefix = split == MnistSplit::train ? "train" : "t10k";
  return {prefix + "-images-idx3-ubyte", prefix + "-labels-idx1-ubyte"};
}

MnistData load_mnist(const std::string& dir, MnistSplit split, MnistOptions options) {
  const std::vector<std::string> names = mnist_file_names(split);
  ZT_CHECK(std::filesystem::is_directory(dir), "MNIST: directory '", dir,
           "' does not exist; expected it to hold ", looked_for(dir, names));
  std::string images_path = find_file(dir, names[0]), labels_path = find_file(dir, names[1]);
  ZT_CHECK(!images_path.empty() && !labels_path.empty(), "MNIST: missing ",
           images_path.empty() ? names[0] : names[1], " in '", dir, "'; looked for ",
           looked_for(dir, names));
  MnistData data{read_images(images_path, options), read_labels(labels_path)};
  ZT_CHECK(data.images.size(0) == data.labels.size(0), "MNIST: '", images_path, "' holds ",
           data.images.size(0), " images but '", labels_path, "' holds ", data.labels.size(0),
           " labels (expected equal counts)");
  return data;
}

MnistSplits split_mnist(const MnistData& data, int64_t n_train) {
  const int64_t n = data.size();
  ZT_CHECK(n_train > 0 && n_train < n, "split_mnist: expected 0 < n_train < ", n,
           " (the dataset size), got ", n_train);
  MnistSplits s;
  s.train = {raw::narrow(data.images, 0, 0, n_train), raw::narrow(data.labels, 0, 0, n_train)};
  s.test = {raw::narrow(data.images, 0, n_train, n - n_train),
            raw::narrow(data.labels, 0, n_train, n - n_train)};
  return s;
}

MnistSplits load_mnist_train_test(const std::string& dir, MnistOptions options) {
  if (split_present(dir, MnistSplit::train)) {
    return {load_mnist(dir, MnistSplit::train, options), load_mnist(dir, MnistSplit::test, options)};
  }
  if (split_present(dir, MnistSplit::test)) {
    MnistData t10k = load_mnist(dir, MnistSplit::test, options);
    // 80 / 20: for the standard 10,000 test images, the first 8,000 and the last 2,000.
    return split_mnist(t10k, t10k.size() * 4 / 5);
  }
  std::vector<std::string> all = mnist_file_names(MnistSplit::train);
  for (const std::string& name : mnist_file_names(MnistSplit::test)) all.push_back(name);
  ZT_FAIL("MNIST: '", dir, "' holds neither the train nor the t10k files; looked for ",
          looked_for(dir, all));
}

void write_idx(const std::string& path, uint32_t magic, const std::vector<uint32_t>& dims,
               const std::vector<uint8_t>& payload, bool gzip) {
  std::vector<uint8_t> bytes;
  auto put32 = [&](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(uint8_t(v >> shift));
  };
  put32(magic);
  for (uint32_t d : dims) put32(d);
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  // "wb" writes gzip, "wbT" writes plain bytes through the same interface.
  gzFile f = gzopen(path.c_str(), gzip ? "wb" : "wbT");
  ZT_CHECK(f != nullptr, "write_idx: cannot open '", path, "' for writing");
  int wrote = bytes.empty() ? 0 : gzwrite(f, bytes.data(), unsigned(bytes.size()));
  int closed = gzclose(f);
  ZT_CHECK(wrote == int(bytes.size()) && closed == Z_OK, "write_idx: writing '", path,
           "' failed: wrote ", wrote, " of ", bytes.size(), " bytes");
}

}  // namespace zt
