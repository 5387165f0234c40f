// RawNccl (cuda/bench_nccl.h): the reference side of bench_comm.
#include "cuda/bench_nccl.h"

#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/factory.h"
#include "cuda/cuda_check.h"
#include "cuda/device.h"

namespace zt::cuda::bench {

namespace {

void nccl_check(ncclResult_t r, const char* what) {
  ZT_CHECK(r == ncclSuccess, "bench RawNccl: ", what, " failed: ", ncclGetErrorString(r));
}

}  // namespace

struct RawNccl::Impl {
  int device = 0, world = 1;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  void* send = nullptr;
  void* recv = nullptr;
};

RawNccl::RawNccl(Communicator& bootstrap, int device, size_t max_bytes) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  impl_->world = bootstrap.size();
  Tensor id_bytes = zeros({int64_t(sizeof(ncclUniqueId))}, TensorOptions(DType::u8, Device::cpu()));
  ncclUniqueId id;
  if (bootstrap.rank() == 0) {
    nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    std::memcpy(id_bytes.raw_data(), &id, sizeof id);
  }
  bootstrap.broadcast(id_bytes, 0);
  std::memcpy(&id, id_bytes.raw_data(), sizeof id);
  DeviceGuard guard(device);
  ZT_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  nccl_check(ncclCommInitRank(&impl_->comm, impl_->world, id, bootstrap.rank()), "ncclCommInitRank");
  ZT_CUDA_CHECK(cudaMalloc(&impl_->send, max_bytes));
  ZT_CUDA_CHECK(cudaMalloc(&impl_->recv, max_bytes));
  ZT_CUDA_CHECK(cudaMemset(impl_->send, 0, max_bytes));
}

RawNccl::~RawNccl() {
  DeviceGuard guard(impl_->device);
  cudaStreamSynchronize(impl_->stream);
  ncclCommDestroy(impl_->comm);
  cudaFree(impl_->send);
  cudaFree(impl_->recv);
  cudaStreamDestroy(impl_->stream);
}

double RawNccl::time_ms(const std::string& op, size_t bytes, const TimingOptions& options) {
  Impl& s = *impl_;
  DeviceGuard guard(s.device);
  const size_t count = bytes / sizeof(float), part = count / size_t(s.world);
  auto call = [&] {
    if (op == "all_reduce") {
      nccl_check(ncclAllReduce(s.send, s.recv, count, ncclFloat32, ncclSum, s.comm, s.stream), "ncclAllReduce");
    } else if (op == "reduce_scatter") {
      nccl_check(ncclReduceScatter(s.send, s.recv, part, ncclFloat32, ncclSum, s.comm, s.stream), "ncclReduceScatter");
    } else {
      ZT_CHECK(op == "all_gather", "bench RawNccl: unknown op '", op, "'");
      nccl_check(ncclAllGather(s.send, s.recv, part, ncclFloat32, s.comm, s.stream), "ncclAllGather");
    }
  };
  for (int i = 0; i < options.warmup; ++i) call();
  ZT_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  Event start(s.device, true), stop(s.device, true);
  std::vector<double> samples;
  for (int r = 0; r < options.reps; ++r) {
    start.record(s.stream);
    for (int i = 0; i < options.iters; ++i) call();
    stop.record(s.stream);
    stop.synchronize();
    samples.push_back(double(start.elapsed_ms(stop)) / options.iters);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

}  // namespace zt::cuda::bench
