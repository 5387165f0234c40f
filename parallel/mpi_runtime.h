// MpiRuntime: owns MPI's lifetime in a program (MPI_Init_thread .. MPI_Finalize) and tells each
// process who it is: rank, world size and local rank (the rank among the processes of its node,
// which picks the GPU). Under `mpirun -np N` these come from Open MPI; a program started without
// a launcher is a world of one.
//
// Create one MpiRuntime at the top of main() and keep it alive while communicators are used;
// every communicator must be destroyed before it (a communicator outliving MPI skips its free).
#pragma once
#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace zt {

// What the launcher says about this process, from Open MPI's environment
// (OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE); a world of one when they are absent.
struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_size = 1;
  bool from_launcher = false;  // the variables were present
};
LaunchInfo launch_info_from_env();
// The GPU this process uses: device `local_rank` among those visible to it (CUDA_VISIBLE_DEVICES
// has already narrowed and renumbered them, as zt-run arranges). An error when the node runs more
// ranks than it shows GPUs.
int device_index_for_local_rank(const LaunchInfo& info, int visible_devices);
// This process's device of `type`: the CPU, or the GPU of its local rank (as above).
Device local_device(DeviceType type, const LaunchInfo& info);
// The device an app's --device flag names for this process: "cpu"; "cuda" (each rank its local
// rank's GPU; the engine reduces over NCCL); "cuda:N" as given; empty: cuda when this build has a
// GPU for every local rank, else cpu. An error names the flag when the device is not there.
Device device_for_flag(const std::string& flag, const LaunchInfo& info);

struct MpiRuntimeOptions {
  double comm_timeout_s = 0;  // watchdog timeout of the world communicator; 0: ZT_COMM_TIMEOUT
};

class MpiRuntime {
 public:
  explicit MpiRuntime(MpiRuntimeOptions options = {});
  // Finalizes MPI when this object initialised it.
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int rank() const { return info_.rank; }
  int world_size() const { return info_.world_size; }
  int local_rank() const { return info_.local_rank; }
  int local_size() const { return info_.local_size; }
  const LaunchInfo& launch_info() const { return info_; }
  // A communicator over every rank (a duplicate of MPI_COMM_WORLD, so user MPI calls on
  // MPI_COMM_WORLD never interleave with zerotrain's).
  const std::shared_ptr<Communicator>& world() const { return world_; }

 private:
  LaunchInfo info_;
  bool owns_mpi_ = false;
  std::shared_ptr<Communicator> world_;
};

}  // namespace zt
