// Which vector instruction set the CPU's fused Adam/AdamW (ops.def adam_step) runs with: chosen
// at run time from what the CPU supports, or forced for tests and benchmarks
// (Note [CPU Adam kernels] in core/cpu/kernels_adam_simd.h).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace zt::cpu {

enum class CpuIsa : uint8_t { scalar, avx2, avx512 };

const char* cpu_isa_name(CpuIsa isa);  // "scalar", "avx2", "avx512"
CpuIsa parse_cpu_isa(const std::string& name);
// Whether this CPU runs the kernel of that level (cpuid: avx2 + f16c; avx512f + f16c).
bool cpu_supports(CpuIsa isa);
// What the running CPU lacks for that level, e.g. "avx512f"; empty when it has everything.
std::string cpu_missing_features(CpuIsa isa);

// The level adam_step uses now: the forced one, else the environment's ZT_CPU_ISA
// (scalar|avx2|avx512), else the best the CPU supports. Throws when the requested level is not
// supported by this CPU.
CpuIsa adam_isa();
// Forces a level (throws, naming the missing features, when the CPU lacks it); std::nullopt
// returns to the automatic choice. Process-wide: meant for tests and benchmarks.
void force_adam_isa(std::optional<CpuIsa> isa);

}  // namespace zt::cpu
