// Device selection, the current stream of each device and events (DESIGN.md §2). Each device
// gets one non-default stream, created on first use, on which every kernel, copy and cuBLAS
// call of the backend is queued; communication and offload will add their own streams.
#pragma once
#include <cuda_runtime_api.h>

#include "core/device.h"
#include "cuda/cuda_api.h"

namespace zt::cuda {

int current_device();
void set_device(int index);

// Makes `index` the current device for a scope; a guard that switched restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  explicit DeviceGuard(Device device) : DeviceGuard(device.index) {}
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
  bool switched_;  // a guard that found `index` current changes nothing, on entry or exit
};

// The stream kernels for `index` are queued on (created once per device, never destroyed).
cudaStream_t current_stream(int index);
inline cudaStream_t current_stream(Device device) { return current_stream(device.index); }
// The stream raw::copy_async queues host <-> device copies on, one per device beside the current
// one, so a transfer overlaps the kernels queued after it (created once, never destroyed).
cudaStream_t copy_stream(int index);

// A CUDA event on one device: record on a stream, let another stream wait, or time.
class Event {
 public:
  explicit Event(int device, bool timing = false);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(cudaStream_t stream);
  void wait(cudaStream_t stream) const;  // stream waits for the recorded work
  void synchronize() const;               // host waits
  bool query() const;                     // recorded work finished?
  float elapsed_ms(const Event& end) const;

 private:
  int device_;
  cudaEvent_t event_ = nullptr;
};

}  // namespace zt::cuda
