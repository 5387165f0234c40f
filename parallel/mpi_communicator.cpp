// MpiCommunicator: CPU tensors over non-blocking MPI calls, completed by polling with the
// watchdog deadline. Note [Communicator tensor rules] in parallel/communicator.h says what is
// accepted; this file maps it onto MPI datatypes and operations.
#include "parallel/mpi_communicator.h"

#include <climits>
#include <functional>
#include <thread>

#include "core/factory.h"
#include "core/ops.h"
#include "parallel/watchdog.h"

namespace zt {

void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  ZT_FAIL(call, " failed: ", std::string(text, size_t(len)));
}

namespace {

// One MPI request and what to do once it completes (copy results back, divide for avg).
class MpiWork final : public Work {
 public:
  MpiWork(std::string what, double timeout_s, std::function<void(const MPI_Status&)> finish)
      : what_(std::move(what)), timeout_s_(timeout_s), finish_(std::move(finish)) {}
  ~MpiWork() override {
    // A handle dropped without wait(): MPI must still finish with the buffers the request uses
    // (they are kept alive by finish_), so wait here rather than free an active request.
    if (!done_ && request_ != MPI_REQUEST_NULL) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      try {
        if (!finalized) poll_until_done();
      } catch (const Error&) {
        // A failed MPI_Test in a destructor: nothing to report it to; the request is abandoned.
      }
    }
  }
  MPI_Request* request() { return &request_; }

  void wait() override {
    if (done_) return;
    poll_until_done();
    complete();
  }
  bool is_completed() override {
    if (done_) return true;
    if (test()) complete();
    return done_;
  }

 private:
  bool test() {
    int flag = 0;
    check_mpi(MPI_Test(&request_, &flag, &status_), "MPI_Test");
    return flag != 0;
  }
  // Spins briefly (small collectives finish in microseconds), then yields and finally sleeps so
  // that oversubscribed ranks (more ranks than cores) leave the CPU to the ranks doing work.
  void poll_until_done() {
    const double deadline = monotonic_seconds() + timeout_s_;
    for (int64_t spins = 0; !test(); ++spins) {
      if (spins < 64) continue;
      if (monotonic_seconds() > deadline) {
        int world_rank = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
        abort_job(detail::concat("[world rank ", world_rank, "] ", what_, " did not complete within ",
                                 timeout_s_, " s: a rank has died or stopped calling collectives. "
                                 "Aborting the job (set the timeout with ZT_COMM_TIMEOUT=seconds)."));
      }
      if (spins < 2000) std::this_thread::yield();
      else std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  void complete() {
    done_ = true;
    if (finish_) finish_(status_);
    finish_ = nullptr;  // releases the buffers
  }

  std::string what_;
  double timeout_s_;
  std::function<void(const MPI_Status&)> finish_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  MPI_Status status_{};
  bool done_ = false;
};

bool is_16bit_float(DType t) { return t == DType::f16 || t == DType::bf16; }

// How elements travel: 16-bit floats as raw 16-bit words (they are only moved, never reduced,
// in this type: reductions convert them to f32 first).
MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::f16:
    case DType::bf16: return MPI_UINT16_T;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::u8: return MPI_UINT8_T;
    case DType::boolean: return MPI_C_BOOL;
  }
  ZT_FAIL("MPI: unknown dtype");
}

MPI_Op mpi_op(CommReduceOp op, DType t) {
  if (t == DType::boolean) return MPI_LOR;  // a bool sum saturates: any rank true -> true
  return op == CommReduceOp::max ? MPI_MAX : MPI_SUM;
}

void check_tensor(const char* op, const Tensor& t) {
  ZT_CHECK(t.defined(), op, ": the tensor is undefined");
  ZT_CHECK(t.device().is_cpu(), op, ": the MPI communicator takes CPU tensors, found one on ",
           t.device().str(), " (CUDA tensors go through the NCCL communicator)");
}

void check_reduce(const char* op, const Tensor& t, CommReduceOp r) {
  check_tensor(op, t);
  ZT_CHECK(r != CommReduceOp::avg || is_floating(t.dtype()), op,
           ": avg needs a floating dtype (f32, f64, f16, bf16), found ", dtype_name(t.dtype()),
           "; use sum and divide");
}

int checked_count(const char* op, int64_t n) {
  ZT_CHECK(n <= INT_MAX, op, ": ", n, " elements exceed MPI's count limit of ", INT_MAX,
           "; split the tensor");
  return int(n);
}

