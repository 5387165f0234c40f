// The NCCL communicator (cuda/nccl_communicator.h) in a world of one process on one GPU: every
// operation's data path (dtypes, non-contiguous views copied back, empty tensors), its ordering
// against the compute stream, split and the errors. Two or more ranks need one GPU each (NCCL
// refuses two ranks on one device): scripts/gpu_check.sh runs the multi-rank equivalence on a
// multi-GPU machine.
#include <doctest/doctest.h>

#include <vector>

#include "core/factory.h"
#include "core/ops.h"
#include "parallel/device_communicator.h"
#include "parallel/mpi_runtime.h"
#include "tests/cuda/parity_util.h"

#ifdef ZT_HAVE_NCCL

namespace zt::test {

namespace {

MpiRuntime& mpi() {
  static MpiRuntime runtime;
  return runtime;
}

std::shared_ptr<Communicator> nccl() {
  static std::shared_ptr<Communicator> comm = device_communicator(mpi().world(), Device::cuda(0));
  return comm;
}

Tensor cuda_arange(int64_t n, DType dtype) {
  return raw::to(raw::to(arange(0, double(n), 1.0, DType::f64), dtype), Device::cuda(0));
}

}  // namespace

TEST_CASE("NCCL: device_communicator gives NCCL for CUDA tensors and the bootstrap for CPU ones") {
  ZT_REQUIRE_GPU();
  REQUIRE(nccl() != nullptr);
  CHECK(nccl()->backend_name() == "nccl");
  CHECK(nccl()->size() == mpi().world()->size());
  CHECK(nccl()->rank() == mpi().world()->rank());
  CHECK(device_communicator(mpi().world(), Device::cpu()) == mpi().world());
}

TEST_CASE("NCCL in a world of one: every collective and dtype leaves the values in place") {
  ZT_REQUIRE_GPU();
  if (nccl()->size() != 1) return;  // the values below are those of a world of one
  for (DType dtype : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8}) {
    CAPTURE(dtype_name(dtype));
    const Tensor expected = cuda_arange(37, dtype);
    Tensor t = raw::clone(expected);
    nccl()->all_reduce(t, CommReduceOp::sum);
    CHECK(t.to_vector<double>() == expected.to_vector<double>());
    nccl()->all_reduce(t, CommReduceOp::max);
    CHECK(t.to_vector<double>() == expected.to_vector<double>());
    if (is_floating(dtype)) {
      nccl()->all_reduce(t, CommReduceOp::avg);
      CHECK(t.to_vector<double>() == expected.to_vector<double>());
    } else {
      CHECK_THROWS_WITH_AS(nccl()->all_reduce(t, CommReduceOp::avg), doctest::Contains("floating dtype"), Error);
    }
    CHECK(nccl()->reduce_scatter(t).to_vector<double>() == expected.to_vector<double>());
    CHECK(nccl()->all_gather(t).to_vector<double>() == expected.to_vector<double>());
    nccl()->broadcast(t, 0);
    CHECK(t.to_vector<double>() == expected.to_vector<double>());
  }
}

TEST_CASE("NCCL: non-contiguous views are reduced in place, empty tensors are a no-op") {
  ZT_REQUIRE_GPU();
  Tensor base = raw::reshape(cuda_arange(6 * 5, DType::f32), {6, 5});
  const std::vector<double> before = base.to_vector<double>();
  Tensor view = raw::transpose(base, 0, 1);  // (5, 6), not contiguous
  REQUIRE(!view.is_contiguous());
  nccl()->all_reduce(view, CommReduceOp::sum);
  std::vector<double> expect = before;
  for (double& x : expect) x *= nccl()->size();
  CHECK(base.to_vector<double>() == expect);
  Tensor out = raw::transpose(zeros({6, 5 * nccl()->size()}, TensorOptions(DType::f32, Device::cuda(0))), 0, 1);
  nccl()->all_gather(view, out);
  CHECK(raw::narrow(out, 0, 0, 5).to_vector<double>() == view.to_vector<double>());
  Tensor empty_t = zeros({0}, TensorOptions(DType::f32, Device::cuda(0)));
  nccl()->all_reduce(empty_t);
  CHECK(empty_t.numel() == 0);
}

TEST_CASE("NCCL: results are ordered against the compute stream without host syncs") {
  ZT_REQUIRE_GPU();
  // Kernels produce the input, the collective runs on its own stream, kernels consume the
  // output: any missing event would let a kernel read a stale value somewhere in 200 rounds.
  Tensor t = full({1 << 20}, 1.0, TensorOptions(DType::f32, Device::cuda(0)));
  double expected = 1.0;
  for (int i = 0; i < 200; ++i) {
    raw::binary_(BinaryOp::mul, t, 2.0);
    WorkHandle work = nccl()->all_reduce_async(t, CommReduceOp::avg);
    work->wait();
    raw::binary_(BinaryOp::add, t, -1.0);
    expected = expected * 2.0 - 1.0;
  }
  const std::vector<float> v = t.to_vector<float>();
  int64_t wrong = 0;
  for (float x : v) wrong += x != float(expected);
  CHECK(wrong == 0);
}

TEST_CASE("NCCL: split, barrier and errors") {
  ZT_REQUIRE_GPU();
  std::shared_ptr<Communicator> sub = nccl()->split(0, nccl()->rank());
  REQUIRE(sub != nullptr);
  CHECK(sub->backend_name() == "nccl");
  CHECK(sub->size() == nccl()->size());
  CHECK(nccl()->split(-1, 0) == nullptr);
  nccl()->barrier();
  Tensor cpu = zeros({4});
  CHECK_THROWS_WITH_AS(nccl()->all_reduce(cpu), doctest::Contains("MPI communicator"), Error);
  Tensor odd = zeros({3}, TensorOptions(DType::f32, Device::cuda(0)));
  if (nccl()->size() > 1)
    CHECK_THROWS_WITH_AS(nccl()->reduce_scatter(odd), doctest::Contains("not divisible"), Error);
  CHECK_THROWS_WITH_AS(nccl()->broadcast(odd, nccl()->size()), doctest::Contains("out of range"), Error);
}

}  // namespace zt::test

#endif  // ZT_HAVE_NCCL
