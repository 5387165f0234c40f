// Topology: the PP x DP x TP grid and its group communicators.
#include "parallel/topology.h"

namespace zt {

Topology::Topology(std::shared_ptr<Communicator> world, TopologyOptions options)
    : world_(std::move(world)), tp_(options.tensor_parallel), pp_(options.pipeline_parallel) {
  ZT_CHECK(world_, "Topology: the world communicator is null");
  const int n = world_->size();
  ZT_CHECK(tp_ >= 1 && pp_ >= 1 && options.data_parallel >= 0,
           "Topology: expected tp >= 1, pp >= 1 and dp >= 0 (0: inferred), found tp ", tp_, ", pp ",
           pp_, ", dp ", options.data_parallel);
  ZT_CHECK(n % (tp_ * pp_) == 0, "Topology: world size ", n, " is not divisible by tp ", tp_,
           " x pp ", pp_, " = ", tp_ * pp_);
  dp_ = options.data_parallel > 0 ? options.data_parallel : n / (tp_ * pp_);
  ZT_CHECK(pp_ * dp_ * tp_ == n, "Topology: pp ", pp_, " x dp ", dp_, " x tp ", tp_, " = ",
           pp_ * dp_ * tp_, " ranks, but the world has ", n);
  coord_ = coord_of(world_->rank());
  const int r = world_->rank();
  // Each group is one split: the color names the group (the coordinates that stay fixed), the
  // key orders its members by the coordinate that varies.
  dp_group_ = world_->split(coord_.pp * tp_ + coord_.tp, coord_.dp);
  tp_group_ = world_->split(coord_.pp * dp_ + coord_.dp, coord_.tp);
  pp_group_ = world_->split(coord_.dp * tp_ + coord_.tp, coord_.pp);
  ZT_CHECK(dp_group_ && dp_group_->rank() == coord_.dp && tp_group_->rank() == coord_.tp &&
               pp_group_->rank() == coord_.pp,
           "Topology: group ranks disagree with the grid on world rank ", r);
}

GridCoord Topology::coord_of(int world_rank) const {
  ZT_CHECK(world_rank >= 0 && world_rank < pp_ * dp_ * tp_, "Topology: world rank ", world_rank,
           " is outside the grid of ", pp_ * dp_ * tp_, " ranks");
  GridCoord c;
  c.tp = world_rank % tp_;
  c.dp = (world_rank / tp_) % dp_;
  c.pp = world_rank / (tp_ * dp_);
  return c;
}

int Topology::world_rank_of(const GridCoord& c) const {
  ZT_CHECK(c.pp >= 0 && c.pp < pp_ && c.dp >= 0 && c.dp < dp_ && c.tp >= 0 && c.tp < tp_,
           "Topology: coordinate (pp ", c.pp, ", dp ", c.dp, ", tp ", c.tp, ") is outside the grid pp ",
           pp_, " x dp ", dp_, " x tp ", tp_);
  return (c.pp * dp_ + c.dp) * tp_ + c.tp;
}

std::string Topology::str() const {
  return detail::concat("pp ", pp_, " x dp ", dp_, " x tp ", tp_, " (world ", pp_ * dp_ * tp_,
                        "); this rank: pp ", coord_.pp, ", dp ", coord_.dp, ", tp ", coord_.tp);
}

}  // namespace zt
