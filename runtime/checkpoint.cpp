// Checkpoint save, publish, load and consolidate (docs/checkpoints.md). Each rank writes its files
// into a staging folder; once all are done, one process merges the per-rank fragment lists into
// index.json, moves the folder into place and writes `latest` last, so an interrupted save never
// disturbs the checkpoint `latest` names.
#include "runtime/checkpoint.h"

#include "core/ops.h"
#include "runtime/checkpoint_internal.h"
#include "runtime/checkpoint_io.h"
#include "runtime/safetensors.h"

namespace zt {
namespace {

using ordered_json = nlohmann::ordered_json;

void check_tag(const std::string& tag) {
  ZT_CHECK(!tag.empty() && tag.find('/') == std::string::npos && tag[0] != '.' &&
               tag != kLatestFile,
           "checkpoint tag \"", tag,
           "\" is not usable as a folder name (expected a non-empty name without '/', not "
           "starting with '.', not \"latest\")");
}

std::string staging_folder(const std::string& dir, const std::string& tag) {
  return join_path(dir, "." + tag + ".partial");
}

void notify(const CheckpointFileHook& hook, const std::string& path) {
  if (hook) hook(path);
}

// One fragment record of a rank's fragment list.
ordered_json fragment_record(const std::string& name, const Tensor& full_or_part,
                             const Shape& full_shape, const std::string& file,
                             const std::string& key, int64_t offset) {
  return ordered_json{{"name", name},
                      {"dtype", safetensors_dtype_name(full_or_part.dtype())},
                      {"shape", full_shape},
                      {"file", file},
                      {"key", key},
                      {"offset", offset},
                      {"length", full_or_part.numel()}};
}

// The shard tensors and fragment records of one rank (Note [Checkpoint fragments]).
void collect_rank_tensors(int rank, const CheckpointState& state, TensorDict& shard,
                          ordered_json& records) {
  const std::string file = rank_shard_file(rank);
  auto add_full = [&](const std::string& name, const Tensor& t) {
    ZT_CHECK(!shard.contains(name), "checkpoint entry '", name, "' is given twice");
    shard.set(name, t);
    records.push_back(fragment_record(name, t, t.shape(), file, name, 0));
  };
  if (rank == 0) {  // replicas: one copy is enough
    for (const auto& [n, t] : state.model) add_full(kModelPrefix + n, t);
    for (const auto& [n, t] : state.master) add_full(kMasterPrefix + n, t);
    for (const auto& [n, t] : state.optimizer.tensors) add_full(kOptimPrefix + n, t);
  }
  for (const TensorFragment& f : state.fragments) {
    const int64_t numel = shape_numel(f.full_shape);
    ZT_CHECK(f.data.defined() && f.offset >= 0 && f.offset + f.data.numel() <= numel,
             "checkpoint fragment of '", f.name, "' at offset ", f.offset, " with ",
             f.data.defined() ? f.data.numel() : 0, " elements does not fit its full shape ",
             shape_str(f.full_shape), " (", numel, " elements)");
    const std::string key = f.name + "#" + std::to_string(f.offset);
    ZT_CHECK(!shard.contains(key), "checkpoint fragment '", key, "' is given twice");
    shard.set(key, raw::reshape(raw::contiguous(f.data), {f.data.numel()}));
    records.push_back(fragment_record(f.name, f.data, f.full_shape, file, key, f.offset));
  }
}

ordered_json parse_json_file(const std::string& path) {
  try {
    return ordered_json::parse(read_file_bytes(path));
  } catch (const nlohmann::json::exception& e) {
    ZT_FAIL(path, " is not valid JSON: ", e.what());
  }
}

// Merges every rank's fragment list into the index (entries in first-seen order).
ordered_json build_index(const std::string& staging, const std::string& tag, int world) {
  ordered_json tensors = ordered_json::object();
  ordered_json files = ordered_json::object();
  for (int r = 0; r < world; ++r) {
    const std::string path = join_path(staging, rank_fragments_file(r));
    ZT_CHECK(path_exists(path), "publishing checkpoint '", tag, "': rank ", r, " of ", world,
             " has not finished writing (", path, " is missing)");
    const ordered_json list = parse_json_file(path);
    for (const auto& [file, bytes] : list.at("files").items()) files[file] = bytes;
    for (const auto& rec : list.at("fragments")) {
      const std::string name = rec.at("name");
      if (!tensors.contains(name)) {
        tensors[name] = {{"dtype", rec.at("dtype")}, {"shape", rec.at("shape")},
                         {"fragments", ordered_json::array()}};
      }
      ordered_json& entry = tensors[name];
      ZT_CHECK(entry["dtype"] == rec.at("dtype") && entry["shape"] == rec.at("shape"),
               "publishing checkpoint '", tag, "': rank ", r, " holds '", name, "' as ",
               rec.at("dtype").dump(), " ", rec.at("shape").dump(), " but an earlier rank as ",
               entry["dtype"].dump(), " ", entry["shape"].dump());
      entry["fragments"].push_back({{"file", rec.at("file")}, {"key", rec.at("key")},
                                    {"offset", rec.at("offset")}, {"length", rec.at("length")}});
    }
  }
  // Every entry must be tiled exactly by its fragments, now, not when someone loads it.
  for (auto& [name, entry] : tensors.items()) {
    std::vector<FragmentRef> refs;
    for (const auto& f : entry["fragments"]) {
      refs.push_back({f["file"], f["key"], f["offset"].get<int64_t>(), f["length"].get<int64_t>()});
    }
    check_fragment_cover(name, shape_numel(entry["shape"].get<Shape>()), refs,
                         "publishing checkpoint '" + tag + "'");
    entry["fragments"] = ordered_json::array();
    for (const FragmentRef& f : refs) {
      entry["fragments"].push_back(
          {{"file", f.file}, {"key", f.key}, {"offset", f.offset}, {"length", f.length}});
    }
  }
  return ordered_json{{"format", kIndexFormat}, {"version", kIndexVersion}, {"tag", tag},
                      {"world_size", world},    {"files", files},           {"tensors", tensors}};
}

// Replaces <dir>/<tag> with the staging folder. An older folder of the same tag is moved aside
// first, because rename(2) cannot replace a non-empty directory.
void move_into_place(const std::string& staging, const std::string& dir, const std::string& tag) {
  const std::string final_folder = join_path(dir, tag);
  const std::string old = join_path(dir, "." + tag + ".old");
  remove_tree(old);
  if (path_exists(final_folder)) rename_durable(final_folder, old);
  rename_durable(staging, final_folder);
  remove_tree(old);
}

}  // namespace

void write_rank_files(const std::string& dir, const std::string& tag, int rank, int world,
                      const CheckpointState& state, const CheckpointFileHook& on_file_written) {
  check_tag(tag);
  ZT_CHECK(world >= 1 && rank >= 0 && rank < world, "checkpoint rank ", rank,
           " is outside a world of ", world);
  const std::string staging = staging_folder(dir, tag);
  make_directories(staging);

  TensorDict shard;
  ordered_json records = ordered_json::array();
  collect_rank_tensors(rank, state, shard, records);
  const std::string shard_bytes = serialize_safetensors(shard, {{"format", "zerotrain"}});
  const std::string shard_path = join_path(staging, rank_shard_file(rank));
  write_file_atomic(shard_path, shard_bytes);
  notify(on_file_written, shard_path);

  nlohmann::json rank_state = {{"rank", rank},
                               {"world_size", world},
                               {"scalars", state.scalars},
                               {"optimizer_scalars", state.optimizer.scalars},
                               {"client_state", state.client_state}};
  const std::string state_bytes = rank_state.dump(1);
  const std::string state_path = join_path(staging, rank_state_file(rank));
  write_file_atomic(state_path, state_bytes);
  notify(on_file_written, state_path);

  // Last: its presence says this rank is done (publish_checkpoint reads it).
  const ordered_json fragments = {
      {"files",
       {{rank_shard_file(rank), shard_bytes.size()}, {rank_state_file(rank), state_bytes.size()}}},
      {"fragments", records}};
  const std::string fragments_path = join_path(staging, rank_fragments_file(rank));
  write_file_atomic(fragments_path, fragments.dump(1));
  notify(on_file_written, fragments_path);
}

void publish_checkpoint(const std::string& dir, const std::string& tag, int world,
                        const CheckpointFileHook& on_file_written) {
  check_tag(tag);
  const std::string staging = staging_folder(dir, tag);
  ZT_CHECK(path_exists(staging), "publishing checkpoint '", tag, "': staging folder ", staging,
           " does not exist (write_rank_files was not called)");
  const ordered_json index = build_index(staging, tag, world);
  const std::string index_path = join_path(staging, kIndexFile);
  write_file_atomic(index_path, index.dump(1));
  notify(on_file_written, index_path);
  move_into_place(staging, dir, tag);
  const std::string latest = join_path(dir, kLatestFile);
  write_file_atomic(latest, tag + "\n");
  notify(on_file_written, latest);
}

void save_checkpoint_files(const std::string& dir, const std::string& tag, int rank, int world,
                           const CheckpointState& state, Communicator* comm,
                           const CheckpointFileHook& on_file_written) {
  check_tag(tag);
  ZT_CHECK(comm || world == 1, "saving a checkpoint with ", world,
           " ranks needs a communicator to know when every rank has finished");
  if (comm) {
    ZT_CHECK(comm->size() == world && comm->rank() == rank, "save_checkpoint_files: rank ", rank,
             " of ", world, " does not match the communicator's rank ", comm->rank(), " of ",
             comm->size());
  }
  // Files left by an earlier save of this tag that was killed must not be merged in.
  if (rank == 0) remove_tree(staging_folder(dir, tag));
  if (comm) comm->barrier();
  write_rank_files(dir, tag, rank, world, state, on_file_written);
  if (comm) comm->barrier();
  if (rank == 0) publish_checkpoint(dir, tag, world, on_file_written);
  // Nobody returns (and possibly reads `latest`) before it is published.
  if (comm) comm->barrier();
}

std::string read_latest_tag(const std::string& dir) {
  const std::string path = join_path(dir, kLatestFile);
  ZT_CHECK(path_exists(path), "no checkpoint to resume from: ", path,
           " does not exist (no save finished in ", dir, ")");
  std::string tag = read_file_bytes(path);
  while (!tag.empty() && (tag.back() == '\n' || tag.back() == ' ')) tag.pop_back();
  ZT_CHECK(!tag.empty(), path, " is empty; expected the tag of the last finished checkpoint");
  return tag;
}

CheckpointState load_checkpoint_files(const std::string& dir, const std::string& tag, int rank,
                                      int world, Communicator* comm,
                                      const TensorDict* expected_model) {
  const std::string resolved = tag.empty() ? read_latest_tag(dir) : tag;
  check_tag(resolved);
  ZT_CHECK(world >= 1 && rank >= 0 && rank < world, "checkpoint rank ", rank,
           " is outside a world of ", world);
  CheckpointReader reader(join_path(dir, resolved));
  if (expected_model) check_checkpoint_matches_model(reader, *expected_model);

  CheckpointState state;
  const std::string model = kModelPrefix, master = kMasterPrefix, optim = kOptimPrefix;
  for (const std::string& name : reader.names()) {
    if (name.rfind(model, 0) == 0) {
      state.model.set(name.substr(model.size()), reader.read_full(name));
    } else if (name.rfind(master, 0) == 0) {
      state.master.set(name.substr(master.size()), reader.read_full(name));
    } else if (name.rfind(optim, 0) == 0) {
      state.optimizer.tensors.set(name.substr(optim.size()), reader.read_full(name));
    } else {
      ZT_FAIL("checkpoint ", reader.folder(), ": entry '", name,
              "' has no known prefix (expected model/, master/ or optim/)");
    }
  }
  // A rank the saved run did not have starts from rank 0's counters (docs/checkpoints.md).
  const nlohmann::json rank_state = reader.read_rank_state(rank < reader.saved_world() ? rank : 0);
  state.scalars = rank_state.at("scalars");
  state.client_state = rank_state.at("client_state");
  state.optimizer.scalars = rank_state.at("optimizer_scalars").get<std::map<std::string, double>>();
  if (comm) comm->barrier();
  return state;
}

TensorDict consolidate(const std::string& dir, const std::string& tag) {
  const std::string resolved = tag.empty() ? read_latest_tag(dir) : tag;
  check_tag(resolved);
  CheckpointReader reader(join_path(dir, resolved));
  TensorDict out;
  const std::string model = kModelPrefix;
  for (const std::string& name : reader.names()) {
    if (name.rfind(model, 0) != 0) continue;
    const std::string param = name.substr(model.size());
    const std::string master_name = kMasterPrefix + param;
    Tensor t = reader.read_full(reader.contains(master_name) ? master_name : name);
    out.set(param, is_floating(t.dtype()) ? raw::to(t, DType::f32) : t);
  }
  ZT_CHECK(!out.empty(), "checkpoint ", reader.folder(), " holds no model weights");
  return out;
}

}  // namespace zt