// The buffer a reduction works in: f32 for 16-bit floats (summed in f32, rounded once when
// copied back), the tensor itself when contiguous, else a contiguous copy.
Tensor reduction_buffer(const Tensor& t) {
  if (is_16bit_float(t.dtype())) return raw::contiguous(raw::to(t, DType::f32));
  return raw::contiguous(t);
}

// Divides buf in place by n (avg = sum / ranks); buf is f32 or f64 here.
void scale_in_place(const Tensor& buf, int n) {
  const int64_t count = buf.numel();
  if (buf.dtype() == DType::f64) {
    double* p = buf.data<double>();
    for (int64_t i = 0; i < count; ++i) p[i] /= n;
  } else {
    float* p = buf.data<float>();
    for (int64_t i = 0; i < count; ++i) p[i] /= float(n);
  }
}

// A contiguous buffer for an output tensor: the tensor itself when MPI can write into it.
Tensor output_buffer(const Tensor& out, DType wanted) {
  if (out.dtype() == wanted && out.is_contiguous()) return out;
  return empty(out.shape(), TensorOptions(wanted, out.device()));
}

// After completion: avg division and the copy into the caller's tensor when the buffer is not it.
std::function<void(const MPI_Status&)> finish_into(Tensor target, Tensor buf, CommReduceOp op,
                                                   int ranks, bool reduce) {
  return [target, buf, op, ranks, reduce](const MPI_Status&) {
    if (reduce && op == CommReduceOp::avg) scale_in_place(buf, ranks);
    if (!buf.same_impl(target)) raw::copy_(target, buf);
  };
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, MpiCommunicatorOptions options)
    : comm_(comm), options_(std::move(options)) {
  ZT_CHECK(comm_ != MPI_COMM_NULL, "MpiCommunicator: MPI_COMM_NULL given");
  if (options_.timeout_s <= 0) options_.timeout_s = comm_timeout_from_env();
  // Errors come back as codes that check_mpi turns into zt::Error, instead of MPI aborting.
  check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::string MpiCommunicator::describe(const std::string& op, const Tensor* t) const {
  std::string s = op;
  if (t) s += detail::concat(" (", dtype_name(t->dtype()), ", ", t->numel(), " elements)");
  return s + detail::concat(" on communicator '", options_.name, "' (rank ", rank_, " of ", size_, ")");
}

void MpiCommunicator::check_peer(const char* op, int peer) const {
  ZT_CHECK(peer >= 0 && peer < size_, op, ": rank ", peer, " is out of range for communicator '",
           options_.name, "' of size ", size_);
}

WorkHandle MpiCommunicator::all_reduce_async(const Tensor& t, CommReduceOp op) {
  check_reduce("all_reduce", t, op);
  if (t.numel() == 0) return std::make_shared<CompletedWork>();
  Tensor buf = reduction_buffer(t);
  const int count = checked_count("all_reduce", buf.numel());
  auto work = std::make_shared<MpiWork>(
      describe(std::string("all_reduce ") + comm_reduce_op_name(op), &t), options_.timeout_s,
      finish_into(t, buf, op, size_, true));
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buf.raw_data(), count, mpi_type(buf.dtype()),
                           mpi_op(op, buf.dtype()), comm_, work->request()),
            "MPI_Iallreduce");
  return work;
}

WorkHandle MpiCommunicator::reduce_scatter_async(const Tensor& input, const Tensor& output,
                                                 CommReduceOp op) {
  check_reduce("reduce_scatter", input, op);
  check_collective_output("reduce_scatter", input, output, reduce_scatter_output_shape(input, size_));
  if (input.numel() == 0) return std::make_shared<CompletedWork>();
  Tensor send = reduction_buffer(input);
  Tensor recv = output_buffer(output, send.dtype());
  if (send.shares_storage(recv)) send = raw::clone(send);  // MPI forbids overlapping buffers
  const int count = checked_count("reduce_scatter", recv.numel());
  auto work = std::make_shared<MpiWork>(
      describe(std::string("reduce_scatter ") + comm_reduce_op_name(op), &input), options_.timeout_s,
      [send, inner = finish_into(output, recv, op, size_, true)](const MPI_Status& s) { inner(s); });
  check_mpi(MPI_Ireduce_scatter_block(send.raw_data(), recv.raw_data(), count, mpi_type(send.dtype()),
                                      mpi_op(op, send.dtype()), comm_, work->request()),
            "MPI_Ireduce_scatter_block");
  return work;
}

