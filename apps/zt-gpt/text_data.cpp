// The synthetic default text and the --data loader of zt-gpt (text_data.h).
#include "text_data.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "core/error.h"

namespace ztgpt {

// A deterministic English-like text (a few hundred KiB) from a small grammar: enough structure
// (spelling, word order, punctuation) for a byte-level model to learn within a few hundred steps.
// mt19937_64's raw output is specified by the standard, so the text is the same everywhere.
std::string synthetic_text(size_t min_bytes) {
  const std::vector<std::string> subjects = {
      "the king", "the queen", "a young knight", "my lord", "the old man", "her brother",
      "the fool", "a stranger", "the captain", "our friend", "the duke", "his daughter"};
  const std::vector<std::string> verbs = {"sees", "loves", "follows", "calls", "fears",
                                          "finds", "answers", "remembers", "serves", "greets"};
  const std::vector<std::string> objects = {
      "the castle", "a letter", "the sea", "his sword", "the crown", "a red rose",
      "the night", "her father", "the ship", "a golden ring", "the river", "the city"};
  const std::vector<std::string> tails = {" today", " again", " at dawn", " in silence", "",
                                          " with joy", " in the rain", ""};
  const std::vector<std::string> ends = {".", ".", "!", "?", ";"};
  std::mt19937_64 rng(20240601);
  auto pick = [&rng](const std::vector<std::string>& words) -> const std::string& {
    return words[size_t(rng() % words.size())];
  };
  std::string text;
  while (text.size() < min_bytes) {
    const size_t sentences = 1 + size_t(rng() % 3);
    for (size_t s = 0; s < sentences; ++s) {
      std::string sentence = pick(subjects) + " " + pick(verbs) + " " + pick(objects) + pick(tails);
      sentence[0] = char(sentence[0] - 'a' + 'A');
      text += (s ? " " : "") + sentence + pick(ends);
    }
    text += "\n";
  }
  return text;
}

// The dataset of --data, or the synthetic text (written to a temporary file TextDataset reads).
std::unique_ptr<zt::TextDataset> load_text_data(const std::string& path, std::string& name) {
  if (!path.empty()) {
    name = path;
    return std::make_unique<zt::TextDataset>(path);
  }
  const auto tmp = std::filesystem::temp_directory_path() /
                   ("zt-gpt-synthetic-" + std::to_string(getpid()) + ".txt");
  {
    std::ofstream out(tmp, std::ios::binary);
    out << synthetic_text(300000);
    ZT_CHECK(out.good(), "zt-gpt: cannot write the synthetic text to '", tmp.string(), "'");
  }
  std::unique_ptr<zt::TextDataset> data;
  try {
    data = std::make_unique<zt::TextDataset>(tmp.string());
  } catch (...) {
    std::filesystem::remove(tmp);
    throw;
  }
  std::filesystem::remove(tmp);
  name = "built-in synthetic text";
  return data;
}

}  // namespace ztgpt
