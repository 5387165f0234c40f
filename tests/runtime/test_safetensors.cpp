// safetensors: a file written by the reference implementation (huggingface/safetensors 0.8.0)
// read back value by value and re-written byte for byte, round trips of every dtype (f16/bf16
// bit-exact), corrupt files with the error each must give, and loading weights into a Module.
#include <doctest/doctest.h>

#include "temp_dir.h"

#include <stdlib.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/ops.h"
#include "nn/linear.h"
#include "runtime/checkpoint_io.h"
#include "runtime/safetensors.h"

using namespace zt;

namespace {

// Written at test-authoring time by safetensors 0.8.0's serialize() (Rust core, through its
// Python binding) with metadata {"format": "pt"} and these tensors:
//   l.i64 (2, 1) [2^40, -3]; d.f64 (1) [pi]; empty.f32 (0, 3); w.f32 (2, 2) [1.5, -2.25, 3, 0];
//   i.i32 (2) [-7, 8]; b.bf16 (3) bits [0x3F80, 0xC000, 0x3E20] = [1, -2, 0.15625];
//   h.f16 (3) [1, -0.5, 65504]; u.u8 (3) [0, 255, 7]; m.bool (3) [true, false, true].
const unsigned char kReferenceFile[] = {
    0x40, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x5f, 0x5f, 0x6d, 0x65, 0x74, 0x61,
    0x64, 0x61, 0x74, 0x61, 0x5f, 0x5f, 0x22, 0x3a, 0x7b, 0x22, 0x66, 0x6f, 0x72, 0x6d, 0x61, 0x74,
    0x22, 0x3a, 0x22, 0x70, 0x74, 0x22, 0x7d, 0x2c, 0x22, 0x6c, 0x2e, 0x69, 0x36, 0x34, 0x22, 0x3a,
    0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x49, 0x36, 0x34, 0x22, 0x2c, 0x22,
    0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x32, 0x2c, 0x31, 0x5d, 0x2c, 0x22, 0x64, 0x61,
    0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x30, 0x2c, 0x31,
    0x36, 0x5d, 0x7d, 0x2c, 0x22, 0x64, 0x2e, 0x66, 0x36, 0x34, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74,
    0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x36, 0x34, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70,
    0x65, 0x22, 0x3a, 0x5b, 0x31, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66,
    0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x31, 0x36, 0x2c, 0x32, 0x34, 0x5d, 0x7d, 0x2c, 0x22,
    0x65, 0x6d, 0x70, 0x74, 0x79, 0x2e, 0x66, 0x33, 0x32, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79,
    0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65,
    0x22, 0x3a, 0x5b, 0x30, 0x2c, 0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66,
    0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x32, 0x34, 0x2c, 0x32, 0x34, 0x5d, 0x7d, 0x2c,
    0x22, 0x77, 0x2e, 0x66, 0x33, 0x32, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22,
    0x3a, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b,
    0x32, 0x2c, 0x32, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65,
    0x74, 0x73, 0x22, 0x3a, 0x5b, 0x32, 0x34, 0x2c, 0x34, 0x30, 0x5d, 0x7d, 0x2c, 0x22, 0x69, 0x2e,
    0x69, 0x33, 0x32, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x49,
    0x33, 0x32, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x32, 0x5d, 0x2c,
    0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b,
    0x34, 0x30, 0x2c, 0x34, 0x38, 0x5d, 0x7d, 0x2c, 0x22, 0x62, 0x2e, 0x62, 0x66, 0x31, 0x36, 0x22,
    0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x42, 0x46, 0x31, 0x36, 0x22,
    0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61,
    0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x34, 0x38, 0x2c,
    0x35, 0x34, 0x5d, 0x7d, 0x2c, 0x22, 0x68, 0x2e, 0x66, 0x31, 0x36, 0x22, 0x3a, 0x7b, 0x22, 0x64,
    0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x31, 0x36, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61,
    0x70, 0x65, 0x22, 0x3a, 0x5b, 0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66,
    0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x35, 0x34, 0x2c, 0x36, 0x30, 0x5d, 0x7d, 0x2c,
    0x22, 0x75, 0x2e, 0x75, 0x38, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a,
    0x22, 0x55, 0x38, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x33, 0x5d,
    0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a,
    0x5b, 0x36, 0x30, 0x2c, 0x36, 0x33, 0x5d, 0x7d, 0x2c, 0x22, 0x6d, 0x2e, 0x62, 0x6f, 0x6f, 0x6c,
    0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x42, 0x4f, 0x4f, 0x4c,
    0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x33, 0x5d, 0x2c, 0x22, 0x64,
    0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x36, 0x33,
    0x2c, 0x36, 0x36, 0x5d, 0x7d, 0x7d, 0x20, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x18, 0x2d, 0x44, 0x54, 0xfb, 0x21, 0x09, 0x40,
    0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x10, 0xc0, 0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x00, 0x00,
    0xf9, 0xff, 0xff, 0xff, 0x08, 0x00, 0x00, 0x00, 0x80, 0x3f, 0x00, 0xc0, 0x20, 0x3e, 0x00, 0x3c,
    0x00, 0xb8, 0xff, 0x7b, 0x00, 0xff, 0x07, 0x01, 0x00, 0x01,
};

std::string reference_bytes() {
  return std::string(reinterpret_cast<const char*>(kReferenceFile), sizeof(kReferenceFile));
}

// A file from a header text and a data buffer (the length prefix computed here).
std::string make_file(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(char((uint64_t(header.size()) >> (8 * i)) & 0xffu));
  return out + header + data;
}

std::string bytes_of(const Tensor& t) {
  const Tensor c = raw::contiguous(t);
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("zt_safetensors") {}
};

void check_parse_error(const std::string& bytes, const std::vector<std::string>& fragments) {
  try {
    parse_safetensors(bytes, "bad.safetensors");
    FAIL("parse_safetensors accepted a corrupt file");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.find("bad.safetensors") != std::string::npos, msg);
    for (const auto& f : fragments) CHECK_MESSAGE(msg.find(f) != std::string::npos, "want '", f, "' in: ", msg);
  }
}

}  // namespace

