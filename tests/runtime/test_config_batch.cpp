// The batch-size rule: train_batch_size = micro x accumulation x data-parallel size. Every
// derivation DeepSpeed makes (any two imply the third; one alone means no accumulation), the
// source recorded for each value, and every error message with its terms.
#include <doctest/doctest.h>

#include "core/error.h"
#include "runtime/config.h"

namespace {

struct Batch {
  int64_t train, micro, accum;
  zt::ValueSource train_src, micro_src, accum_src;
};

Batch resolve(const std::string& json, int64_t world) {
  const zt::Config c = zt::parse_config(json, zt::ConfigFormat::json, world);
  return {c.train_batch_size, c.train_micro_batch_size_per_gpu, c.gradient_accumulation_steps,
          c.setting("train_batch_size").source, c.setting("train_micro_batch_size_per_gpu").source,
          c.setting("gradient_accumulation_steps").source};
}

std::string error_of(const std::string& json, int64_t world) {
  try {
    zt::parse_config(json, zt::ConfigFormat::json, world);
  } catch (const zt::Error& e) {
    return e.what();
  }
  return "";
}

using S = zt::ValueSource;

}  // namespace

TEST_CASE("batch: all three given and consistent") {
  const Batch b = resolve(
      R"({"train_batch_size": 64, "train_micro_batch_size_per_gpu": 8, "gradient_accumulation_steps": 2})", 4);
  CHECK(b.train == 64);
  CHECK(b.micro == 8);
  CHECK(b.accum == 2);
  CHECK(b.train_src == S::config);
  CHECK(b.micro_src == S::config);
  CHECK(b.accum_src == S::config);
}

TEST_CASE("batch: all three given and inconsistent shows every term and its source") {
  const std::string e = error_of(
      R"({"train_batch_size": 64, "train_micro_batch_size_per_gpu": 8, "gradient_accumulation_steps": 2})", 2);
  CHECK(e.find("<config>: train_batch_size 64 (config) != train_micro_batch_size_per_gpu 8 (config) x "
               "gradient_accumulation_steps 2 (config) x data-parallel size 2 (world) = 32") == 0);
}

TEST_CASE("batch: train and micro imply accumulation") {
  const Batch b = resolve(R"({"train_batch_size": 96, "train_micro_batch_size_per_gpu": 4})", 3);
  CHECK(b.accum == 8);  // 96 / (4 x 3)
  CHECK(b.accum_src == S::derived);
  CHECK(b.train_src == S::config);
  const std::string e = error_of(R"({"train_batch_size": 100, "train_micro_batch_size_per_gpu": 8})", 2);
  CHECK(e.find("train_batch_size 100 (config) is not a multiple of train_micro_batch_size_per_gpu 8 "
               "(config) x data-parallel size 2 (world) = 16, so gradient_accumulation_steps cannot "
               "be derived") != std::string::npos);
  // A global batch smaller than one micro-batch per rank cannot be split either.
  const std::string small = error_of(R"({"train_batch_size": 8, "train_micro_batch_size_per_gpu": 8})", 2);
  CHECK(small.find("train_batch_size 8 (config) is not a multiple of train_micro_batch_size_per_gpu 8") !=
        std::string::npos);
}

TEST_CASE("batch: train and accumulation imply micro") {
  const Batch b = resolve(R"({"train_batch_size": 96, "gradient_accumulation_steps": 4})", 2);
  CHECK(b.micro == 12);  // 96 / (4 x 2)
  CHECK(b.micro_src == S::derived);
  const std::string e = error_of(R"({"train_batch_size": 30, "gradient_accumulation_steps": 4})", 2);
  CHECK(e.find("train_batch_size 30 (config) is not a multiple of gradient_accumulation_steps 4 "
               "(config) x data-parallel size 2 (world) = 8, so train_micro_batch_size_per_gpu "
               "cannot be derived") != std::string::npos);
}

TEST_CASE("batch: micro and accumulation imply train") {
  const Batch b = resolve(R"({"train_micro_batch_size_per_gpu": 6, "gradient_accumulation_steps": 5})", 4);
  CHECK(b.train == 120);
  CHECK(b.train_src == S::derived);
  CHECK(b.micro_src == S::config);
  CHECK(b.accum_src == S::config);
}

