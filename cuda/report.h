// What the CUDA side of this build and machine offer, for zt-report (apps/zt-report): versions
// of the CUDA runtime and driver, cuBLAS, cuDNN and NCCL, the compiled architectures and the
// GPUs seen. It includes no CUDA header (DESIGN.md §1) and only links when the CUDA backend is
// built (ZT_HAVE_CUDA).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace zt::cuda {

struct GpuReport {
  int index = 0;
  std::string name;
  int64_t total_memory = 0;  // bytes
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
};

// Versions are "major.minor[.patch]" strings; a library that cannot be found or queried reads
// "not found" or "unavailable (<reason>)", never an empty string.
struct CudaReport {
  std::string runtime_version;     // cudaRuntimeGetVersion (the CUDA runtime linked in)
  std::string driver_version;      // cudaDriverGetVersion (CUDA version the driver supports)
  std::string cublas_version;      // cublasGetProperty
  std::string cudnn_version;       // cudnnGetVersion from libcudnn loaded at run time
  std::string cudnn_header;        // cudnn_version.h seen at build time, or "not found"
  std::string nccl_version;        // ncclGetVersion from libnccl loaded at run time
  std::string nccl_header;         // nccl.h seen at build time, or "not found"
  std::string toolkit_version;     // CUDART_VERSION of the headers built against
  std::string architectures;       // CMAKE_CUDA_ARCHITECTURES of the build, e.g. "90"
  std::vector<GpuReport> gpus;     // empty without a GPU or a usable driver
  std::string gpu_error;           // why no GPU was listed, "" when the query worked
};

// Queries everything once; never throws (what fails is described in the strings).
CudaReport cuda_report();

}  // namespace zt::cuda
