// The registry behind device_communicator (parallel/device_communicator.h).
#include "parallel/device_communicator.h"

#include <map>
#include <mutex>

#include "core/error.h"

namespace zt {

namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

std::map<DeviceType, DeviceCommunicatorFactory>& registry() {
  static std::map<DeviceType, DeviceCommunicatorFactory> factories;
  return factories;
}

}  // namespace

void register_device_communicator(DeviceType type, DeviceCommunicatorFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[type] = std::move(factory);
}

std::shared_ptr<Communicator> device_communicator(const std::shared_ptr<Communicator>& bootstrap, Device device) {
  if (device.is_cpu() || !bootstrap) return bootstrap;
  DeviceCommunicatorFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(device.type);
    ZT_CHECK(it != registry().end(), "device_communicator: no communicator for ", device.str(),
             " tensors in this build (expected NCCL, registered by the CUDA backend when zerotrain is built "
             "with nvcc and NCCL); use CPU tensors for MPI");
    factory = it->second;
  }
  return factory(bootstrap, device);
}

}  // namespace zt
