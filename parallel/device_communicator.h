// The communicator a device's tensors travel on (DESIGN.md §4). MPI is the bootstrap: mpirun
// starts the processes and the MPI world names them; CPU tensors go over it directly, CUDA
// tensors over NCCL, whose communicator is built from the MPI one (the unique id is broadcast over
// it). The CUDA backend registers its NCCL factory when it is linked in, so this layer names no
// CUDA header and builds without one.
#pragma once
#include <functional>
#include <memory>

#include "core/device.h"
#include "parallel/communicator.h"

namespace zt {

// Builds a communicator over the same ranks as `bootstrap` (collective over it) for tensors on
// `device`.
using DeviceCommunicatorFactory =
    std::function<std::shared_ptr<Communicator>(const std::shared_ptr<Communicator>& bootstrap, Device device)>;
void register_device_communicator(DeviceType type, DeviceCommunicatorFactory factory);

// `bootstrap` itself for CPU tensors (null stays null: a world of one); for another device type
// the registered factory's communicator, or an error saying this build has none. Collective.
std::shared_ptr<Communicator> device_communicator(const std::shared_ptr<Communicator>& bootstrap, Device device);

}  // namespace zt
