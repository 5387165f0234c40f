#include "cuda/cudnn_util.h"

#include <map>
#include <mutex>

#include "cuda/device.h"

namespace zt::cuda {

cudnnHandle_t cudnn_handle(int device) {
  static std::mutex mutex;
  static std::map<int, cudnnHandle_t> handles;
  cudnnHandle_t h = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = handles.find(device);
    if (it == handles.end()) {
      ZT_CUDNN_CHECK(cudnnCreate(&h));
      handles[device] = h;
    } else {
      h = it->second;
    }
  }
  ZT_CUDNN_CHECK(cudnnSetStream(h, current_stream(device)));
  return h;
}

cudnnDataType_t cudnn_type(DType t, const char* op) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f64: return CUDNN_DATA_DOUBLE;
    case DType::f16: return CUDNN_DATA_HALF;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    default: ZT_FAIL(op, ": dtype ", dtype_name(t), " is not supported (expected f32, f64, f16 or bf16)");
  }
}

}  // namespace zt::cuda
