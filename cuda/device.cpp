// Device selection, per-device current streams and events (see cuda/device.h).
#include "cuda/device.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <vector>

#include "cuda/cuda_check.h"

namespace zt::cuda {

void throw_cuda_error(const char* file, int line, const char* call, cudaError_t code) {
  ::zt::detail::throw_error(file, line,
                            ::zt::detail::concat("CUDA call ", call, " failed with error ", int(code),
                                                 " (", cudaGetErrorName(code), ": ",
                                                 cudaGetErrorString(code), ")"));
}

void throw_cublas_error(const char* file, int line, const char* call, cublasStatus_t code) {
  ::zt::detail::throw_error(file, line,
                            ::zt::detail::concat("cuBLAS call ", call, " failed with status ",
                                                 int(code), " (", cublasGetStatusName(code), ": ",
                                                 cublasGetStatusString(code), ")"));
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no GPU: clear the sticky error, report none
    return 0;
  }
  return n;
}

int compute_capability_major(int device) {
  static std::mutex mutex;
  static std::vector<int> majors;  // by device, 0: not asked yet
  std::lock_guard<std::mutex> lock(mutex);
  if (size_t(device) >= majors.size()) majors.resize(size_t(device) + 1, 0);
  if (majors[size_t(device)] == 0)
    ZT_CUDA_CHECK(cudaDeviceGetAttribute(&majors[size_t(device)], cudaDevAttrComputeCapabilityMajor, device));
  return majors[size_t(device)];
}

int current_device() {
  int d = 0;
  ZT_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

void set_device(int index) {
  const int n = device_count();
  ZT_CHECK(index >= 0 && index < n, "CUDA device index ", index, " out of range (", n,
           " devices visible)");
  ZT_CUDA_CHECK(cudaSetDevice(index));
}

DeviceGuard::DeviceGuard(int index) : previous_(current_device()), switched_(index != previous_) {
  if (switched_) set_device(index);
}

DeviceGuard::~DeviceGuard() {
  if (switched_) (void)cudaSetDevice(previous_);  // destructors do not throw
}

namespace {

// One stream per device, created on first use and never destroyed. Every op asks for its
// stream, so the lookup after creation is one atomic load (no lock: Note [Small-op host cost] in
// core/ops_util.h).
constexpr int kMaxDevices = 64;
using StreamTable = std::array<std::atomic<cudaStream_t>, kMaxDevices>;
std::mutex stream_mutex;  // serialises creation only

cudaStream_t stream_of(StreamTable& streams, int index) {
  if (index >= 0 && index < kMaxDevices) {
    if (cudaStream_t s = streams[size_t(index)].load(std::memory_order_acquire)) return s;
  }
  std::lock_guard<std::mutex> lock(stream_mutex);
  const int n = std::min(device_count(), kMaxDevices);
  ZT_CHECK(index >= 0 && index < n, "CUDA device index ", index, " out of range (", n, " devices visible)");
  cudaStream_t s = streams[size_t(index)].load(std::memory_order_relaxed);
  if (!s) {
    DeviceGuard guard(index);
    ZT_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    streams[size_t(index)].store(s, std::memory_order_release);
  }
  return s;
}

}  // namespace

cudaStream_t current_stream(int index) {
  static StreamTable streams{};
  return stream_of(streams, index);
}

cudaStream_t copy_stream(int index) {
  static StreamTable streams{};
  return stream_of(streams, index);
}

void synchronize(int device) {
  DeviceGuard guard(device);
  ZT_CUDA_CHECK(cudaStreamSynchronize(current_stream(device)));
}

Event::Event(int device, bool timing) : device_(device) {
  DeviceGuard guard(device);
  ZT_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

Event::~Event() {
  if (event_) (void)cudaEventDestroy(event_);  // destructors do not throw
}

void Event::record(cudaStream_t stream) {
  DeviceGuard guard(device_);
  ZT_CUDA_CHECK(cudaEventRecord(event_, stream));
}

void Event::wait(cudaStream_t stream) const { ZT_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }

void Event::synchronize() const { ZT_CUDA_CHECK(cudaEventSynchronize(event_)); }

bool Event::query() const {
  const cudaError_t s = cudaEventQuery(event_);
  if (s == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  ZT_CUDA_CHECK(s);
  return true;
}

float Event::elapsed_ms(const Event& end) const {
  float ms = 0;
  ZT_CUDA_CHECK(cudaEventElapsedTime(&ms, event_, end.event_));
  return ms;
}

}  // namespace zt::cuda
