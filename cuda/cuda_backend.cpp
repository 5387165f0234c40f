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

namespace {

// Note [Asynchronous transfers] in core/ops.h: the copy on the device's copy stream, done when its
// event is; the handle holds both tensors until then.
class CudaTransfer final : public Transfer {
 public:
  CudaTransfer(int device, Tensor dst, Tensor src) : done_(device), dst_(std::move(dst)), src_(std::move(src)) {}
  ~CudaTransfer() override {
    try {
      wait();
    } catch (...) {  // destructors do not throw; the next CUDA call reports a lost context
    }
  }
  Event& done() { return done_; }
  void wait() override {
    if (!dst_.defined()) return;
    done_.synchronize();
    dst_ = src_ = Tensor();
  }

 private:
  Event done_;
  Tensor dst_, src_;
};

}  // namespace

TransferHandle CudaBackend::copy_async(const Tensor& dst, const Tensor& src) {
  if (dst.device().is_cpu() && src.device().is_cpu()) return Backend::copy_async(dst, src);
  const int device = (dst.device().is_cpu() ? src : dst).device().index;
  DeviceGuard guard(device);
  auto transfer = std::make_unique<CudaTransfer>(device, dst, src);
  cudaStream_t stream = copy_stream(device);
  Event ready(device);  // after what the current stream has queued (the producer of src, readers of dst)
  ready.record(current_stream(device));
  ready.wait(stream);
  if (dst.numel() > 0)
    ZT_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDefault, stream));
  transfer->done().record(stream);
  return transfer;
}

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
