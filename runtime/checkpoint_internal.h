// Names and checks shared by the checkpoint writer (checkpoint.cpp) and reader
// (checkpoint_reader.cpp); not part of the public API.
#pragma once
#include <string>
#include <vector>

#include "runtime/checkpoint.h"

namespace zt {

inline constexpr const char* kIndexFile = "index.json";
inline constexpr const char* kLatestFile = "latest";
inline constexpr const char* kIndexFormat = "zerotrain-checkpoint";
inline constexpr int kIndexVersion = 1;
inline constexpr const char* kModelPrefix = "model/";
inline constexpr const char* kMasterPrefix = "master/";
inline constexpr const char* kOptimPrefix = "optim/";

inline std::string rank_shard_file(int rank) { return "rank" + std::to_string(rank) + ".safetensors"; }
inline std::string rank_state_file(int rank) { return "rank" + std::to_string(rank) + "_state.json"; }
// Written last by each rank: its fragments and file sizes, the input of publish_checkpoint.
inline std::string rank_fragments_file(int rank) {
  return "rank" + std::to_string(rank) + "_fragments.json";
}

// Sorts fragments by offset and checks they tile [0, numel) exactly; `where` prefixes errors.
void check_fragment_cover(const std::string& name, int64_t numel,
                          std::vector<FragmentRef>& fragments, const std::string& where);

}  // namespace zt
