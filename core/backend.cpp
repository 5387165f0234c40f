// Backend registry and op names (from core/ops.def).
#include "core/backend.h"

#include "core/cpu/cpu_backend.h"

namespace zt {

namespace {
Backend* g_backends[kNumDeviceTypes] = {};
const char* const kOpNames[] = {
#define ZT_OP(name, params) #name,
#include "core/ops.def"
#undef ZT_OP
};
}  // namespace

const char* op_name(OpId id) {
  ZT_CHECK(int(id) >= 0 && int(id) < kNumOps, "op_name: bad op id ", int(id));
  return kOpNames[int(id)];
}

Backend& backend_for(DeviceType type) {
  if (type == DeviceType::CPU) return cpu::cpu_backend();
  Backend* b = g_backends[int(type)];
  ZT_CHECK(b != nullptr, "no backend for device type ", int(type),
           " (is the CUDA backend built and initialised?)");
  return *b;
}

namespace {
struct FinishedTransfer final : Transfer {
  void wait() override {}
};
}  // namespace

TransferHandle Backend::copy_async(const Tensor& dst, const Tensor& src) {
  copy(dst, src);
  return std::make_unique<FinishedTransfer>();
}

bool has_backend(DeviceType type) { return type == DeviceType::CPU || g_backends[int(type)] != nullptr; }

void register_backend(DeviceType type, Backend* backend) {
  ZT_CHECK(type != DeviceType::CPU, "the CPU backend is built in and cannot be replaced");
  g_backends[int(type)] = backend;
}

}  // namespace zt
