// Who a process is: Open MPI's environment read into LaunchInfo, and the GPU its local rank picks.
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "core/backend.h"
#include "parallel/mpi_runtime.h"

using namespace zt;

namespace {

// Sets Open MPI's variables for one check and restores what the process had (under mpirun the
// real values are there).
class OmpiEnv {
 public:
  explicit OmpiEnv(const std::map<std::string, std::string>& values) {
    for (const char* name : kNames) {
      const char* old = std::getenv(name);
      if (old) saved_[name] = old;
      unsetenv(name);
    }
    for (const auto& [k, v] : values) setenv(k.c_str(), v.c_str(), 1);
  }
  ~OmpiEnv() {
    for (const char* name : kNames) unsetenv(name);
    for (const auto& [k, v] : saved_) setenv(k.c_str(), v.c_str(), 1);
  }

 private:
  static constexpr const char* kNames[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                           "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"};
  std::map<std::string, std::string> saved_;
};

}  // namespace

TEST_CASE("without a launcher a process is a world of one") {
  OmpiEnv env({});
  const LaunchInfo info = launch_info_from_env();
  CHECK_FALSE(info.from_launcher);
  CHECK(info.rank == 0);
  CHECK(info.world_size == 1);
  CHECK(info.local_rank == 0);
  CHECK(info.local_size == 1);
}

TEST_CASE("rank, world size and local rank come from Open MPI's environment") {
  OmpiEnv env({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"},
               {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  const LaunchInfo info = launch_info_from_env();
  CHECK(info.from_launcher);
  CHECK(info.rank == 5);
  CHECK(info.world_size == 8);
  CHECK(info.local_rank == 1);
  CHECK(info.local_size == 4);
  CHECK(device_index_for_local_rank(info, 4) == 1);
  CHECK_THROWS_WITH_AS(device_index_for_local_rank(info, 1), doctest::Contains("only 1 are visible"), Error);
  CHECK_THROWS_WITH_AS(device_index_for_local_rank(info, 0), doctest::Contains("none is visible"), Error);
}

TEST_CASE("local_device: the CPU for CPU runs; a rank's GPU by local rank, or a clear error without one") {
  LaunchInfo info;
  info.local_rank = 0;
  CHECK(local_device(DeviceType::CPU, info) == Device::cpu());
  if (!has_backend(DeviceType::CUDA)) {
    CHECK_THROWS_WITH_AS(local_device(DeviceType::CUDA, info), doctest::Contains("no cuda:0 backend"), Error);
    return;
  }
  const int gpus = backend_for(DeviceType::CUDA).device_count();
  REQUIRE(gpus >= 1);
  info.local_rank = gpus - 1;
  CHECK(local_device(DeviceType::CUDA, info) == Device::cuda(gpus - 1));
}

TEST_CASE("device_for_flag: cpu, cuda by local rank, cuda:N as given; the default follows the GPUs") {
  LaunchInfo info;
  info.local_rank = 0;
  info.local_size = 1;
  CHECK(device_for_flag("cpu", info) == Device::cpu());
  CHECK_THROWS_WITH_AS(device_for_flag("tpu", info), doctest::Contains("bad device 'tpu'"), Error);
  if (!has_backend(DeviceType::CUDA)) {
    CHECK(device_for_flag("", info) == Device::cpu());
    CHECK_THROWS_WITH_AS(device_for_flag("cuda", info), doctest::Contains("--device cuda: no such backend"), Error);
    return;
  }
  const int gpus = backend_for(DeviceType::CUDA).device_count();
  CHECK(device_for_flag("", info) == Device::cuda(0));
  CHECK(device_for_flag("cuda:0", info) == Device::cuda(0));
  info.local_size = gpus + 1;  // more ranks on the node than GPUs: the default stays on the CPU
  CHECK(device_for_flag("", info) == Device::cpu());
}

TEST_CASE("a malformed or inconsistent launcher environment is an error naming it") {
  {
    OmpiEnv env({{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
    CHECK_THROWS_WITH_AS(launch_info_from_env(), doctest::Contains("OMPI_COMM_WORLD_RANK: expected a non-negative"),
                         Error);
  }
  OmpiEnv env({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
  CHECK_THROWS_WITH_AS(launch_info_from_env(), doctest::Contains("rank 2 of 2"), Error);
}
