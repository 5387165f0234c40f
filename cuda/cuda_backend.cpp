// The CUDA backend instance and its registration: a static registrar in this file (linked
// whole-archive into every zerotrain program) installs the backend and the caching allocator
// for DeviceType::CUDA at program start when a GPU is present, and stays silent otherwise.
#include "cuda/cuda_backend.h"

#include <cuda_profiler_api.h>

#include "cuda/caching_allocator.h"
#include "cuda/cuda_check.h"
#include "cuda/device.h"

namespace zt::cuda {

CudaBackend& cuda_backend() {
  static CudaBackend* backend = new CudaBackend();  // never destroyed, like the allocator
  return *backend;
}

int CudaBackend::device_count() const { return cuda::device_count(); }

void CudaBackend::profiler_capture(bool on) { ZT_CUDA_CHECK(on ? cudaProfilerStart() : cudaProfilerStop()); }

int common_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  int index = -1;
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    const Device d = t->device();
    ZT_CHECK(d.is_cuda(), op, ": expected every tensor on a CUDA device, found ", t->str());
    if (index < 0) index = d.index;
    ZT_CHECK(d.index == index, op, ": tensors are on different devices (cuda:", index, " and ",
             d.str(), "); move them to one device first");
  }
  ZT_CHECK(index >= 0, op, ": no tensor given");
  return index;
}

namespace {

bool g_allow_tf32 = false;

struct Registrar {
  Registrar() {
    if (device_count() <= 0) return;
    register_allocator(DeviceType::CUDA, &caching_allocator());
    register_backend(DeviceType::CUDA, &cuda_backend());
  }
};

const Registrar g_registrar;

}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }

}  // namespace zt::cuda
