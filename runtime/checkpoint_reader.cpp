// CheckpointReader: validates a checkpoint folder's index.json against the files on disk and
// reassembles entries from their fragments (Note [Checkpoint fragments] in checkpoint.h).
#include <algorithm>
#include <cstring>

#include "core/ops.h"
#include "runtime/checkpoint.h"
#include "runtime/checkpoint_internal.h"
#include "runtime/checkpoint_io.h"
#include "runtime/safetensors.h"

namespace zt {
namespace {

using ordered_json = nlohmann::ordered_json;

ordered_json read_index(const std::string& folder) {
  const std::string path = join_path(folder, kIndexFile);
  ZT_CHECK(path_exists(folder), "checkpoint folder ", folder, " does not exist");
  ZT_CHECK(path_exists(path), "checkpoint ", folder, " has no ", kIndexFile,
           ": its save did not finish, or it is not a zerotrain checkpoint");
  try {
    return ordered_json::parse(read_file_bytes(path));
  } catch (const nlohmann::json::exception& e) {
    ZT_FAIL(path, " is not valid JSON: ", e.what());
  }
}

template <typename Json>
const Json& member(const Json& obj, const char* key, const std::string& where) {
  ZT_CHECK(obj.is_object() && obj.contains(key), where, ": missing \"", key, "\"");
  return obj[key];
}

IndexEntry parse_index_entry(const std::string& name, const ordered_json& j,
                             const std::string& where) {
  IndexEntry e;
  const std::string at = where + ": entry '" + name + "'";
  e.dtype = parse_safetensors_dtype(member(j, "dtype", at).get<std::string>(), at);
  e.shape = member(j, "shape", at).get<Shape>();
  for (const auto& f : member(j, "fragments", at)) {
    FragmentRef ref;
    ref.file = member(f, "file", at).get<std::string>();
    ZT_CHECK(ref.file.find('/') == std::string::npos, at, ": fragment file '", ref.file,
             "' must name a file inside the checkpoint folder");
    ref.key = member(f, "key", at).get<std::string>();
    ref.offset = member(f, "offset", at).get<int64_t>();
    ref.length = member(f, "length", at).get<int64_t>();
    e.fragments.push_back(ref);
  }
  check_fragment_cover(name, shape_numel(e.shape), e.fragments, at);
  return e;
}

void copy_elements(const Tensor& dst, int64_t dst_offset, const Tensor& src, int64_t src_offset,
                   int64_t count) {
  const size_t es = dtype_size(dst.dtype());
  std::memcpy(static_cast<char*>(dst.raw_data()) + size_t(dst_offset) * es,
              static_cast<const char*>(src.raw_data()) + size_t(src_offset) * es,
              size_t(count) * es);
}

}  // namespace

void check_fragment_cover(const std::string& name, int64_t numel,
                          std::vector<FragmentRef>& fragments, const std::string& where) {
  std::sort(fragments.begin(), fragments.end(),
            [](const FragmentRef& a, const FragmentRef& b) { return a.offset < b.offset; });
  int64_t cursor = 0;
  for (const FragmentRef& f : fragments) {
    ZT_CHECK(f.length >= 0 && f.offset >= 0, where, ": entry '", name, "' fragment ", f.file, ":",
             f.key, " has offset ", f.offset, " and length ", f.length);
    ZT_CHECK(f.offset >= cursor, where, ": entry '", name, "' fragments overlap at element ",
             f.offset, " (", f.file, ":", f.key, " starts before element ", cursor,
             " where the previous one ends)");
    ZT_CHECK(f.offset == cursor, where, ": entry '", name, "' elements [", cursor, ", ", f.offset,
             ") are held by no fragment");
    cursor = f.offset + f.length;
  }
  ZT_CHECK(cursor == numel, where, ": entry '", name, "' has ", numel,
           " elements but its fragments cover ", cursor);
}

CheckpointReader::CheckpointReader(std::string folder) : folder_(std::move(folder)) {
  const ordered_json index = read_index(folder_);
  const std::string where = join_path(folder_, kIndexFile);
  ZT_CHECK(member(index, "format", where) == kIndexFormat, where, ": format is ",
           index["format"].dump(), ", expected \"", kIndexFormat, "\"");
  ZT_CHECK(member(index, "version", where) == kIndexVersion, where, ": version ",
           index["version"].dump(), " is not the supported version ", kIndexVersion);
  saved_world_ = member(index, "world_size", where).get<int>();
  ZT_CHECK(saved_world_ >= 1, where, ": world_size ", saved_world_, " must be at least 1");
  for (const auto& [file, bytes] : member(index, "files", where).items()) {
    ZT_CHECK(file.find('/') == std::string::npos, where, ": file name '", file,
             "' must name a file inside the checkpoint folder");
    const std::string path = join_path(folder_, file);
    ZT_CHECK(path_exists(path), "checkpoint ", folder_, ": file ", file,
             " listed in index.json is missing");
    const size_t found = file_size(path), recorded = bytes.get<size_t>();
    ZT_CHECK(found == recorded, "checkpoint ", folder_, ": file ", file, " has ", found,
             " bytes but index.json recorded ", recorded, (found < recorded ? " (truncated)" : " (modified)"));
  }
  for (const auto& [name, j] : member(index, "tensors", where).items()) {
    entries_.emplace(name, parse_index_entry(name, j, where));
    names_.push_back(name);
  }
}

const IndexEntry& CheckpointReader::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  ZT_CHECK(it != entries_.end(), "checkpoint ", folder_, " has no entry '", name, "'");
  return it->second;
}

