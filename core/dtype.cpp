// DType names, sizes and parsing.
#include "core/dtype.h"

namespace zt {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::f16: case DType::bf16: return 2;
    case DType::f64: case DType::i64: return 8;
    case DType::u8: case DType::boolean: return 1;
  }
  ZT_FAIL("dtype_size: unknown dtype ", int(t));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::boolean: return "bool";
  }
  return "unknown";
}

DType parse_dtype(const std::string& name) {
  struct Alias { const char* name; DType type; };
  static const Alias aliases[] = {
      {"f32", DType::f32},   {"float32", DType::f32}, {"float", DType::f32},
      {"f16", DType::f16},   {"float16", DType::f16}, {"fp16", DType::f16}, {"half", DType::f16},
      {"bf16", DType::bf16}, {"bfloat16", DType::bf16},
      {"f64", DType::f64},   {"float64", DType::f64}, {"double", DType::f64},
      {"i32", DType::i32},   {"int32", DType::i32},   {"i64", DType::i64}, {"int64", DType::i64},
      {"u8", DType::u8},     {"uint8", DType::u8},    {"bool", DType::boolean}};
  for (const auto& a : aliases)
    if (name == a.name) return a.type;
  ZT_FAIL("unknown dtype '", name, "' (expected one of f32, f16, bf16, f64, i32, i64, u8, bool)");
}

}  // namespace zt