TEST_CASE("a file written by the reference implementation reads back value by value") {
  const SafetensorsFile f = parse_safetensors(reference_bytes(), "reference");
  CHECK(f.metadata == std::map<std::string, std::string>{{"format", "pt"}});
  CHECK(f.tensors.keys() == std::vector<std::string>{"l.i64", "d.f64", "empty.f32", "w.f32", "i.i32",
                                                     "b.bf16", "h.f16", "u.u8", "m.bool"});
  const Tensor& w = f.tensors.at("w.f32");
  CHECK(w.shape() == Shape{2, 2});
  CHECK(w.to_vector<float>() == std::vector<float>{1.5f, -2.25f, 3.0f, 0.0f});
  const Tensor& h = f.tensors.at("h.f16");
  CHECK(h.dtype() == DType::f16);
  CHECK(raw::to(h, DType::f32).to_vector<float>() == std::vector<float>{1.0f, -0.5f, 65504.0f});
  const Tensor& b = f.tensors.at("b.bf16");
  REQUIRE(b.dtype() == DType::bf16);
  CHECK(b.data<BFloat16>()[0].bits == 0x3F80);
  CHECK(b.data<BFloat16>()[1].bits == 0xC000);
  CHECK(b.data<BFloat16>()[2].bits == 0x3E20);
  CHECK(raw::to(b, DType::f32).to_vector<float>() == std::vector<float>{1.0f, -2.0f, 0.15625f});
  CHECK(f.tensors.at("d.f64").to_vector<double>() == std::vector<double>{3.141592653589793});
  CHECK(f.tensors.at("i.i32").to_vector<int32_t>() == std::vector<int32_t>{-7, 8});
  const Tensor& l = f.tensors.at("l.i64");
  CHECK(l.shape() == Shape{2, 1});
  CHECK(l.to_vector<int64_t>() == std::vector<int64_t>{int64_t(1) << 40, -3});
  const Tensor& u = f.tensors.at("u.u8");
  CHECK(u.data<uint8_t>()[0] == 0);
  CHECK(u.data<uint8_t>()[1] == 255);
  CHECK(u.data<uint8_t>()[2] == 7);
  const Tensor& m = f.tensors.at("m.bool");
  CHECK(m.data<bool>()[0]);
  CHECK(!m.data<bool>()[1]);
  CHECK(m.data<bool>()[2]);
  CHECK(f.tensors.at("empty.f32").shape() == Shape{0, 3});
}

TEST_CASE("writing the reference file's tensors reproduces its bytes exactly") {
  const SafetensorsFile f = parse_safetensors(reference_bytes(), "reference");
  CHECK(serialize_safetensors(f.tensors, f.metadata) == reference_bytes());
  // The writer orders by dtype then name itself, whatever order the dict has.
  TensorDict reversed;
  const auto keys = f.tensors.keys();
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) reversed.set(*it, f.tensors.at(*it));
  CHECK(serialize_safetensors(reversed, f.metadata) == reference_bytes());
}

TEST_CASE("every dtype round trips bit-exactly through a file") {
  TempDir dir;
  TensorDict tensors;
  for (DType t : kAllDTypes) {
    Tensor x = Tensor::empty({3, 5}, t);
    auto* p = static_cast<uint8_t*>(x.raw_data());
    // Arbitrary bytes reach NaN payloads, infinities, subnormals and -0 of the float types.
    for (size_t i = 0; i < x.nbytes(); ++i) p[i] = t == DType::boolean ? uint8_t(i % 2) : uint8_t(i * 37 + 11);
    tensors.set(std::string("x_") + dtype_name(t), x);
  }
  const Tensor base = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  tensors.set("transposed", raw::transpose(base, 0, 1));  // saved as its logical values
  const std::string path = dir.path + "/all.safetensors";
  save_safetensors(path, tensors, {{"k", "v"}, {"a", "b"}});
  const SafetensorsFile back = load_safetensors(path);
  CHECK(back.metadata == std::map<std::string, std::string>{{"a", "b"}, {"k", "v"}});
  REQUIRE(back.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    CAPTURE(name);
    const Tensor& r = back.tensors.at(name);
    CHECK(r.dtype() == t.dtype());
    CHECK(r.shape() == t.shape());
    CHECK(bytes_of(r) == bytes_of(t));
  }
  CHECK(back.tensors.at("transposed").to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});
}