const Tensor& CheckpointReader::fragment_tensor(const FragmentRef& ref, const std::string& name) {
  auto it = files_.find(ref.file);
  if (it == files_.end()) {
    it = files_.emplace(ref.file, load_safetensors(join_path(folder_, ref.file)).tensors).first;
  }
  const Tensor* t = it->second.find(ref.key);
  ZT_CHECK(t, "checkpoint ", folder_, ": ", ref.file, " has no tensor '", ref.key,
           "' (index.json says it holds part of '", name, "')");
  const IndexEntry& e = entry(name);
  ZT_CHECK(t->dtype() == e.dtype && t->numel() == ref.length, "checkpoint ", folder_, ": ",
           ref.file, ":", ref.key, " is ", t->str(), " but index.json expects ", ref.length,
           " elements of ", safetensors_dtype_name(e.dtype));
  return *t;
}

Tensor CheckpointReader::read_full(const std::string& name) {
  const IndexEntry& e = entry(name);
  Tensor out = Tensor::empty(e.shape, e.dtype);
  for (const FragmentRef& f : e.fragments) {
    copy_elements(out, f.offset, fragment_tensor(f, name), 0, f.length);
  }
  return out;
}

Tensor CheckpointReader::read_range(const std::string& name, int64_t offset, int64_t length) {
  const IndexEntry& e = entry(name);
  const int64_t numel = shape_numel(e.shape);
  ZT_CHECK(offset >= 0 && length >= 0 && offset + length <= numel, "checkpoint ", folder_,
           ": range [", offset, ", ", offset + length, ") of '", name, "' is outside its ", numel,
           " elements");
  Tensor out = Tensor::empty({length}, e.dtype);
  for (const FragmentRef& f : e.fragments) {
    const int64_t lo = std::max(offset, f.offset);
    const int64_t hi = std::min(offset + length, f.offset + f.length);
    if (lo < hi) copy_elements(out, lo - offset, fragment_tensor(f, name), lo - f.offset, hi - lo);
  }
  return out;
}

nlohmann::json CheckpointReader::read_rank_state(int rank) const {
  const std::string path = join_path(folder_, rank_state_file(rank));
  ZT_CHECK(path_exists(path), "checkpoint ", folder_, ": ", rank_state_file(rank),
           " is missing (the checkpoint was saved by ", saved_world_, " ranks)");
  try {
    return nlohmann::json::parse(read_file_bytes(path));
  } catch (const nlohmann::json::exception& e) {
    ZT_FAIL(path, " is not valid JSON: ", e.what());
  }
}

void check_checkpoint_matches_model(const CheckpointReader& reader, const TensorDict& model) {
  std::string problems;
  size_t count = 0;
  const std::string prefix = kModelPrefix;
  for (const auto& [name, t] : model) {
    if (!reader.contains(prefix + name)) {
      problems += "\n  missing from the checkpoint: " + name;
      ++count;
      continue;
    }
    const IndexEntry& e = reader.entry(prefix + name);
    if (e.shape != t.shape() || e.dtype != t.dtype()) {
      problems += "\n  " + name + ": checkpoint has " + shape_str(e.shape) + " " +
                  safetensors_dtype_name(e.dtype) + ", the model has " + shape_str(t.shape()) +
                  " " + safetensors_dtype_name(t.dtype());
      ++count;
    }
  }
  for (const std::string& n : reader.names()) {
    if (n.rfind(prefix, 0) == 0 && !model.contains(n.substr(prefix.size()))) {
      problems += "\n  not in the model: " + n.substr(prefix.size());
      ++count;
    }
  }
  ZT_CHECK(count == 0, "checkpoint ", reader.folder(), " does not match the model (", count,
           " problems):", problems);
}

}  // namespace zt
