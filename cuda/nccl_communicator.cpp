// NcclCommunicator (cuda/nccl_communicator.h): NCCL collectives on a communication stream,
// ordered against the compute stream with events (Note [NCCL ordering]).
#include "cuda/nccl_communicator.h"

#include <nccl.h>

#include <cstring>
#include <vector>

#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops.h"
#include "cuda/cuda_check.h"
#include "cuda/device.h"
#include "parallel/device_communicator.h"

#define ZT_NCCL_CHECK(call)                                                                          \
  do {                                                                                               \
    const ncclResult_t zt_nccl_status_ = (call);                                                     \
    ZT_CHECK(zt_nccl_status_ == ncclSuccess, "NCCL call ", #call, " failed with ", int(zt_nccl_status_), \
             " (", ncclGetErrorString(zt_nccl_status_), ")");                                        \
  } while (0)

namespace zt::cuda {

namespace {

ncclDataType_t nccl_dtype(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::f16: return ncclFloat16;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8:
    case DType::boolean: return ncclUint8;
  }
  ZT_FAIL("NCCL: no NCCL type for dtype ", dtype_name(t));
}

// bool sums and maxima are logical ORs (Note [Communicator tensor rules]): max over 0/1 bytes.
ncclRedOp_t nccl_op(CommReduceOp op, DType t) {
  if (t == DType::boolean) {
    ZT_CHECK(op != CommReduceOp::avg, "NCCL all_reduce: avg needs a floating dtype, found bool");
    return ncclMax;
  }
  switch (op) {
    case CommReduceOp::sum: return ncclSum;
    case CommReduceOp::max: return ncclMax;
    case CommReduceOp::avg:
      ZT_CHECK(is_floating(t), "NCCL reduction avg needs a floating dtype, found ", dtype_name(t));
      return ncclAvg;
  }
  return ncclSum;
}

// A contiguous tensor holding t's values: t itself, or a copy (queued on the compute stream).
Tensor contiguous_buffer(const Tensor& t) {
  if (t.is_contiguous()) return t;
  MemoryCategoryScope scope(MemoryCategory::communication);
  return raw::contiguous(t);
}

// An uninitialised contiguous buffer standing in for a non-contiguous output.
Tensor output_buffer(const Tensor& t) {
  if (t.is_contiguous()) return t;
  MemoryCategoryScope scope(MemoryCategory::communication);
  return empty(t.shape(), TensorOptions(t.dtype(), t.device()));
}

class NcclWork final : public Work {
 public:
  NcclWork(int device, cudaStream_t comm_stream, std::vector<Tensor> keep_alive, Tensor result = {},
           Tensor destination = {}, bool host_blocking = false)
      : device_(device), done_(device), keep_alive_(std::move(keep_alive)), result_(std::move(result)),
        destination_(std::move(destination)), host_blocking_(host_blocking) {
    done_.record(comm_stream);
  }
  ~NcclWork() override {
    if (!waited_) {
      try {
        done_.synchronize();  // the buffers must outlive NCCL's use of them
      } catch (...) {
      }
    }
  }

  void wait() override {
    if (waited_) return;
    DeviceGuard guard(device_);
    done_.wait(current_stream(device_));
    if (host_blocking_) done_.synchronize();
    if (destination_.defined() && !destination_.same_impl(result_)) raw::copy_(destination_, result_);
    waited_ = true;
  }
  bool is_completed() override { return done_.query(); }

