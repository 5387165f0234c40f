// CUDA GEMM through cuBLAS: f32 (TF32 only when switched on), f16/bf16 with f32 accumulation,
// f64. Plain (unbatched) f16/bf16/TF32 problems go through cuBLASLt with a cached heuristic
// choice (cuda/gemm_lt.h; ZT_CUBLASLT=0 sends them to cublasGemmEx), the rest through
// cublasGemmEx / cublasGemmStridedBatchedEx. Transposed views go to cuBLAS as transpose flags
// without a copy; one cuBLAS handle per device, bound to the device's current stream, with its
// own workspace (shared with cuBLASLt: both queue on that one stream). Shapes and layouts as in
// Note [GEMM operand layout] (core/cpu/gemm.cpp).
//
// No bias epilogue (CUBLASLT_EPILOGUE_BIAS): the gemm op of core/ops.def has no bias operand,
// and nn's Linear adds its bias with a separate broadcast add; fusing it needs a gemm-with-bias
// op in core/ops.def first.
//
// cuBLAS is column-major: the row-major out (M, N) is the column-major out^T (N, M), so we ask
// for out^T = op(b)^T @ op(a)^T, with b in cuBLAS's first operand slot and a in its second.
#include <algorithm>
#include <climits>
#include <mutex>
#include <vector>

#include "core/gemm_problem.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/device.h"
#include "cuda/gemm_lt.h"

namespace zt::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLAS's recommendation for Hopper

struct HandleSlot {
  cublasHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;  // the stream the handle is bound to (once `bound`)
  bool bound = false;
  void* workspace = nullptr;      // kWorkspaceBytes, used by work on `stream` only
};

// The cuBLAS handle of `device` (created on first use, kept for the process), bound to the
// device's current stream with the workspace; rebound if that stream ever changes.
HandleSlot handle_for(int device) {
  static std::mutex mutex;
  static std::vector<HandleSlot> slots;
  std::lock_guard<std::mutex> lock(mutex);
  if (slots.empty()) slots.resize(size_t(device_count()));
  ZT_CHECK(device >= 0 && size_t(device) < slots.size(), "gemm: CUDA device ", device, " out of range");
  HandleSlot& s = slots[size_t(device)];
  if (!s.handle) {
    DeviceGuard guard(device);
    ZT_CUBLAS_CHECK(cublasCreate(&s.handle));
    ZT_CUDA_CHECK(cudaMalloc(&s.workspace, kWorkspaceBytes));
    // Products accumulate in f32 (CUBLAS_COMPUTE_32F below); split-K partial sums may be reduced
    // in the output precision, as PyTorch allows by default for f16/bf16.
    ZT_CUBLAS_CHECK(cublasSetMathMode(s.handle, CUBLAS_DEFAULT_MATH));
  }
  if (cudaStream_t stream = current_stream(device); !s.bound || s.stream != stream) {
    ZT_CUBLAS_CHECK(cublasSetStream(s.handle, stream));  // resets the workspace: set it after
    ZT_CUBLAS_CHECK(cublasSetWorkspace(s.handle, s.workspace, kWorkspaceBytes));
    s.stream = stream;
    s.bound = true;
  }
  return s;
}

using Dims3 = GemmOperand;

// One operand as cuBLAS takes it.
struct Operand {
  const void* data;
  cublasOperation_t op;
  int64_t ld, batch_stride;
  Tensor keep_alive;  // a packed copy when the view's strides do not suit cuBLAS
};

// The stored (R, C) matrix with logical transpose `trans`, in the slot that needs op(x)^T.
Operand make_operand(const Tensor& t, const Dims3& d, bool trans) {
  const bool row_major = (d.col_stride == 1 || d.cols == 1) && (d.rows == 1 || d.row_stride >= d.cols);
  const bool col_major = (d.row_stride == 1 || d.rows == 1) && (d.cols == 1 || d.col_stride >= d.rows);
  if (row_major) {  // memory is x^T column-major
    return {t.raw_data(), trans ? CUBLAS_OP_T : CUBLAS_OP_N,
            d.rows == 1 ? std::max<int64_t>(d.cols, 1) : d.row_stride, d.batch_stride, Tensor()};
  }
  if (col_major) {  // memory is x column-major
    return {t.raw_data(), trans ? CUBLAS_OP_N : CUBLAS_OP_T,
            d.cols == 1 ? std::max<int64_t>(d.rows, 1) : d.col_stride, d.batch_stride, Tensor()};
  }
  // Any other layout (a stepped slice, a broadcast inside the matrix): pack it.
  Tensor packed = Tensor::empty({d.batch, d.rows, d.cols}, TensorOptions(t.dtype(), t.device()));
  const Tensor view = Tensor::view_of(t.storage(), {d.batch, d.rows, d.cols},
                                      {d.batch_stride, d.row_stride, d.col_stride}, t.offset(), t.dtype());
  cuda_backend().copy(packed, view);
  return {packed.raw_data(), trans ? CUBLAS_OP_T : CUBLAS_OP_N, std::max<int64_t>(d.cols, 1),
          d.batch == 1 ? 0 : d.rows * d.cols, packed};
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f64: return CUDA_R_64F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: break;
  }
  ZT_FAIL("gemm: dtype ", dtype_name(t), " is not supported (expected f32, f64, f16 or bf16)");
}

}  // namespace

