// Topology: world ranks laid out as a PP x DP x TP grid, tensor-parallel fastest as in Megatron
// (DESIGN.md §4), with one communicator per group. This issue uses the DP group only; the TP and
// PP groups are built the same way for the layers that come next.
//
//   world_rank = (pp_rank * dp + dp_rank) * tp + tp_rank
//
// So with tp = 2 the two halves of a layer sit on neighbouring ranks (one node, fastest link),
// data-parallel replicas are tp apart, and pipeline stages are dp * tp apart.
#pragma once
#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace zt {

struct TopologyOptions {
  int tensor_parallel = 1;
  int pipeline_parallel = 1;
  int data_parallel = 0;  // 0: world size / (tp * pp)
};

struct GridCoord {
  int pp = 0, dp = 0, tp = 0;
  bool operator==(const GridCoord&) const = default;
};

class Topology {
 public:
  // Collective over world: every rank builds the same grid and its three group communicators.
  Topology(std::shared_ptr<Communicator> world, TopologyOptions options);

  int tp_size() const { return tp_; }
  int dp_size() const { return dp_; }
  int pp_size() const { return pp_; }
  const GridCoord& coord() const { return coord_; }
  // The grid position of any world rank, and back.
  GridCoord coord_of(int world_rank) const;
  int world_rank_of(const GridCoord& c) const;
  std::string str() const;  // "pp 1 x dp 2 x tp 2 (world 4); this rank: pp 0, dp 1, tp 0"

  const std::shared_ptr<Communicator>& world() const { return world_; }
  // Ranks that differ only in their data-parallel / tensor-parallel / pipeline coordinate.
  const std::shared_ptr<Communicator>& dp_group() const { return dp_group_; }
  const std::shared_ptr<Communicator>& tp_group() const { return tp_group_; }
  const std::shared_ptr<Communicator>& pp_group() const { return pp_group_; }

 private:
  std::shared_ptr<Communicator> world_, dp_group_, tp_group_, pp_group_;
  int tp_ = 1, dp_ = 1, pp_ = 1;
  GridCoord coord_;
};

}  // namespace zt
