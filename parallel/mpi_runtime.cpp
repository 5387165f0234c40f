// MpiRuntime: MPI initialisation and finalisation, and who this process is.
#include "parallel/mpi_runtime.h"

#include <mpi.h>

#include <cstdlib>

#include "core/backend.h"
#include "parallel/mpi_communicator.h"

namespace zt {

namespace {

// An integer environment variable, or -1 when unset; malformed values are errors naming it.
int env_int(const char* name) {
  const char* text = std::getenv(name);
  if (!text || !*text) return -1;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  ZT_CHECK(end && *end == '\0' && v >= 0, name, ": expected a non-negative integer, found '", text, "'");
  return int(v);
}

}  // namespace

LaunchInfo launch_info_from_env() {
  LaunchInfo info;
  const int rank = env_int("OMPI_COMM_WORLD_RANK"), size = env_int("OMPI_COMM_WORLD_SIZE");
  if (rank < 0 || size < 0) return info;
  info.from_launcher = true;
  info.rank = rank;
  info.world_size = size;
  const int local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK");
  const int local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE");
  info.local_rank = local_rank >= 0 ? local_rank : 0;
  info.local_size = local_size > 0 ? local_size : 1;
  ZT_CHECK(info.rank < info.world_size && info.local_rank < info.local_size,
           "Open MPI environment is inconsistent: rank ", info.rank, " of ", info.world_size,
           ", local rank ", info.local_rank, " of ", info.local_size);
  return info;
}

Device local_device(DeviceType type, const LaunchInfo& info) {
  if (type == DeviceType::CPU) return Device::cpu();
  ZT_CHECK(has_backend(type), "no ", Device{type, 0}.str(), " backend in this build or no device present");
  return Device{type, device_index_for_local_rank(info, backend_for(type).device_count())};
}

Device device_for_flag(const std::string& flag, const LaunchInfo& info) {
  const bool have_cuda = has_backend(DeviceType::CUDA);
  if (flag.empty()) {
    const bool enough = have_cuda && backend_for(DeviceType::CUDA).device_count() >= info.local_size;
    return enough ? local_device(DeviceType::CUDA, info) : Device::cpu();
  }
  const Device d = Device::parse(flag);
  ZT_CHECK(has_backend(d.type), "--device ", flag, ": no such backend in this build or no GPU present (expected cpu",
           have_cuda ? " or cuda)" : ")");
  if (d.is_cpu() || flag.find(':') != std::string::npos) return d;
  return local_device(d.type, info);
}

int device_index_for_local_rank(const LaunchInfo& info, int visible_devices) {
  ZT_CHECK(visible_devices > 0, "local rank ", info.local_rank, " needs a GPU, but none is visible "
           "(check CUDA_VISIBLE_DEVICES)");
  ZT_CHECK(info.local_rank < visible_devices, "local rank ", info.local_rank, " of ", info.local_size,
           " on this node needs GPU ", info.local_rank, ", but only ", visible_devices,
           " are visible; start at most ", visible_devices, " ranks per node");
  return info.local_rank;
}

MpiRuntime::MpiRuntime(MpiRuntimeOptions options) {
  int initialized = 0, finalized = 0;
  check_mpi(MPI_Initialized(&initialized), "MPI_Initialized");
  check_mpi(MPI_Finalized(&finalized), "MPI_Finalized");
  ZT_CHECK(!finalized, "MpiRuntime: MPI was already finalized in this process (MPI cannot start "
           "twice); create one MpiRuntime for the whole program");
  if (!initialized) {
    // FUNNELED: only the thread that created the runtime calls MPI (OpenMP workers never do).
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owns_mpi_ = true;
  }
  MPI_Comm dup = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &dup), "MPI_Comm_dup");
  world_ = std::make_shared<MpiCommunicator>(dup, MpiCommunicatorOptions{options.comm_timeout_s, "world"});

  info_ = launch_info_from_env();
  ZT_CHECK(!info_.from_launcher || (info_.rank == world_->rank() && info_.world_size == world_->size()),
           "Open MPI's environment says rank ", info_.rank, " of ", info_.world_size,
           " but MPI_COMM_WORLD says ", world_->rank(), " of ", world_->size());
  if (!info_.from_launcher) {
    // Another launcher (or a singleton): derive the node-local rank from shared-memory groups.
    info_.rank = world_->rank();
    info_.world_size = world_->size();
    MPI_Comm node = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info_.rank, MPI_INFO_NULL, &node),
              "MPI_Comm_split_type");
    MPI_Comm_rank(node, &info_.local_rank);
    MPI_Comm_size(node, &info_.local_size);
    MPI_Comm_free(&node);
  }
}

MpiRuntime::~MpiRuntime() {
  world_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_mpi_ && !finalized) MPI_Finalize();
}

}  // namespace zt
