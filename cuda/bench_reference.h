// Raw references for the CUDA benchmarks (bench/bench_cuda_ops.cpp): cuBLAS and cudaMemcpy
// called directly, and CUDA-event timing of work queued on zerotrain's streams. No CUDA header
// here (DESIGN.md §1), so a benchmark outside cuda/ can include it; it links only when the CUDA
// backend is built (ZT_HAVE_CUDA).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/dtype.h"

namespace zt::cuda::bench {

struct TimingOptions {
  int warmup = 3;  // untimed calls first (cuBLAS heuristics, caches, clocks)
  int reps = 10;   // timed samples; the median is reported
  int iters = 1;   // calls per sample (many for short kernels, so launch gaps average out)
};

// Milliseconds per call of `fn`, which queues work on the current stream of `device`: CUDA events
// are recorded on that stream around each sample; the median sample over iters.
double time_ms(int device, const TimingOptions& options, const std::function<void()>& fn);

// The same for several functions, timed in turn within each repetition (a sample of the first,
// then of the second, ...), so that clock and power drift over the run reach all of them alike:
// the medians, in the order of `fns`. A reference and zerotrain compared this way see the same
// conditions.
std::vector<double> time_alternately_ms(int device, const TimingOptions& options,
                                        const std::vector<std::function<void()>>& fns);

// Row-major c (m, n) = a (m, k) @ b (k, n), all of `dtype` (f32, f16 or bf16), through
// cublasGemmEx on a cuBLAS handle of this module's own (default settings, as a user calling
// cuBLAS would have), queued on the current stream of `device`. f32 uses TF32 tensor cores when
// `tf32`; f16/bf16 accumulate in f32.
void cublas_gemm(int device, DType dtype, bool tf32, int64_t m, int64_t n, int64_t k, const void* a,
                 const void* b, void* c);

// cudaMemcpyAsync device-to-device of `bytes` on the current stream of `device`.
void device_copy(int device, void* dst, const void* src, size_t bytes);

// Raw kernel launches on the current stream of `device`, for the host-overhead floor: an empty
// kernel, and out = a + b over n floats written as a CUDA program would (one thread per element,
// no dispatch, no allocation, no error check).
void launch_empty_kernel(int device);
void launch_add_f32(int device, float* out, const float* a, const float* b, int64_t n);

// Host nanoseconds per call of the CUDA-side pieces every zerotrain launch goes through (medians
// over 100k-call loops): cudaGetDevice, a DeviceGuard on the current device, current_stream and
// cudaGetLastError. Diagnostics for the small-op overhead.
struct HostCallCosts {
  double get_device_ns = 0, device_guard_ns = 0, current_stream_ns = 0, get_last_error_ns = 0;
};
HostCallCosts host_call_costs(int device);

// The device's name and its theoretical DRAM bandwidth in bytes/s (from the memory clock and
// bus width; 0 when the driver does not report them).
const char* device_name(int device);
double theoretical_bandwidth(int device);

}  // namespace zt::cuda::bench
