// TextDataset: file reading (bytes or uint16 tokens), the train/val split and random windows.
#include "data/text_dataset.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include "core/factory.h"
#include "core/philox.h"

namespace zt {

namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ZT_CHECK(in.good(), "TextDataset: cannot open '", path, "'");
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

TextDataset::TextDataset(const std::string& path, TextDatasetOptions options) : path_(path) {
  ZT_CHECK(options.train_fraction > 0.0 && options.train_fraction < 1.0,
           "TextDataset: expected 0 < train_fraction < 1, got ", options.train_fraction);
  std::vector<uint8_t> bytes = read_bytes(path);
  std::vector<uint16_t> all;
  byte_level_ = !ends_with(path, ".bin");
  if (byte_level_) {
    all.assign(bytes.begin(), bytes.end());
    vocab_size_ = 256;
  } else {
    ZT_CHECK(bytes.size() % 2 == 0, "TextDataset: token file '", path, "' has ", bytes.size(),
             " bytes, but uint16 tokens need an even count");
    all.resize(bytes.size() / 2);
    for (size_t i = 0; i < all.size(); ++i) {
      all[i] = uint16_t(bytes[2 * i] | (uint16_t(bytes[2 * i + 1]) << 8));  // little-endian
    }
    vocab_size_ = all.empty() ? 0 : int64_t(*std::max_element(all.begin(), all.end())) + 1;
  }
  ZT_CHECK(all.size() >= 2, "TextDataset: '", path, "' holds ", all.size(),
           " tokens; expected at least 2 (one train and one val)");
  size_t n_train = std::clamp<size_t>(size_t(double(all.size()) * options.train_fraction), 1,
                                      all.size() - 1);
  train_.assign(all.begin(), all.begin() + n_train);
  val_.assign(all.begin() + n_train, all.end());
}

Batch TextDataset::get_batch(TextSplit split, int64_t batch_size, int64_t block_size,
                             Generator& gen) const {
  const std::vector<uint16_t>& data = tokens(split);
  const char* name = split == TextSplit::train ? "train" : "val";
  ZT_CHECK(batch_size >= 1 && block_size >= 1, "TextDataset::get_batch: expected batch and block ",
           "sizes >= 1, got B=", batch_size, " T=", block_size);
  const int64_t n = int64_t(data.size());
  ZT_CHECK(n >= block_size + 1, "TextDataset: the ", name, " split of '", path_, "' has ", n,
           " tokens, shorter than block_size + 1 = ", block_size + 1,
           " (a window of T inputs needs T + 1 tokens)");
  // One Philox counter per row: 64 random bits from two lanes pick the window's start.
  const uint64_t start = gen.reserve(uint64_t(batch_size) * 4);
  const uint64_t choices = uint64_t(n - block_size);
  Tensor x = empty({batch_size, block_size}, DType::i64);
  Tensor y = empty({batch_size, block_size}, DType::i64);
  int64_t* xs = x.data<int64_t>();  // (B, T)
  int64_t* ys = y.data<int64_t>();  // (B, T)
  for (int64_t b = 0; b < batch_size; ++b) {
    philox::Uint4 r = philox::philox4x32(gen.seed(), start + uint64_t(b));
    const uint64_t bits = (uint64_t(r.x) << 32) | r.y;
    const int64_t offset = int64_t(bits % choices);
    for (int64_t t = 0; t < block_size; ++t) {
      xs[b * block_size + t] = data[size_t(offset + t)];
      ys[b * block_size + t] = data[size_t(offset + t + 1)];
    }
  }
  return {x, y};
}

std::string TextDataset::decode(const std::vector<int64_t>& ids) const {
  ZT_CHECK(byte_level_, "TextDataset::decode: '", path_,
           "' is a token file; only byte-level text can be decoded here");
  std::string s;
  s.reserve(ids.size());
  for (int64_t id : ids) {
    ZT_CHECK(id >= 0 && id < 256, "TextDataset::decode: id ", id, " is not a byte (0..255)");
    s.push_back(char(uint8_t(id)));
  }
  return s;
}

}  // namespace zt
