// Backend: one kernel table per device type, generated from core/ops.def.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/adam_scalars.h"
#include "core/conv_geometry.h"
#include "core/op_kinds.h"
#include "core/tensor.h"

namespace zt {

enum class OpId : int {
#define ZT_OP(name, params) name,
#include "core/ops.def"
#undef ZT_OP
  count_
};
inline constexpr int kNumOps = int(OpId::count_);
const char* op_name(OpId id);

// A copy started by Backend::copy_async (Note [Asynchronous transfers] in core/ops.h). wait()
// returns once the bytes have landed; the handle keeps both tensors alive until then, and its
// destructor waits too, so no copy outlives the memory it uses.
class Transfer {
 public:
  virtual ~Transfer() = default;
  virtual void wait() = 0;
};
using TransferHandle = std::unique_ptr<Transfer>;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType device_type() const = 0;
  // Devices of this type the process can use (the CPU: 1).
  virtual int device_count() const { return 1; }
  // Opens (true) or closes the span an external profiler started with capture off records
  // (Nsight's --profile-from-start off): cudaProfilerStart/Stop on CUDA; nothing on the CPU.
  virtual void profiler_capture(bool on) { (void)on; }
  // dst <- src between the host and this backend's device (contiguous, one shape and dtype),
  // started without blocking the host where the backend can. Not an op of ops.def: it moves
  // bytes and computes nothing. The default copies before it returns.
  virtual TransferHandle copy_async(const Tensor& dst, const Tensor& src);
#define ZT_OP(name, params) virtual void name params = 0;
#include "core/ops.def"
#undef ZT_OP
};

// The backend of a device type: the CPU backend always; CUDA once registered.
Backend& backend_for(DeviceType type);
inline Backend& backend_for(Device d) { return backend_for(d.type); }
bool has_backend(DeviceType type);
void register_backend(DeviceType type, Backend* backend);

}  // namespace zt
