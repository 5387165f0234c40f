// safetensors reader/writer (Note [safetensors layout] in safetensors.h) and loading a file's
// weights into a Module.
#include "runtime/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "runtime/checkpoint_io.h"

namespace zt {
namespace {

using ordered_json = nlohmann::ordered_json;

// The reference implementation refuses headers above 100 MB (safetensors' MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Position of each dtype in the reference's Dtype enum; its writer sorts by it, largest first.
int reference_dtype_rank(DType t) {
  switch (t) {
    case DType::boolean: return 0;
    case DType::u8: return 1;
    case DType::f16: return 2;
    case DType::bf16: return 3;
    case DType::i32: return 4;
    case DType::f32: return 5;
    case DType::f64: return 6;
    case DType::i64: return 7;
  }
  return -1;
}

void put_u64_le(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(char((v >> (8 * i)) & 0xffu));
}

uint64_t get_u64_le(const std::string& bytes) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | uint8_t(bytes[size_t(i)]);
  return v;
}

// Host, contiguous, same dtype: what the bytes are copied from.
Tensor host_contiguous(const Tensor& t) { return raw::contiguous(raw::to(t, Device::cpu())); }

struct ParsedEntry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

uint64_t json_u64(const nlohmann::json& v, const std::string& what, const std::string& source) {
  ZT_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), source,
           ": ", what, " must be a non-negative integer, found ", v.dump());
  return v.get<uint64_t>();
}

ParsedEntry parse_entry(const std::string& name, const nlohmann::json& info,
                        const std::string& source) {
  const std::string where = source + ": tensor '" + name + "'";
  ZT_CHECK(info.is_object(), where, ": expected an object {dtype, shape, data_offsets}, found ",
           info.dump());
  for (const auto& [key, value] : info.items()) {
    ZT_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", where,
             ": unknown field '", key, "' (expected dtype, shape, data_offsets)");
  }
  ZT_CHECK(info.contains("dtype") && info["dtype"].is_string(), where,
           ": missing or non-string \"dtype\"");
  ZT_CHECK(info.contains("shape") && info["shape"].is_array(), where,
           ": missing or non-array \"shape\"");
  ZT_CHECK(info.contains("data_offsets") && info["data_offsets"].is_array() &&
               info["data_offsets"].size() == 2,
           where, ": \"data_offsets\" must be [begin, end]");
  ParsedEntry e;
  e.name = name;
  e.dtype = parse_safetensors_dtype(info["dtype"].get<std::string>(), source + ": tensor '" + name + "'");
  uint64_t numel = 1;
  for (const auto& d : info["shape"]) {
    const uint64_t n = json_u64(d, "tensor '" + name + "' shape entry", source);
    ZT_CHECK(n == 0 || numel <= std::numeric_limits<uint64_t>::max() / n, where,
             ": shape overflows");
    numel *= n;
    e.shape.push_back(int64_t(n));
  }
  e.begin = json_u64(info["data_offsets"][0], "tensor '" + name + "' data_offsets[0]", source);
  e.end = json_u64(info["data_offsets"][1], "tensor '" + name + "' data_offsets[1]", source);
  ZT_CHECK(e.end >= e.begin, where, ": data_offsets [", e.begin, ", ", e.end,
           "] end before begin");
  const uint64_t expected = numel * dtype_size(e.dtype);
  ZT_CHECK(e.end - e.begin == expected, where, ": shape ", shape_str(e.shape), " x ",
           safetensors_dtype_name(e.dtype), " needs ", expected, " bytes but data_offsets [",
           e.begin, ", ", e.end, "] hold ", e.end - e.begin);
  return e;
}

