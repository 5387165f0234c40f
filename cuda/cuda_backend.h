// The CUDA backend: one kernel per op of core/ops.def (Note [Kernel contract]), each queued on
// the current stream of the device its tensors live on. Kernels are split by family across
// cuda/kernels_*.cu and cuda/gemm.cpp; the CPU kernel of the same op defines its meaning.
//
// Note [CUDA kernel errors]
// Argument errors (shapes, dtypes, devices) throw zt::Error before anything is queued, with the
// CPU kernel's messages. Errors that depend on tensor values cannot be thrown by a kernel
// without a host synchronisation, so they behave as follows:
// - integer division by zero (binary/binary_scalar div) gives 0 (the CPU throws);
// - a cross-entropy target outside [0, C) that is not ignore_index gives a NaN loss and NaN
//   gradients for that row (the CPU throws), which non-finite checks then report;
// - an index_select/index_add index out of range prints a device-side message and traps, like
//   a device assert: the context is lost and the next CUDA call throws (the CPU throws).
#pragma once
#include <initializer_list>

#include "core/backend.h"

namespace zt::cuda {

class CudaBackend final : public Backend {
 public:
  DeviceType device_type() const override { return DeviceType::CUDA; }
  int device_count() const override;
  void profiler_capture(bool on) override;
  TransferHandle copy_async(const Tensor& dst, const Tensor& src) override;
#define ZT_OP(name, params) void name params override;
#include "core/ops.def"
#undef ZT_OP
};

CudaBackend& cuda_backend();

// The CUDA device index shared by every defined tensor of an op, or an error naming the op and
// the devices found (mixing devices in one op is a caller bug).
int common_device(const char* op, std::initializer_list<const Tensor*> tensors);

}  // namespace zt::cuda
