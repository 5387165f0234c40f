// The CPU backend: OpenMP loops, OpenBLAS GEMM, f16/bf16 computed in f32 (DESIGN.md §2).
// Kernels are split by family across core/cpu/*.cpp; see Note [Kernel contract] in ops.def.
#pragma once
#include "core/backend.h"

namespace zt::cpu {

class CpuBackend final : public Backend {
 public:
  DeviceType device_type() const override { return DeviceType::CPU; }
#define ZT_OP(name, params) void name params override;
#include "core/ops.def"
#undef ZT_OP
};

CpuBackend& cpu_backend();

}  // namespace zt::cpu