 private:
  int device_;
  Event done_;
  std::vector<Tensor> keep_alive_;
  Tensor result_, destination_;  // a non-contiguous output gets result_ copied into it
  bool host_blocking_;
  bool waited_ = false;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<Communicator> bootstrap, Device device)
      : bootstrap_(std::move(bootstrap)), device_(device), ready_(device.index) {
    ZT_CHECK(device_.type == DeviceType::CUDA, "NCCL communicator: expected a CUDA device, found ", device_.str());
    ZT_CHECK(bootstrap_ != nullptr, "NCCL communicator: expected a bootstrap communicator, found null");
    rank_ = bootstrap_->rank();
    size_ = bootstrap_->size();
    Tensor id_bytes = zeros({int64_t(sizeof(ncclUniqueId))}, TensorOptions(DType::u8, Device::cpu()));
    ncclUniqueId id;
    if (rank_ == 0) {
      ZT_NCCL_CHECK(ncclGetUniqueId(&id));
      std::memcpy(id_bytes.raw_data(), &id, sizeof id);
    }
    bootstrap_->broadcast(id_bytes, 0);
    std::memcpy(&id, id_bytes.raw_data(), sizeof id);
    DeviceGuard guard(device_.index);
    int priority_low = 0, priority_high = 0;
    ZT_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&priority_low, &priority_high));
    ZT_CUDA_CHECK(cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, priority_high));
    const ncclResult_t init = ncclCommInitRank(&comm_, size_, id, rank_);
    if (init != ncclSuccess) {
      cudaStreamDestroy(stream_);
      ZT_FAIL("NCCL: ncclCommInitRank (rank ", rank_, " of ", size_, " on ", device_.str(), ") failed with ",
               int(init), " (", ncclGetErrorString(init),
               "); every rank needs its own GPU (mpirun starts one process per GPU, the local rank picks it)");
    }
  }
  ~NcclCommunicator() override {
    DeviceGuard guard(device_.index);
    cudaStreamSynchronize(stream_);
    ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "nccl"; }

  WorkHandle all_reduce_async(const Tensor& t, CommReduceOp op) override {
    check_device("all_reduce", t);
    const ncclRedOp_t red = nccl_op(op, t.dtype());
    if (t.numel() == 0) return std::make_shared<CompletedWork>();
    DeviceGuard guard(device_.index);
    Tensor buf = contiguous_buffer(t);
    begin();
    ZT_NCCL_CHECK(ncclAllReduce(buf.raw_data(), buf.raw_data(), size_t(buf.numel()), nccl_dtype(t.dtype()), red,
                                comm_, stream_));
    return finish({buf, t}, buf, t);
  }

  WorkHandle reduce_scatter_async(const Tensor& input, const Tensor& output, CommReduceOp op) override {
    check_device("reduce_scatter", input);
    check_collective_output("reduce_scatter", input, output, reduce_scatter_output_shape(input, size_));
    const ncclRedOp_t red = nccl_op(op, input.dtype());
    if (output.numel() == 0) return std::make_shared<CompletedWork>();
    DeviceGuard guard(device_.index);
    Tensor in = contiguous_buffer(input), out = output_buffer(output);
    begin();
    ZT_NCCL_CHECK(ncclReduceScatter(in.raw_data(), out.raw_data(), size_t(out.numel()), nccl_dtype(input.dtype()),
                                    red, comm_, stream_));
    return finish({in, out, input, output}, out, output);
  }

  WorkHandle all_gather_async(const Tensor& input, const Tensor& output) override {
    check_device("all_gather", input);
    check_collective_output("all_gather", input, output, all_gather_output_shape(input, size_));
    if (input.numel() == 0) return std::make_shared<CompletedWork>();
    DeviceGuard guard(device_.index);
    Tensor in = contiguous_buffer(input), out = output_buffer(output);
    begin();
    ZT_NCCL_CHECK(ncclAllGather(in.raw_data(), out.raw_data(), size_t(in.numel()), nccl_dtype(input.dtype()),
                                comm_, stream_));
    return finish({in, out, input, output}, out, output);
  }

  WorkHandle broadcast_async(const Tensor& t, int root) override {
    check_device("broadcast", t);
    check_peer("broadcast", root);
    if (t.numel() == 0) return std::make_shared<CompletedWork>();
    DeviceGuard guard(device_.index);
    Tensor buf = contiguous_buffer(t);
    begin();
    ZT_NCCL_CHECK(ncclBroadcast(buf.raw_data(), buf.raw_data(), size_t(buf.numel()), nccl_dtype(t.dtype()), root,
                                comm_, stream_));
    return finish({buf, t}, buf, t);
  }

  WorkHandle send_async(const Tensor& t, int dst, int /*tag: NCCL matches by order*/) override {
    check_device("send", t);
    check_peer("send", dst);
    if (t.numel() == 0) return std::make_shared<CompletedWork>();
    DeviceGuard guard(device_.index);
    Tensor buf = contiguous_buffer(t);
    begin();
    ZT_NCCL_CHECK(ncclSend(buf.raw_data(), size_t(buf.numel()), nccl_dtype(t.dtype()), dst, comm_, stream_));
    return finish({buf, t}, Tensor(), Tensor());
  }

  WorkHandle recv_async(const Tensor& t, int src, int /*tag*/) override {
    check_device("recv", t);
    check_peer("recv", src);
    if (t.numel() == 0) return std::make_shared<CompletedWork>();
    DeviceGuard guard(device_.index);
    Tensor buf = output_buffer(t);
    begin();
    ZT_NCCL_CHECK(ncclRecv(buf.raw_data(), size_t(buf.numel()), nccl_dtype(t.dtype()), src, comm_, stream_));
    return finish({buf, t}, buf, t);
  }

  WorkHandle barrier_async() override {
    DeviceGuard guard(device_.index);
    Tensor token = zeros({1}, TensorOptions(DType::f32, device_));
    begin();
    ZT_NCCL_CHECK(ncclAllReduce(token.raw_data(), token.raw_data(), 1, ncclFloat32, ncclSum, comm_, stream_));
    return std::make_shared<NcclWork>(device_.index, stream_, std::vector<Tensor>{token}, Tensor(), Tensor(), true);
  }

  std::shared_ptr<Communicator> split(int color, int key) override {
    std::shared_ptr<Communicator> sub = bootstrap_->split(color, key);
    if (!sub) return nullptr;
    return std::make_shared<NcclCommunicator>(std::move(sub), device_);
  }

 private:
  void check_device(const char* op, const Tensor& t) const {
    ZT_CHECK(t.defined(), "NCCL ", op, ": the tensor is undefined");
    ZT_CHECK(t.device() == device_, "NCCL ", op, ": this communicator serves ", device_.str(), ", found a tensor on ",
             t.device().str(), " (CPU tensors go over the MPI communicator)");
  }
  void check_peer(const char* op, int peer) const {
    ZT_CHECK(peer >= 0 && peer < size_, "NCCL ", op, ": rank ", peer, " is out of range for a communicator of ",
             size_, " ranks");
  }
  // The communication stream waits for everything queued so far on the compute stream.
  void begin() {
    ready_.record(current_stream(device_.index));
    ready_.wait(stream_);
  }
  WorkHandle finish(std::vector<Tensor> keep_alive, Tensor result, Tensor destination) {
    return std::make_shared<NcclWork>(device_.index, stream_, std::move(keep_alive), std::move(result),
                                      std::move(destination));
  }

  std::shared_ptr<Communicator> bootstrap_;
  Device device_;
  Event ready_;
  int rank_ = 0, size_ = 1;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
};

// Registers NCCL as the communicator of CUDA tensors when this library is linked in.
const bool registered = [] {
  register_device_communicator(DeviceType::CUDA, [](const std::shared_ptr<Communicator>& bootstrap, Device device) {
    return make_nccl_communicator(bootstrap, device);
  });
  return true;
}();

}  // namespace

std::shared_ptr<Communicator> make_nccl_communicator(const std::shared_ptr<Communicator>& bootstrap, Device device) {
  return std::make_shared<NcclCommunicator>(bootstrap, device);
}

}  // namespace zt::cuda
