// The CPU backend instance; its kernels are defined in core/cpu/kernels_*.cpp.
#include "core/cpu/cpu_backend.h"

namespace zt::cpu {

CpuBackend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace zt::cpu