TEST_CASE("batch: train alone means no accumulation and an even split") {
  const Batch b = resolve(R"({"train_batch_size": 128})", 4);
  CHECK(b.micro == 32);
  CHECK(b.accum == 1);
  CHECK(b.micro_src == S::derived);
  CHECK(b.accum_src == S::default_value);
  const std::string e = error_of(R"({"train_batch_size": 10})", 4);
  CHECK(e.find("train_batch_size 10 (config) is not a multiple of gradient_accumulation_steps 1 "
               "(default) x data-parallel size 4 (world) = 4, so train_micro_batch_size_per_gpu "
               "cannot be derived") != std::string::npos);
}

TEST_CASE("batch: micro alone means no accumulation") {
  const Batch b = resolve(R"({"train_micro_batch_size_per_gpu": 16})", 8);
  CHECK(b.train == 128);
  CHECK(b.accum == 1);
  CHECK(b.train_src == S::derived);
  CHECK(b.accum_src == S::default_value);
}

TEST_CASE("batch: neither train nor micro is an error") {
  CHECK(error_of("{}", 1).find("the batch size is not set: give train_batch_size or "
                               "train_micro_batch_size_per_gpu") != std::string::npos);
  CHECK(error_of(R"({"gradient_accumulation_steps": 4})", 1)
            .find("gradient_accumulation_steps alone does not fix it") != std::string::npos);
  CHECK(error_of(R"({"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto"})", 1)
            .find("\"auto\" batch sizes need values from the program") != std::string::npos);
}

TEST_CASE("batch: sizes must be positive integers") {
  CHECK(error_of(R"({"train_batch_size": 0})", 1).find("train_batch_size: expected an integer >= 1, got number 0") !=
        std::string::npos);
  CHECK(error_of(R"({"train_micro_batch_size_per_gpu": -4})", 1)
            .find("train_micro_batch_size_per_gpu: expected an integer >= 1, got number -4") != std::string::npos);
  CHECK(error_of(R"({"train_batch_size": 8, "gradient_accumulation_steps": 1.5})", 1)
            .find("gradient_accumulation_steps: expected an integer >= 1, got number 1.5") != std::string::npos);
  CHECK(error_of(R"({"train_batch_size": 8})", 0).find("the data-parallel size must be >= 1, got 0") !=
        std::string::npos);
}

TEST_CASE("batch: auto batch sizes come from the program, or are derived") {
  zt::ConfigOptions options;
  options.world_size = 2;
  options.auto_values["train_micro_batch_size_per_gpu"] = 4;
  const zt::Config c = zt::parse_config(
      R"({"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": 3})",
      zt::ConfigFormat::json, options);
  CHECK(c.train_micro_batch_size_per_gpu == 4);
  CHECK(c.setting("train_micro_batch_size_per_gpu").source == S::auto_value);
  CHECK(c.train_batch_size == 24);
  CHECK(c.setting("train_batch_size").source == S::derived);
  // The program's values are checked like the file's, and named as such.
  options.auto_values["train_micro_batch_size_per_gpu"] = 0;
  try {
    zt::parse_config(R"({"train_micro_batch_size_per_gpu": "auto"})", zt::ConfigFormat::json, options);
    FAIL("expected an error");
  } catch (const zt::Error& e) {
    CHECK(std::string(e.what()).find("train_micro_batch_size_per_gpu (the program's value for \"auto\"): "
                                     "expected an integer >= 1, got number 0") != std::string::npos);
  }
  // An inconsistent auto value shows "auto" as its source.
  options.auto_values["train_micro_batch_size_per_gpu"] = 5;
  try {
    zt::parse_config(R"({"train_batch_size": 24, "train_micro_batch_size_per_gpu": "auto",
                         "gradient_accumulation_steps": 3})",
                     zt::ConfigFormat::json, options);
    FAIL("expected an error");
  } catch (const zt::Error& e) {
    CHECK(std::string(e.what()).find("train_batch_size 24 (config) != train_micro_batch_size_per_gpu 5 "
                                     "(auto) x gradient_accumulation_steps 3 (config) x "
                                     "data-parallel size 2 (world) = 30") != std::string::npos);
  }
}
