// Raw references for the CUDA benchmarks: see cuda/bench_reference.h.
#include "cuda/bench_reference.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/device.h"

namespace zt::cuda::bench {

namespace {

double median(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

}  // namespace

std::vector<double> time_alternately_ms(int device, const TimingOptions& options,
                                        const std::vector<std::function<void()>>& fns) {
  ZT_CHECK(options.reps > 0 && options.iters > 0, "bench time_ms: reps and iters must be positive, found ",
           options.reps, " and ", options.iters);
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  for (const auto& fn : fns)
    for (int i = 0; i < options.warmup; ++i) fn();
  ZT_CUDA_CHECK(cudaStreamSynchronize(stream));
  Event start(device, true), stop(device, true);
  std::vector<std::vector<double>> samples(fns.size());
  for (int r = 0; r < options.reps; ++r) {
    for (size_t f = 0; f < fns.size(); ++f) {
      start.record(stream);
      for (int i = 0; i < options.iters; ++i) fns[f]();
      stop.record(stream);
      stop.synchronize();
      samples[f].push_back(double(start.elapsed_ms(stop)) / options.iters);
    }
  }
  std::vector<double> medians;
  for (auto& s : samples) medians.push_back(median(std::move(s)));
  return medians;
}

double time_ms(int device, const TimingOptions& options, const std::function<void()>& fn) {
  return time_alternately_ms(device, options, {fn}).front();
}

namespace {

// The reference's own cuBLAS handle per device: default math mode and default workspace, bound
// to zerotrain's stream so both sides are timed by the same events.
cublasHandle_t reference_handle(int device) {
  static std::mutex mutex;
  static std::vector<cublasHandle_t> handles;
  std::lock_guard<std::mutex> lock(mutex);
  if (handles.empty()) handles.assign(size_t(device_count()), nullptr);
  ZT_CHECK(device >= 0 && size_t(device) < handles.size(), "bench cublas_gemm: CUDA device ", device,
           " out of range (", handles.size(), " visible)");
  if (!handles[size_t(device)]) {
    DeviceGuard guard(device);
    ZT_CUBLAS_CHECK(cublasCreate(&handles[size_t(device)]));
  }
  ZT_CUBLAS_CHECK(cublasSetStream(handles[size_t(device)], current_stream(device)));
  return handles[size_t(device)];
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: break;
  }
  ZT_FAIL("bench cublas_gemm: dtype ", dtype_name(t), " is not supported (expected f32, f16 or bf16)");
}

}  // namespace

void cublas_gemm(int device, DType dtype, bool tf32, int64_t m, int64_t n, int64_t k, const void* a,
                 const void* b, void* c) {
  DeviceGuard guard(device);
  cublasHandle_t handle = reference_handle(device);
  const cudaDataType_t type = cuda_type(dtype);
  const cublasComputeType_t compute =
      dtype == DType::f32 && tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const float alpha = 1.0f, beta = 0.0f;
  // Row-major c = a @ b is column-major c^T = b^T @ a^T: b first, no transposes.
  ZT_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(m), int(k), &alpha, b, type,
                               int(n), a, type, int(k), &beta, c, type, int(n), compute,
                               CUBLAS_GEMM_DEFAULT));
}

void device_copy(int device, void* dst, const void* src, size_t bytes) {
  DeviceGuard guard(device);
  ZT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, current_stream(device)));
}

namespace {

__global__ void empty_kernel() {}

__global__ void add_f32_kernel(float* out, const float* a, const float* b, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

}  // namespace

void launch_empty_kernel(int device) { empty_kernel<<<1, 32, 0, current_stream(device)>>>(); }

void launch_add_f32(int device, float* out, const float* a, const float* b, int64_t n) {
  add_f32_kernel<<<unsigned((n + 255) / 256), 256, 0, current_stream(device)>>>(out, a, b, n);
}

namespace {

template <typename Fn>
double ns_per_call(const Fn& fn) {
  using Clock = std::chrono::steady_clock;
  constexpr int kCalls = 100000;
  std::vector<double> samples;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < kCalls; ++i) fn();
    samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kCalls);
  }
  return median(std::move(samples));
}

}  // namespace

HostCallCosts host_call_costs(int device) {
  DeviceGuard outer(device);
  HostCallCosts c;
  volatile int sink = 0;
  c.get_device_ns = ns_per_call([&] {
    int d = 0;
    (void)cudaGetDevice(&d);
    sink = d;
  });
  c.device_guard_ns = ns_per_call([&] { DeviceGuard g(device); });
  c.current_stream_ns = ns_per_call([&] { sink = current_stream(device) != nullptr; });
  c.get_last_error_ns = ns_per_call([&] { sink = int(cudaGetLastError()); });
  return c;
}

const char* device_name(int device) {
  static std::mutex mutex;
  static std::vector<std::string> names;
  std::lock_guard<std::mutex> lock(mutex);
  if (names.empty()) names.resize(size_t(device_count()));
  ZT_CHECK(device >= 0 && size_t(device) < names.size(), "bench device_name: CUDA device ", device,
           " out of range");
  std::string& name = names[size_t(device)];
  if (name.empty()) {
    cudaDeviceProp prop{};
    ZT_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    name = prop.name;
  }
  return name.c_str();
}

double theoretical_bandwidth(int device) {
  int clock_khz = 0, bus_bits = 0;
  if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0.0;
  }
  return 2.0 * clock_khz * 1e3 * bus_bits / 8.0;  // DDR: two transfers per clock
}

}  // namespace zt::cuda::bench