// Tensors must tile the data buffer exactly: sorted by offset, each starts where the last ended.
void check_coverage(std::vector<ParsedEntry>& entries, uint64_t buffer_bytes,
                    const std::string& source) {
  std::sort(entries.begin(), entries.end(), [](const ParsedEntry& a, const ParsedEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  std::string previous = "the start of the data";
  for (const ParsedEntry& e : entries) {
    ZT_CHECK(e.begin >= cursor, source, ": tensor '", e.name, "' data_offsets [", e.begin, ", ",
             e.end, "] overlap ", previous, " (which ends at ", cursor, ")");
    ZT_CHECK(e.begin == cursor, source, ": hole in the data buffer: bytes [", cursor, ", ",
             e.begin, ") before tensor '", e.name, "' belong to no tensor");
    ZT_CHECK(e.end <= buffer_bytes, source, ": tensor '", e.name, "' data_offsets [", e.begin,
             ", ", e.end, "] run past the data buffer of ", buffer_bytes,
             " bytes (file truncated?)");
    cursor = e.end;
    previous = "tensor '" + e.name + "'";
  }
  ZT_CHECK(cursor == buffer_bytes, source, ": the tensors cover ", cursor,
           " bytes of data but the file holds ", buffer_bytes, " after the header");
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::f64: return "F64";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
    case DType::boolean: return "BOOL";
  }
  ZT_FAIL("safetensors: unknown dtype ", int(t));
}

DType parse_safetensors_dtype(const std::string& name, const std::string& tensor) {
  for (DType t : kAllDTypes) {
    if (name == safetensors_dtype_name(t)) return t;
  }
  ZT_FAIL(tensor, ": unsupported dtype \"", name,
          "\" (expected one of F32, F16, BF16, F64, I32, I64, U8, BOOL)");
}

std::string serialize_safetensors(const TensorDict& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, Tensor>> items;
  for (const auto& [name, t] : tensors) {
    ZT_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined");
    ZT_CHECK(name != "__metadata__", "safetensors: \"__metadata__\" cannot name a tensor");
    items.emplace_back(name, host_contiguous(t));
  }
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
    const int ra = reference_dtype_rank(a.second.dtype()), rb = reference_dtype_rank(b.second.dtype());
    return ra != rb ? ra > rb : a.first < b.first;
  });
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : items) {
    ordered_json info = ordered_json::object();
    info["dtype"] = safetensors_dtype_name(t.dtype());
    info["shape"] = t.shape();
    info["data_offsets"] = {offset, offset + t.nbytes()};
    header[name] = info;
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + text.size() + offset);
  put_u64_le(out, text.size());
  out += text;
  for (const auto& [name, t] : items) {
    out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  }
  return out;
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
  ZT_CHECK(bytes.size() >= 8, source, ": ", bytes.size(),
           " bytes is too short for a safetensors file (the 8-byte header length is missing)");
  const uint64_t header_bytes = get_u64_le(bytes);
  ZT_CHECK(header_bytes <= kMaxHeaderBytes, source, ": header length ", header_bytes,
           " exceeds the limit of ", kMaxHeaderBytes, " bytes (not a safetensors file?)");
  ZT_CHECK(header_bytes <= bytes.size() - 8, source, ": header length ", header_bytes,
           " runs past the end of the file (", bytes.size(), " bytes; truncated?)");
  const std::string text = bytes.substr(8, header_bytes);
  ZT_CHECK(!text.empty() && text[0] == '{', source, ": the header must be a JSON object starting with '{'");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    ZT_FAIL(source, ": the header is not valid JSON: ", e.what());
  }
  ZT_CHECK(header.is_object(), source, ": the header must be a JSON object");
  SafetensorsFile file;
  std::vector<ParsedEntry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      ZT_CHECK(info.is_object(), source, ": \"__metadata__\" must be an object of strings");
      for (const auto& [k, v] : info.items()) {
        ZT_CHECK(v.is_string(), source, ": \"__metadata__\" value of '", k,
                 "' must be a string, found ", v.dump());
        file.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(name, info, source));
  }
  const uint64_t data_start = 8 + header_bytes;
  check_coverage(entries, bytes.size() - data_start, source);
  for (const ParsedEntry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.raw_data(), bytes.data() + data_start + e.begin, e.end - e.begin);
    file.tensors.set(e.name, t);
  }
  return file;
}

void save_safetensors(const std::string& path, const TensorDict& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

SafetensorsFile load_safetensors(const std::string& path) {
  return parse_safetensors(read_file_bytes(path), path);
}

void load_safetensors_into(Module& module, const std::string& path, bool strict) {
  const SafetensorsFile file = load_safetensors(path);
  const TensorDict state = module.state_dict();
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, target] : state) {
    const Tensor* src = file.tensors.find(name);
    if (!src) {
      missing.push_back(name);
      continue;
    }
    ZT_CHECK(src->shape() == target.shape(), path, ": tensor '", name, "' has shape ",
             shape_str(src->shape()), " but the model expects ", shape_str(target.shape()));
  }
  for (const auto& [name, t] : file.tensors) {
    if (!state.contains(name)) unexpected.push_back(name);
  }
  if (strict && (!missing.empty() || !unexpected.empty())) {
    std::string msg;
    for (const auto& n : missing) msg += "\n  missing from the file: " + n;
    for (const auto& n : unexpected) msg += "\n  not in the model: " + n;
    ZT_FAIL(path, ": the weights do not match the model (", missing.size(), " missing, ",
            unexpected.size(), " unexpected):", msg);
  }
  for (const auto& [name, target] : state) {
    // copy_ casts to the target's dtype and device; parameters are leaves, so no graph is built.
    if (const Tensor* src = file.tensors.find(name)) raw::copy_(target, *src);
  }
}

}  // namespace zt