void CudaBackend::gemm(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a,
                       bool trans_b, double alpha, double beta) {
  const GemmProblem p = describe_gemm(out, a, b, trans_a, trans_b);
  const int device = common_device("gemm", {&out, &a, &b});
  DeviceGuard guard(device);
  const Dims3& od = p.out;
  const Dims3& ad = p.a;
  const Dims3& bd = p.b;
  const int64_t batch = p.batch, m = p.m, n = p.n, k = p.k;
  const int64_t ldc = m == 1 ? std::max<int64_t>(n, 1) : od.row_stride;
  ZT_CHECK(ldc >= n, "gemm: out rows overlap: row stride ", od.row_stride, " < ", n, " columns");
  ZT_CHECK(ldc <= INT_MAX, "gemm: out's row stride ", ldc, " must fit in 32 bits for cuBLAS");
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {  // out = beta * out
    if (beta == 0.0) return fill(out, 0.0);
    return binary_scalar(BinaryOp::mul, out, out, beta, false);
  }
  const Operand ao = make_operand(a, ad, trans_a), bo = make_operand(b, bd, trans_b);
  ZT_CHECK(ao.ld <= INT_MAX && bo.ld <= INT_MAX, "gemm: leading dims must fit in 32 bits, found ",
           ao.ld, " and ", bo.ld);
  const cudaDataType_t type = cuda_type(out.dtype());
  const HandleSlot slot = handle_for(device);
  cublasHandle_t handle = slot.handle;
  const bool f64 = out.dtype() == DType::f64;
  const bool tf32 = out.dtype() == DType::f32 && allow_tf32();
  const cublasComputeType_t compute =
      f64 ? CUBLAS_COMPUTE_64F : (tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
  const float alpha_f = float(alpha), beta_f = float(beta);
  const void* alpha_p = f64 ? static_cast<const void*>(&alpha) : static_cast<const void*>(&alpha_f);
  const void* beta_p = f64 ? static_cast<const void*>(&beta) : static_cast<const void*>(&beta_f);
  const bool tensor_core = out.dtype() == DType::f16 || out.dtype() == DType::bf16 || tf32;
  if (batch == 1 && tensor_core && lt_enabled()) {
    // The cublasGemmEx call below in cuBLASLt's terms: b in the first slot, a in the second.
    const LtGemm g{.type = type, .compute = compute, .op_a = bo.op, .op_b = ao.op, .m = n, .n = m, .k = k,
                   .a = bo.data, .lda = bo.ld, .b = ao.data, .ldb = ao.ld, .d = out.raw_data(), .ldd = ldc,
                   .alpha = alpha_f, .beta = beta_f};
    if (lt_matmul(device, slot.stream, g, slot.workspace, kWorkspaceBytes)) return;
  }
  if (batch == 1) {  // the plain call: cuBLAS picks faster kernels for it than for a batch of one
    ZT_CUBLAS_CHECK(cublasGemmEx(handle, bo.op, ao.op, int(n), int(m), int(k), alpha_p, bo.data, type,
                                 int(bo.ld), ao.data, type, int(ao.ld), beta_p, out.raw_data(), type,
                                 int(ldc), compute, CUBLAS_GEMM_DEFAULT));
    return;
  }
  ZT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      handle, bo.op, ao.op, int(n), int(m), int(k), alpha_p, bo.data, type, int(bo.ld), bo.batch_stride,
      ao.data, type, int(ao.ld), ao.batch_stride, beta_p, out.raw_data(), type, int(ldc), od.batch_stride,
      int(batch), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace zt::cuda
