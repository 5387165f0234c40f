// cuda_report(): versions and devices for zt-report. cuDNN and NCCL are not link dependencies
// of zerotrain, so their run-time versions come from the shared libraries loaded with dlopen
// (what a program using them would get), and their build-time versions from the headers.
#include "cuda/report.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <initializer_list>

#if __has_include(<cudnn_version.h>)
#include <cudnn_version.h>
#define ZT_CUDNN_HEADER 1
#endif
#if __has_include(<nccl.h>)
#include <nccl.h>
#define ZT_NCCL_HEADER 1
#endif

namespace zt::cuda {

namespace {

// CUDA encodes versions as 1000 * major + 10 * minor.
std::string cuda_version_string(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

std::string runtime_error(cudaError_t e) { return std::string("unavailable (") + cudaGetErrorString(e) + ")"; }

std::string cublas_version() {
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) != CUBLAS_STATUS_SUCCESS ||
      cublasGetProperty(MINOR_VERSION, &minor) != CUBLAS_STATUS_SUCCESS ||
      cublasGetProperty(PATCH_LEVEL, &patch) != CUBLAS_STATUS_SUCCESS)
    return "unavailable (cublasGetProperty failed)";
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

// The first of `names` that dlopen finds, or null. The handle stays open: the report is made once.
void* open_first(std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL)) return h;
  return nullptr;
}

// cudnnGetVersion returns major * 10000 + minor * 100 + patch from cuDNN 9 on (major * 1000 +
// minor * 100 + patch before).
std::string cudnn_runtime_version() {
  void* lib = open_first({"libcudnn.so.9", "libcudnn.so.8", "libcudnn.so"});
  if (!lib) return "not found";
  using Fn = size_t (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(lib, "cudnnGetVersion"));
  if (!fn) return "unavailable (no cudnnGetVersion in libcudnn)";
  const size_t v = fn();
  const size_t major_div = v >= 90000 ? 10000 : 1000;
  return std::to_string(v / major_div) + "." + std::to_string((v % major_div) / 100) + "." + std::to_string(v % 100);
}

// ncclGetVersion gives major * 10000 + minor * 100 + patch (NCCL >= 2.9).
std::string nccl_runtime_version() {
  void* lib = open_first({"libnccl.so.2", "libnccl.so"});
  if (!lib) return "not found";
  using Fn = int (*)(int*);
  auto fn = reinterpret_cast<Fn>(dlsym(lib, "ncclGetVersion"));
  int v = 0;
  if (!fn || fn(&v) != 0) return "unavailable (ncclGetVersion failed)";
  return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100);
}

void query_gpus(CudaReport& r) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    r.gpu_error = cudaGetErrorString(e);
    cudaGetLastError();  // clear it so later CUDA calls of the program do not see it
    return;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    r.gpus.push_back({i, p.name, int64_t(p.totalGlobalMem), p.major, p.minor, p.multiProcessorCount});
  }
}

}  // namespace

CudaReport cuda_report() {
  CudaReport r;
  int v = 0;
  const cudaError_t re = cudaRuntimeGetVersion(&v);
  r.runtime_version = re == cudaSuccess ? cuda_version_string(v) : runtime_error(re);
  const cudaError_t de = cudaDriverGetVersion(&v);
  r.driver_version = de == cudaSuccess ? (v == 0 ? "no driver" : cuda_version_string(v)) : runtime_error(de);
  r.cublas_version = cublas_version();
  r.cudnn_version = cudnn_runtime_version();
  r.nccl_version = nccl_runtime_version();
#ifdef ZT_CUDNN_HEADER
  r.cudnn_header = std::to_string(CUDNN_MAJOR) + "." + std::to_string(CUDNN_MINOR) + "." + std::to_string(CUDNN_PATCHLEVEL);
#else
  r.cudnn_header = "not found";
#endif
#ifdef ZT_NCCL_HEADER
  r.nccl_header = std::to_string(NCCL_MAJOR) + "." + std::to_string(NCCL_MINOR) + "." + std::to_string(NCCL_PATCH);
#else
  r.nccl_header = "not found";
#endif
  r.toolkit_version = cuda_version_string(CUDART_VERSION);
#ifdef ZT_CUDA_ARCHITECTURES
  r.architectures = ZT_CUDA_ARCHITECTURES;
#else
  r.architectures = "unknown";
#endif
  query_gpus(r);
  return r;
}

}  // namespace zt::cuda