TEST_CASE("corrupt files are refused with an error naming the problem") {
  const std::string ref = reference_bytes();
  SUBCASE("too short for the length prefix") { check_parse_error(ref.substr(0, 5), {"too short"}); }
  SUBCASE("header length past the end of the file") {
    std::string bad = ref;
    bad[0] = char(0x10), bad[1] = char(0x27);  // 10000
    check_parse_error(bad, {"header length 10000", "runs past the end"});
  }
  SUBCASE("absurd header length") {
    std::string bad = ref;
    bad[5] = char(1);
    check_parse_error(bad, {"exceeds the limit"});
  }
  SUBCASE("truncated data") {
    check_parse_error(ref.substr(0, ref.size() - 1), {"'m.bool'", "run past the data buffer", "truncated"});
  }
  SUBCASE("trailing bytes") { check_parse_error(ref + "x", {"cover 66 bytes", "holds 67"}); }
  SUBCASE("header is not JSON") { check_parse_error(make_file("{\"a\": ", ""), {"not valid JSON"}); }
  SUBCASE("header is not an object") { check_parse_error(make_file("[1, 2]", ""), {"JSON object"}); }
  SUBCASE("unknown dtype") {
    check_parse_error(make_file(R"({"x":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "ab"),
                      {"tensor 'x'", "unsupported dtype \"F8_E4M3\""});
  }
  SUBCASE("overlapping tensors") {
    check_parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                std::string(12, '\0')),
                      {"tensor 'b'", "overlap tensor 'a'"});
  }
  SUBCASE("a hole between tensors") {
    check_parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                                std::string(12, '\0')),
                      {"hole", "bytes [4, 8)", "tensor 'b'"});
  }
  SUBCASE("shape x dtype disagrees with the byte range") {
    check_parse_error(make_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
                      {"tensor 'w'", "needs 12 bytes", "hold 8"});
  }
  SUBCASE("end before begin") {
    check_parse_error(make_file(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", std::string(8, '\0')),
                      {"tensor 'w'", "end before begin"});
  }
  SUBCASE("negative dimension") {
    check_parse_error(make_file(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", ""),
                      {"tensor 'w'", "non-negative integer"});
  }
  SUBCASE("unknown field in a tensor entry") {
    check_parse_error(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}})", "a"),
                      {"tensor 'w'", "unknown field 'extra'"});
  }
  SUBCASE("non-string metadata") {
    check_parse_error(make_file(R"({"__metadata__":{"n":1}})", ""), {"__metadata__", "'n'", "must be a string"});
  }
}

TEST_CASE("load_safetensors_into copies weights into a module, converting dtype") {
  TempDir dir;
  Linear src(3, 2);
  raw::copy_(src.weight(), from_vector(std::vector<float>{0.1f, -0.2f, 0.3f, 1.0f / 3, 2.5f, -4.0f}, {2, 3}));
  raw::copy_(src.parameter("bias"), from_vector(std::vector<float>{7.0f, -8.0f}, {2}));
  const std::string path = dir.path + "/linear.safetensors";
  save_safetensors(path, src.state_dict());

  Linear same(3, 2);
  load_safetensors_into(same, path);
  CHECK(bytes_of(same.weight()) == bytes_of(src.weight()));
  CHECK(bytes_of(same.parameter("bias")) == bytes_of(src.parameter("bias")));

  Linear half(3, 2);
  half.to(DType::bf16);
  load_safetensors_into(half, path);
  CHECK(half.weight().dtype() == DType::bf16);
  CHECK(bytes_of(half.weight()) == bytes_of(raw::to(src.weight(), DType::bf16)));

  SUBCASE("missing and unexpected names are listed together under strict") {
    TensorDict partial;
    partial.set("weight", src.weight());
    partial.set("extra", zeros({1}));
    save_safetensors(path, partial);
    Linear target(3, 2);
    const std::vector<float> bias_before = target.parameter("bias").to_vector<float>();
    CHECK_THROWS_WITH_AS(load_safetensors_into(target, path),
                         doctest::Contains("missing from the file: bias\n  not in the model: extra"), Error);
    load_safetensors_into(target, path, /*strict=*/false);
    CHECK(bytes_of(target.weight()) == bytes_of(src.weight()));
    CHECK(target.parameter("bias").to_vector<float>() == bias_before);
  }
  SUBCASE("a shape mismatch names the tensor and both shapes") {
    Linear wide(4, 2);
    CHECK_THROWS_WITH_AS(load_safetensors_into(wide, path),
                         doctest::Contains("tensor 'weight' has shape (2, 3) but the model expects (2, 4)"), Error);
  }
}
