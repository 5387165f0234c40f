// The CUDA backend: one kernel per op of core/ops.def (Note [Kernel contract]), each queued on
// the current stream of the device its tensors live on. Kernels are split by family across
// cuda/kernels_*.cu and cuda/gemm.cpp; the CPU kernel of the same op defines its meaning.
#pragma once
#include <cuda_runtime_api.h>

#include <initializer_list>

#include "core/backend.h"

namespace zt::cuda {

class CudaBackend final : public Backend {
 public:
  DeviceType device_type() const override { return DeviceType::CUDA; }
#define ZT_OP(name, params) void name params override;
#include "core/ops.def"
#undef ZT_OP
};

CudaBackend& cuda_backend();

// The CUDA device index shared by every defined tensor of an op, or an error naming the op and
// the devices found (mixing devices in one op is a caller bug).
int common_device(const char* op, std::initializer_list<const Tensor*> tensors);

}  // namespace zt::cuda
