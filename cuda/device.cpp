// Device selection, per-device current streams and events (see cuda/device.h).
#include "cuda/device.h"

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

DeviceGuard::DeviceGuard(int index) : previous_(current_device()) {
  if (index != previous_) set_device(index);
}

DeviceGuard::~DeviceGuard() {
  int now = previous_;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) (void)cudaSetDevice(previous_);
}

namespace {

// One stream per device from `streams`, created on first use.
cudaStream_t stream_of(std::vector<cudaStream_t>& streams, int index) {
  if (streams.empty()) streams.assign(size_t(device_count()), nullptr);
  ZT_CHECK(index >= 0 && size_t(index) < streams.size(), "CUDA device index ", index,
           " out of range (", streams.size(), " devices visible)");
  if (!streams[size_t(index)]) {
    DeviceGuard guard(index);
    ZT_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[size_t(index)], cudaStreamNonBlocking));
  }
  return streams[size_t(index)];
}

std::mutex stream_mutex;

}  // namespace

cudaStream_t current_stream(int index) {
  static std::vector<cudaStream_t> streams;
  std::lock_guard<std::mutex> lock(stream_mutex);
  return stream_of(streams, index);
}

cudaStream_t copy_stream(int index) {
  static std::vector<cudaStream_t> streams;
  std::lock_guard<std::mutex> lock(stream_mutex);
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
