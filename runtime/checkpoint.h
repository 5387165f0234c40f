// Checkpoints (DESIGN.md §6, docs/checkpoints.md): per-rank safetensors shards, per-rank state
// JSON and a topology-independent index, written atomically, with `latest` published last. The
// engine's save_checkpoint/load_checkpoint are thin wrappers around save_checkpoint_files and
// load_checkpoint_files.
//
// Note [Checkpoint fragments]
// Every saved tensor is a logical entry: "model/<param>", "master/<param>" or "optim/<key of
// OptimizerState::tensors>", with its full shape and dtype. The index lists, per entry, the
// fragments that hold it: (file, tensor key, flat offset, length) in row-major element order.
// The TensorDicts of CheckpointState are replicas (every data-parallel rank holds the same full
// tensors, ZeRO stage 0): rank 0 alone writes them, as one fragment covering the whole tensor.
// CheckpointState::fragments are flat partitions: each rank writes its own ranges. Loading only
// looks at the index, so a checkpoint written by N ranks loads at any M: full tensors are
// reassembled from whichever fragments cover them, and a partition of another size reads its
// flat range with CheckpointReader::read_range.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "optim/optimizer.h"
#include "parallel/communicator.h"

namespace zt {

// A flat range of a logical tensor that this rank holds (Note [Checkpoint fragments]).
struct TensorFragment {
  std::string name;    // entry name, e.g. "master/fc1.weight"
  Shape full_shape;    // shape of the whole tensor
  int64_t offset = 0;  // first element of the range, in the flattened full tensor
  Tensor data;         // the range's values: numel() elements, dtype of the whole tensor
};

struct CheckpointState {
  TensorDict model;          // replicated module state_dict (weights and buffers)
  TensorDict master;         // replicated fp32 master weights (empty without mixed precision)
  OptimizerState optimizer;  // replicated optimizer tensors; its scalars go to the state JSON
  std::vector<TensorFragment> fragments;  // this rank's partitions (load returns them merged)
  nlohmann::json scalars = nlohmann::json::object();  // steps, scheduler, scaler, RNG, loader
  nlohmann::json client_state = nlohmann::json::object();
};

// Test and diagnostic hook: called after each file of a save is durably written (its final path).
// Throwing from it aborts the save, as a crash would.
using CheckpointFileHook = std::function<void(const std::string& path)>;

// ---- high level: called on every rank ----
// Writes this rank's files into <dir>/<tag>/, waits for every rank (comm->barrier()), then rank 0
// writes index.json and publishes <dir>/latest. comm may be null only for a world of one.
void save_checkpoint_files(const std::string& dir, const std::string& tag, int rank, int world,
                           const CheckpointState& state, Communicator* comm = nullptr,
                           const CheckpointFileHook& on_file_written = nullptr);
// Reads <dir>/<tag> (tag "" = the one `latest` names): every entry reassembled to its full tensor
// (fragments come back merged into model/master/optimizer), this rank's scalars and client_state
// (those of rank 0 when the checkpoint had fewer ranks than `rank`). With expected_model, the
// index is first checked against it (missing/unexpected names, shapes, dtypes: one error listing
// all). With comm, every rank waits for the others to finish reading before returning.
CheckpointState load_checkpoint_files(const std::string& dir, const std::string& tag, int rank,
                                      int world, Communicator* comm = nullptr,
                                      const TensorDict* expected_model = nullptr);
// The tag <dir>/latest names; an error when there is none.
std::string read_latest_tag(const std::string& dir);
// Full weights as f32 (floating entries converted; integer buffers kept), named as the model's
// state_dict: master weights where saved, model weights otherwise. tag "" = latest.
TensorDict consolidate(const std::string& dir, const std::string& tag = "");

// ---- low level: the two halves of a save, for callers that synchronise ranks themselves ----
// This rank's shard, state JSON and fragment list into the staging folder <dir>/.<tag>.partial/.
void write_rank_files(const std::string& dir, const std::string& tag, int rank, int world,
                      const CheckpointState& state, const CheckpointFileHook& on_file_written = nullptr);
// Once every rank's write_rank_files returned: merges their fragment lists into index.json
// (checking every entry is covered exactly), moves the staging folder to <dir>/<tag> and writes
// <dir>/latest. Run by one process.
void publish_checkpoint(const std::string& dir, const std::string& tag, int world,
                        const CheckpointFileHook& on_file_written = nullptr);

// ---- reading entries ----
struct FragmentRef {
  std::string file;  // relative to the checkpoint folder
  std::string key;   // tensor name inside the file
  int64_t offset = 0, length = 0;
};
struct IndexEntry {
  DType dtype = DType::f32;
  Shape shape;
  std::vector<FragmentRef> fragments;  // sorted by offset, covering [0, numel) exactly
};

// index.json of one checkpoint folder, with its shard files read on demand (and cached).
class CheckpointReader {
 public:
  // folder: <dir>/<tag>. Validates index.json and that every file it names exists with the size
  // it recorded (a truncated or missing shard is reported here, naming it).
  explicit CheckpointReader(std::string folder);
  const std::string& folder() const { return folder_; }
  int saved_world() const { return saved_world_; }
  // Entry names in the order they were saved (model state_dict order first).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  const IndexEntry& entry(const std::string& name) const;
  // The whole tensor, in its full shape.
  Tensor read_full(const std::string& name);
  // Elements [offset, offset + length) of the flattened tensor, as a 1-D tensor.
  Tensor read_range(const std::string& name, int64_t offset, int64_t length);
  // rank<r>_state.json as written.
  nlohmann::json read_rank_state(int rank) const;

 private:
  const Tensor& fragment_tensor(const FragmentRef& ref, const std::string& name);

  std::string folder_;
  int saved_world_ = 0;
  std::vector<std::string> names_;
  std::map<std::string, IndexEntry> entries_;
  std::map<std::string, TensorDict> files_;  // shard cache
};

// Checks the "model/" entries of a checkpoint against a model's state_dict: one error listing
// every missing and unexpected name and every shape or dtype difference.
void check_checkpoint_matches_model(const CheckpointReader& reader, const TensorDict& model);

}  // namespace zt
