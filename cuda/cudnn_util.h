// What the cuDNN users of the CUDA backend share (cuda/conv_cudnn.cu, cuda/attention_cudnn.cpp):
// the status check, the per-device handle and the dtype mapping.
#pragma once
#include <cudnn.h>

#include "core/dtype.h"
#include "core/error.h"

#define ZT_CUDNN_CHECK(call)                                                                   \
  do {                                                                                         \
    const cudnnStatus_t zt_cudnn_status_ = (call);                                             \
    if (zt_cudnn_status_ != CUDNN_STATUS_SUCCESS)                                              \
      ZT_FAIL("cuDNN call ", #call, " failed with status ", int(zt_cudnn_status_), ": ",       \
              cudnnGetErrorString(zt_cudnn_status_));                                          \
  } while (0)

namespace zt::cuda {

// The cuDNN handle of `device` (created on first use, kept), bound to the device's current
// stream at every call, so cuDNN work queues behind the work already on that stream.
cudnnHandle_t cudnn_handle(int device);

// cuDNN's data type for f32, f64, f16 and bf16; `op` names the caller in the error for others.
cudnnDataType_t cudnn_type(DType t, const char* op);

}  // namespace zt::cuda
