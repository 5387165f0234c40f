// The PP x DP x TP grid: coordinates (TP fastest), group membership checked by summing world ranks
// inside each group, and the error for a grid that does not fit the world.
#include <doctest/doctest.h>

#include "core/factory.h"
#include "mpi_world.h"
#include "parallel/topology.h"

using namespace zt;
using zt::test::world;

namespace {

// The sum of the world ranks in comm's group, by all_reduce.
int64_t sum_of_world_ranks(Communicator& comm) {
  Tensor x = full({1}, double(world()->rank()), DType::i64);
  comm.all_reduce(x);
  return int64_t(x.item());
}

}  // namespace

TEST_CASE("a pure data-parallel grid puts every rank in one DP group") {
  Topology topo(world(), {});
  const int W = world()->size();
  CHECK(topo.dp_size() == W);
  CHECK(topo.coord() == GridCoord{0, world()->rank(), 0});
  CHECK(topo.dp_group()->size() == W);
  CHECK(topo.tp_group()->size() == 1);
  CHECK(sum_of_world_ranks(*topo.dp_group()) == int64_t(W) * (W - 1) / 2);
}

TEST_CASE("tp is the fastest coordinate and each group holds the ranks that differ only in it") {
  const int W = world()->size();
  if (W % 2 != 0) return;  // needs an even world (np 2, np 4)
  Topology topo(world(), TopologyOptions{2, 1, 0});
  const int r = world()->rank();
  CHECK(topo.tp_size() == 2);
  CHECK(topo.dp_size() == W / 2);
  CHECK(topo.coord() == GridCoord{0, r / 2, r % 2});
  CHECK(topo.world_rank_of(topo.coord_of(r)) == r);
  // tp group {2k, 2k+1}; dp group: ranks with the same parity.
  CHECK(sum_of_world_ranks(*topo.tp_group()) == (r / 2) * 4 + 1);
  int64_t parity_sum = 0;
  for (int q = r % 2; q < W; q += 2) parity_sum += q;
  CHECK(sum_of_world_ranks(*topo.dp_group()) == parity_sum);
  CHECK(topo.str().find("tp 2") != std::string::npos);
}

TEST_CASE("a 3D grid pp 2 x dp 1 x tp 2 on four ranks") {
  if (world()->size() != 4) return;
  Topology topo(world(), TopologyOptions{2, 2, 0});
  const int r = world()->rank();
  CHECK(topo.dp_size() == 1);
  CHECK(topo.coord() == GridCoord{r / 2, 0, r % 2});
  // pp group: same tp coordinate, stages 2 apart: {0, 2} or {1, 3}.
  CHECK(sum_of_world_ranks(*topo.pp_group()) == (r % 2) * 2 + 2);
  CHECK(topo.pp_group()->rank() == r / 2);
}

TEST_CASE("a grid that does not fit the world is an error naming the sizes") {
  const int W = world()->size();
  const std::string tp = "not divisible by tp " + std::to_string(W + 1);
  CHECK_THROWS_WITH_AS(Topology(world(), TopologyOptions{W + 1, 1, 0}), doctest::Contains(tp.c_str()), Error);
  CHECK_THROWS_WITH_AS(Topology(world(), TopologyOptions{1, 1, W + 1}), doctest::Contains("but the world has"),
                       Error);
}
