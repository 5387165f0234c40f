// TextDataset: a token stream for language models, nanoGPT style. A ".bin" file holds uint16
// token ids (little-endian, like nanoGPT's train.bin); any other file is text read as bytes
// (vocabulary 256). The stream is split 90 / 10 into train and val; get_batch draws B windows
// at random offsets: x = tokens[o, o+T), y = tokens[o+1, o+T+1).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/generator.h"
#include "data/dataset.h"

namespace zt {

enum class TextSplit { train, val };

struct TextDatasetOptions {
  double train_fraction = 0.9;  // the first int(n * train_fraction) tokens train, the rest val
};

class TextDataset {
 public:
  explicit TextDataset(const std::string& path, TextDatasetOptions options = {});

  // 256 for byte-level text; max token id + 1 for a .bin token file.
  int64_t vocab_size() const { return vocab_size_; }
  bool byte_level() const { return byte_level_; }
  int64_t num_tokens(TextSplit split) const { return int64_t(tokens(split).size()); }
  const std::vector<uint16_t>& tokens(TextSplit split) const {
    return split == TextSplit::train ? train_ : val_;
  }
  const std::string& path() const { return path_; }

  // input and target i64 (B, T), target shifted by one token. Offsets come from gen (Philox
  // with its (seed, offset) state), so the same generator state draws the same batch.
  Batch get_batch(TextSplit split, int64_t batch_size, int64_t block_size, Generator& gen) const;

  // Byte-level text only: the string the ids spell.
  std::string decode(const std::vector<int64_t>& ids) const;

 private:
  std::string path_;
  bool byte_level_ = true;
  int64_t vocab_size_ = 256;
  std::vector<uint16_t> train_;
  std::vector<uint16_t> val_;
};

}  // namespace zt
