// TextDataset: byte-level and uint16 token files, the 90/10 split, shifted windows, seeded
// offsets, short-file errors, and tiny shakespeare when ZT_DATA_DIR is set.
#include <doctest/doctest.h>

#include "data/data_test_util.h"
#include "data/text_dataset.h"

using namespace zt;

namespace {
// Row b of x/y must be windows tokens[o, o+T) and tokens[o+1, o+T+1) for one offset o.
void check_windows(const Batch& batch, const std::vector<uint16_t>& tokens, int64_t B, int64_t T) {
  REQUIRE(batch.input.shape() == Shape{B, T});
  REQUIRE(batch.target.shape() == Shape{B, T});
  CHECK(batch.input.dtype() == DType::i64);
  CHECK(batch.target.dtype() == DType::i64);
  std::vector<int64_t> x = batch.input.to_vector<int64_t>(), y = batch.target.to_vector<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    bool found = false;
    for (size_t o = 0; o + size_t(T) < tokens.size() && !found; ++o) {
      bool match = true;
      for (int64_t t = 0; t < T && match; ++t) {
        match = x[size_t(b * T + t)] == tokens[o + size_t(t)] &&
                y[size_t(b * T + t)] == tokens[o + size_t(t) + 1];
      }
      found = match;
    }
    CHECK_MESSAGE(found, "row " << b << " is not a shifted window of the split");
  }
}
}  // namespace

TEST_CASE("text dataset: byte-level split and shifted random windows") {
  test::TempDir dir;
  std::string text;
  for (int i = 0; i < 20; ++i) text += "line " + std::to_string(i) + ": the quick brown fox\n";
  test::write_file(dir.file("corpus.txt"), text);
  TextDataset ds(dir.file("corpus.txt"));
  CHECK(ds.byte_level());
  CHECK(ds.vocab_size() == 256);
  const int64_t n = int64_t(text.size());
  CHECK(ds.num_tokens(TextSplit::train) == int64_t(double(n) * 0.9));
  CHECK(ds.num_tokens(TextSplit::train) + ds.num_tokens(TextSplit::val) == n);
  CHECK(ds.tokens(TextSplit::train)[0] == uint16_t('l'));
  CHECK(ds.tokens(TextSplit::val).back() == uint16_t('\n'));

  Generator g1(42), g2(42);
  Batch a = ds.get_batch(TextSplit::train, 8, 16, g1);
  Batch b = ds.get_batch(TextSplit::train, 8, 16, g2);
  check_windows(a, ds.tokens(TextSplit::train), 8, 16);
  CHECK(a.input.to_vector<int64_t>() == b.input.to_vector<int64_t>());
  CHECK(g1.offset() == g2.offset());
  CHECK(g1.offset() > 0);
  Batch c = ds.get_batch(TextSplit::train, 8, 16, g1);  // the generator moved on
  CHECK(c.input.to_vector<int64_t>() != a.input.to_vector<int64_t>());
  Batch v = ds.get_batch(TextSplit::val, 2, 10, g1);
  check_windows(v, ds.tokens(TextSplit::val), 2, 10);
  CHECK(ds.decode({104, 105}) == "hi");
}

TEST_CASE("text dataset: uint16 token file (.bin)") {
  test::TempDir dir;
  std::vector<uint16_t> ids;
  for (int i = 0; i < 200; ++i) ids.push_back(uint16_t((i * 37) % 1000 + (i == 5 ? 50000 : 0)));
  std::string bytes;
  for (uint16_t id : ids) bytes += char(id & 0xff), bytes += char(id >> 8);
  test::write_file(dir.file("train.bin"), bytes);
  TextDataset ds(dir.file("train.bin"));
  CHECK_FALSE(ds.byte_level());
  CHECK(ds.vocab_size() == 50000 + 185 + 1);  // id 5 is 5 * 37 + 50000
  CHECK(ds.num_tokens(TextSplit::train) == 180);
  CHECK(ds.tokens(TextSplit::train)[5] == 50185);
  CHECK(ds.tokens(TextSplit::val)[0] == ids[180]);
  Generator gen(1);
  check_windows(ds.get_batch(TextSplit::train, 4, 8, gen), ds.tokens(TextSplit::train), 4, 8);
  CHECK(test::error_message([&] { ds.decode({1}); }).find("token file") != std::string::npos);

  test::write_file(dir.file("odd.bin"), "abc");
  CHECK(test::error_message([&] { TextDataset odd(dir.file("odd.bin")); })
            .find("3 bytes, but uint16 tokens need an even count") != std::string::npos);
}

TEST_CASE("text dataset: short files and missing files are errors") {
  test::TempDir dir;
  test::write_file(dir.file("short.txt"), std::string(100, 'a'));
  TextDataset ds(dir.file("short.txt"));  // 90 train, 10 val tokens
  Generator gen(0);
  CHECK(ds.get_batch(TextSplit::train, 1, 89, gen).input.shape() == Shape{1, 89});
  std::string msg = test::error_message([&] { ds.get_batch(TextSplit::train, 1, 90, gen); });
  CHECK(msg.find("train split") != std::string::npos);
  CHECK(msg.find("has 90 tokens, shorter than block_size + 1 = 91") != std::string::npos);
  msg = test::error_message([&] { ds.get_batch(TextSplit::val, 1, 10, gen); });
  CHECK(msg.find("val split") != std::string::npos);
  CHECK(test::error_message([&] { TextDataset none(dir.file("absent.txt")); }).find("cannot open") !=
        std::string::npos);
  test::write_file(dir.file("one.txt"), "x");
  CHECK(test::error_message([&] { TextDataset one(dir.file("one.txt")); }).find("holds 1 tokens") !=
        std::string::npos);
}

TEST_CASE("text dataset: tiny shakespeare from ZT_DATA_DIR") {
  std::string root = test::data_dir_or_skip("tiny shakespeare ($ZT_DATA_DIR/tinyshakespeare)");
  if (root.empty()) return;
  TextDataset ds(root + "/tinyshakespeare/input.txt");
  const int64_t n = ds.num_tokens(TextSplit::train) + ds.num_tokens(TextSplit::val);
  CHECK(n > 1000000);
  CHECK(ds.num_tokens(TextSplit::train) == int64_t(double(n) * 0.9));
  Generator gen(1337);
  Batch b = ds.get_batch(TextSplit::train, 4, 64, gen);
  CHECK(b.input.shape() == Shape{4, 64});
  std::vector<int64_t> x = b.input.to_vector<int64_t>(), y = b.target.to_vector<int64_t>();
  for (int64_t t = 0; t + 1 < 64; ++t) CHECK(y[size_t(t)] == x[size_t(t + 1)]);
  std::string first = ds.decode(std::vector<int64_t>(ds.tokens(TextSplit::train).begin(),
                                                     ds.tokens(TextSplit::train).begin() + 14));
  CHECK(first == "First Citizen:");
}
