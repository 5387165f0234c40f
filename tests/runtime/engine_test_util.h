// Helpers of the engine tests: a small MLP with fixed initial weights, a fixed regression batch
// and configs written inline.
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/generator.h"
#include "core/ops.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "runtime/config.h"

namespace zt::test {

// A temporary file for lines a component prints, read back as text; closed (and deleted) at
// the end of the test.
struct LogFile {
  std::FILE* f = std::tmpfile();
  LogFile() = default;
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;
  ~LogFile() { std::fclose(f); }
  std::string text() const {
    std::fflush(f);
    std::rewind(f);
    std::string s;
    char buf[512];
    while (size_t n = std::fread(buf, 1, sizeof buf, f)) s.append(buf, n);
    return s;
  }
};

// Linear(4, 8) -> ReLU -> Linear(8, 3), the same weights for the same seed.
inline std::shared_ptr<Sequential> small_mlp(uint64_t seed = 7) {
  manual_seed(seed);
  auto m = std::make_shared<Sequential>();
  m->push_back(std::make_shared<Linear>(4, 8));
  m->push_back(std::make_shared<ReLU>());
  m->push_back(std::make_shared<Linear>(8, 3));
  return m;
}

struct Batch {
  Tensor x, y;  // (N, 4), (N, 3)
};

// n samples of a fixed target: y = x @ w + 0.1 for a fixed (4, 3) matrix w.
inline Batch regression_batch(int64_t n, uint64_t seed = 11) {
  Generator gen(seed);
  Tensor x = randn({n, 4}, {}, &gen);
  Tensor w = from_vector<float>({0.5f, -1.f, 0.25f, 1.f, 0.f, -0.5f, 0.75f, 0.5f, 1.f, -0.25f, 0.5f, 0.f}, {4, 3});
  return {x, raw::add(raw::matmul(x, w), 0.1)};
}

inline Config json_config(const std::string& text, int64_t world_size = 1) {
  return parse_config(text, ConfigFormat::json, world_size);
}

// Rows [start, start + n) of t.
inline Tensor rows(const Tensor& t, int64_t start, int64_t n) { return raw::contiguous(raw::narrow(t, 0, start, n)); }

}  // namespace zt::test

namespace zt::test {

struct Labelled {
  Tensor x, y;  // (N, 4) f32, (N) i64 class in [0, 3)
};

// n samples labelled by the arg-max of a fixed linear map (a learnable 3-class problem).
inline Labelled classification_batch(int64_t n, uint64_t seed = 13) {
  Batch b = regression_batch(n, seed);
  return {b.x, raw::argmax(b.y, 1)};
}

}  // namespace zt::test
