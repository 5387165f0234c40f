// zt-gpt's data: the --data file (byte-level text or nanoGPT-style uint16 tokens) or, with no
// --data, a built-in synthetic English-like text so the sample runs anywhere.
#pragma once
#include <memory>
#include <string>

#include "data/text_dataset.h"

namespace ztgpt {

// A deterministic text of at least min_bytes from a small grammar (the same on every machine).
std::string synthetic_text(size_t min_bytes);

// The dataset of `path`, or the synthetic text when empty; `name` describes which for the header.
std::unique_ptr<zt::TextDataset> load_text_data(const std::string& path, std::string& name);

}  // namespace ztgpt