WorkHandle MpiCommunicator::all_gather_async(const Tensor& input, const Tensor& output) {
  check_tensor("all_gather", input);
  check_collective_output("all_gather", input, output, all_gather_output_shape(input, size_));
  if (input.numel() == 0) return std::make_shared<CompletedWork>();
  Tensor send = raw::contiguous(input);
  Tensor recv = output_buffer(output, output.dtype());
  if (send.shares_storage(recv)) send = raw::clone(send);
  const int count = checked_count("all_gather", send.numel());
  const MPI_Datatype type = mpi_type(send.dtype());
  auto work = std::make_shared<MpiWork>(
      describe("all_gather", &input), options_.timeout_s,
      [send, inner = finish_into(output, recv, CommReduceOp::sum, size_, false)](const MPI_Status& s) {
        inner(s);
      });
  check_mpi(MPI_Iallgather(send.raw_data(), count, type, recv.raw_data(), count, type, comm_,
                           work->request()),
            "MPI_Iallgather");
  return work;
}

WorkHandle MpiCommunicator::broadcast_async(const Tensor& t, int root) {
  check_tensor("broadcast", t);
  check_peer("broadcast root", root);
  if (t.numel() == 0) return std::make_shared<CompletedWork>();
  Tensor buf = raw::contiguous(t);
  const int count = checked_count("broadcast", buf.numel());
  auto work = std::make_shared<MpiWork>(describe(detail::concat("broadcast from ", root), &t),
                                        options_.timeout_s,
                                        finish_into(t, buf, CommReduceOp::sum, size_, false));
  check_mpi(MPI_Ibcast(buf.raw_data(), count, mpi_type(buf.dtype()), root, comm_, work->request()),
            "MPI_Ibcast");
  return work;
}

WorkHandle MpiCommunicator::send_async(const Tensor& t, int dst, int tag) {
  check_tensor("send", t);
  check_peer("send", dst);
  ZT_CHECK(tag >= 0, "send: tags must be non-negative, found ", tag);
  if (t.numel() == 0) return std::make_shared<CompletedWork>();
  Tensor buf = raw::contiguous(t);
  const int count = checked_count("send", buf.numel());
  auto work = std::make_shared<MpiWork>(describe(detail::concat("send to ", dst, " tag ", tag), &t),
                                        options_.timeout_s, [buf](const MPI_Status&) {});
  check_mpi(MPI_Isend(buf.raw_data(), count, mpi_type(buf.dtype()), dst, tag, comm_, work->request()),
            "MPI_Isend");
  return work;
}

WorkHandle MpiCommunicator::recv_async(const Tensor& t, int src, int tag) {
  check_tensor("recv", t);
  check_peer("recv", src);
  ZT_CHECK(tag >= 0, "recv: tags must be non-negative, found ", tag);
  if (t.numel() == 0) return std::make_shared<CompletedWork>();
  Tensor buf = output_buffer(t, t.dtype());
  const int count = checked_count("recv", buf.numel());
  const MPI_Datatype type = mpi_type(buf.dtype());
  auto inner = finish_into(t, buf, CommReduceOp::sum, size_, false);
  auto work = std::make_shared<MpiWork>(
      describe(detail::concat("recv from ", src, " tag ", tag), &t), options_.timeout_s,
      [inner, type, count, src](const MPI_Status& status) {
        int received = 0;
        check_mpi(MPI_Get_count(&status, type, &received), "MPI_Get_count");
        ZT_CHECK(received == count, "recv: expected ", count, " elements from rank ", src,
                 ", received ", received, " (the sender's tensor has another size)");
        inner(status);
      });
  check_mpi(MPI_Irecv(buf.raw_data(), count, type, src, tag, comm_, work->request()), "MPI_Irecv");
  return work;
}

WorkHandle MpiCommunicator::barrier_async() {
  auto work = std::make_shared<MpiWork>(describe("barrier", nullptr), options_.timeout_s, nullptr);
  check_mpi(MPI_Ibarrier(comm_, work->request()), "MPI_Ibarrier");
  return work;
}

std::shared_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  MPI_Comm sub = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub), "MPI_Comm_split");
  if (sub == MPI_COMM_NULL) return nullptr;
  MpiCommunicatorOptions o = options_;
  o.name = detail::concat(options_.name, "/split(color=", color, ")");
  return std::make_shared<MpiCommunicator>(sub, o);
}

}  // namespace zt
