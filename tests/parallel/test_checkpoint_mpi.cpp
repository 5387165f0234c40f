// Checkpoints across MPI ranks: every rank saves its flat partition of a tensor plus its own
// scalars through save_checkpoint_files with the world communicator; `latest` is published only
// after the slowest rank finished; every rank loads the full tensor and its own scalars back.
// Runs as a world of one and under mpirun -np 2 / -np 4 (tests/CMakeLists.txt).
#include <doctest/doctest.h>

#include <stdlib.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/factory.h"
#include "core/ops.h"
#include "mpi_world.h"
#include "shared_temp_dir.h"
#include "runtime/checkpoint.h"
#include "runtime/checkpoint_io.h"

using namespace zt;
using zt::test::world;

namespace {

std::vector<double> values(const Tensor& t) { return raw::to(raw::contiguous(t), DType::f64).to_vector<double>(); }

// 11 elements (uneven over 2 and 4 ranks): element i = 0.25 i - 1.
Tensor full_master() {
  std::vector<float> v(11);
  for (int i = 0; i < 11; ++i) v[size_t(i)] = 0.25f * float(i) - 1.0f;
  return from_vector(v, {11});
}

CheckpointState state_of(int rank, int world_size, int step) {
  CheckpointState s;
  s.model.set("w", full({2, 3}, double(step)));  // replica: rank 0 writes it
  const int64_t chunk = (11 + world_size - 1) / world_size;
  const int64_t begin = std::min<int64_t>(11, chunk * rank), end = std::min<int64_t>(11, begin + chunk);
  s.fragments.push_back({"master/m", {11}, begin, raw::clone(raw::narrow(full_master(), 0, begin, end - begin))});
  s.scalars = {{"rank", rank}, {"step", step}};
  s.client_state = {{"from_rank", rank}};
  return s;
}

}  // namespace

TEST_CASE("ranks save partitions together and load them back; latest waits for every rank") {
  Communicator& comm = *world();
  const int rank = comm.rank(), size = comm.size();
  const std::string dir = zt::test::shared_temp_dir(comm, "zt_ckpt_mpi");

  save_checkpoint_files(dir, "first", rank, size, state_of(rank, size, 1), &comm);
  CHECK(read_latest_tag(dir) == "first");

  // The last rank is slow: while it is still writing, `latest` must still name the old tag.
  bool latest_was_old = true;
  auto slow_last_rank = [&](const std::string& path) {
    if (rank != size - 1 || path.find("_fragments.json") == std::string::npos) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    latest_was_old = read_latest_tag(dir) == "first";
  };
  save_checkpoint_files(dir, "second", rank, size, state_of(rank, size, 2), &comm, slow_last_rank);
  CHECK(latest_was_old);
  CHECK(read_latest_tag(dir) == "second");

  const CheckpointState s = load_checkpoint_files(dir, "", rank, size, &comm);
  CHECK(values(s.master.at("m")) == values(full_master()));
  CHECK(values(s.model.at("w")) == std::vector<double>(6, 2.0));
  CHECK(s.scalars["rank"] == rank);
  CHECK(s.scalars["step"] == 2);
  CHECK(s.client_state["from_rank"] == rank);

  // The same checkpoint read as a world of one (resharding to fewer ranks).
  const CheckpointState one = load_checkpoint_files(dir, "second", 0, 1);
  CHECK(values(one.master.at("m")) == values(full_master()));
  CHECK(CheckpointReader(dir + "/second").saved_world() == size);

  comm.barrier();
  if (rank == 0) remove_tree(dir);
}
