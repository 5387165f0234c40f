// Error checks for CUDA runtime and cuBLAS calls: every return code is checked and a failure
// throws zt::Error with the call text, the numeric code and the library's message.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "core/error.h"

namespace zt::cuda {

[[noreturn]] void throw_cuda_error(const char* file, int line, const char* call, cudaError_t code);
[[noreturn]] void throw_cublas_error(const char* file, int line, const char* call,
                                     cublasStatus_t code);

}  // namespace zt::cuda

#define ZT_CUDA_CHECK(call)                                                         \
  do {                                                                              \
    const cudaError_t zt_cuda_status_ = (call);                                     \
    if (zt_cuda_status_ != cudaSuccess)                                             \
      ::zt::cuda::throw_cuda_error(__FILE__, __LINE__, #call, zt_cuda_status_);     \
  } while (0)

#define ZT_CUBLAS_CHECK(call)                                                       \
  do {                                                                              \
    const cublasStatus_t zt_cublas_status_ = (call);                                \
    if (zt_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                 \
      ::zt::cuda::throw_cublas_error(__FILE__, __LINE__, #call, zt_cublas_status_); \
  } while (0)

// After a kernel launch: a bad configuration is reported at once, named by the kernel.
#define ZT_CUDA_LAUNCH_CHECK(kernel_name)                                                 \
  do {                                                                                    \
    const cudaError_t zt_cuda_status_ = cudaGetLastError();                               \
    if (zt_cuda_status_ != cudaSuccess)                                                   \
      ::zt::cuda::throw_cuda_error(__FILE__, __LINE__, "launch of " kernel_name,          \
                                   zt_cuda_status_);                                      \
  } while (0)
