// CUDA GEMM through cuBLAS: f32 (TF32 only when switched on), f16/bf16 with f32 accumulation,
// f64. Plain (unbatched) f16/bf16/TF32 problems go through cuBLASLt with a cached heuristic
// choice (cuda/gemm_lt.h; ZT_CUBLASLT=0 sends them to cublasGemmEx), the rest through
// cublasGemmEx / cublasGemmStridedBatchedEx. Transposed views go to cuBLAS as transpose flags
// without a copy; one cuBLAS handle per device, bound to the device's current stream, with its
// own workspace (shared with cuBLASLt: both queue on that one stream). Shapes and layouts as in
// Note [GEMM operand layout] (core/cpu/gemm.cpp).
//
// gemm_bias, gemm_bias_gelu and gemm_row_sums do their extra work in cuBLASLt's epilogue (BIAS,
// GELU_AUX_BIAS, BGRADB) when the problem goes there; otherwise as separate kernels after the
// product (gemm_bias: the bias rows written first and the product accumulated onto them). A
// residual for gemm_bias is cuBLASLt's C (beta 1, D apart), or in the fallback added to the bias
// rows before the product is accumulated onto them.
// gemm_gelu_backward always runs apart: the GELU gradient and the bias sums in one pass over the
// product (cuda/gelu_backward_sums.h; cuBLASLt's DGELU_BGRAD measured slower).
//
// cuBLAS is column-major: the row-major out (M, N) is the column-major out^T (N, M), so we ask
// for out^T = op(b)^T @ op(a)^T, with b in cuBLAS's first operand slot and a in its second.
#include <algorithm>
#include <climits>
#include <mutex>
#include <optional>
#include <vector>

#include "core/gemm_problem.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/device.h"
#include "cuda/gelu_backward_sums.h"
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

// out's rows set to the (N) bias, plus the residual (M, N) when defined.
void write_bias_rows(const Tensor& out, const Tensor& bias, const Tensor& residual) {
  const Tensor rows = Tensor::view_of(bias.storage(), out.shape(), {0, 1}, bias.offset(), bias.dtype());
  if (!residual.defined()) return cuda_backend().copy(out, rows);
  cuda_backend().binary(BinaryOp::add, out, residual, rows);
}

// What follows the product (row-major terms; core/ops.def gemm_bias, gemm_bias_gelu,
// gemm_gelu_backward, gemm_row_sums): vec is the bias, the bias gradient or a's row sums, aux the
// GELU input, residual (Post::bias only) a matrix like out added to the result.
enum class Post { none, bias, gelu_aux_bias, gelu_backward, row_sums };
struct Epilogue {
  Post kind = Post::none;
  Tensor vec, aux, residual;
};

// The cuBLASLt epilogue that does `kind` inside the GEMM, if one is used. GELU's backward is not:
// cuBLASLt ran DGELU_BGRAD as the plain product plus a generic epilogue kernel
// (cublasLt::globalKernel, 161 us for a bf16 (8192, 3072) output on the H200, against 42 + 20 us
// for the GELU-gradient and column-sum kernels of run_epilogue_apart).
std::optional<LtEpilogue> lt_form(Post kind) {
  switch (kind) {
    case Post::none: return LtEpilogue::none;
    case Post::bias: return LtEpilogue::bias;
    case Post::gelu_aux_bias: return LtEpilogue::gelu_aux_bias;
    case Post::row_sums: {
      // ZT_CUBLASLT_BGRADB=0 sums the rows with our column-sum kernel after a plain product
      // (cuBLASLt runs BGRADB as a separate kernel, epilogue::globalKernelBgradAB, 13-32 us a call
      // in the GPT-2 124M step at batch 16).
      if (lt_bgradb_enabled()) return LtEpilogue::bgradb;
      break;
    }
    case Post::gelu_backward: break;
  }
  return std::nullopt;
}

bool aligned_16(const Tensor& t) { return !t.defined() || reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0; }

// The epilogue's work as separate kernels after a plain product into out (aux for GELU's forward).
void run_epilogue_apart(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                        const Epilogue& e);

// gemm, or (2-D, alpha 1, beta 0) a product with an epilogue: cuBLASLt's fused epilogue when
// the problem goes there, else run_epilogue_apart.
void run_gemm(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, double alpha,
              double beta, const Epilogue& e = {}) {
  const GemmProblem p = describe_gemm(out, a, b, trans_a, trans_b);
  const int device = common_device("gemm", {&out, &a, &b, &e.vec, &e.aux, &e.residual});
  DeviceGuard guard(device);
  const Dims3& od = p.out;
  const Dims3& ad = p.a;
  const Dims3& bd = p.b;
  const int64_t batch = p.batch, m = p.m, n = p.n, k = p.k;
  const int64_t ldc = m == 1 ? std::max<int64_t>(n, 1) : od.row_stride;
  ZT_CHECK(ldc >= n, "gemm: out rows overlap: row stride ", od.row_stride, " < ", n, " columns");
  ZT_CHECK(ldc <= INT_MAX, "gemm: out's row stride ", ldc, " must fit in 32 bits for cuBLAS");
  const bool sums = e.kind == Post::gelu_backward || e.kind == Post::row_sums;
  if (batch == 0 || m == 0 || n == 0) {  // an empty product; a vector of sums may still have length
    if (sums) run_epilogue_apart(out, a, b, trans_a, trans_b, e);
    return;
  }
  if (e.kind == Post::bias && k == 0) return write_bias_rows(out, e.vec, e.residual);
  if (e.kind != Post::none && k == 0) return run_epilogue_apart(out, a, b, trans_a, trans_b, e);
  if (k == 0) {  // out = beta * out
    if (beta == 0.0) return cuda_backend().fill(out, 0.0);
    return cuda_backend().binary_scalar(BinaryOp::mul, out, out, beta, false);
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
  const bool tensor_core = out.dtype() == DType::f16 || out.dtype() == DType::bf16 || tf32;
  // The epilogue reads and writes its vector and aux matrix in 16-byte vectors; an aux matrix
  // needs a leading dim divisible by 8 (cublasLt.h). A residual's alignment is the plan's (its C).
  const bool residual = e.residual.defined();
  const std::optional<LtEpilogue> lt = lt_form(e.kind);
  const bool epilogue_ok = lt && aligned_16(e.vec) && aligned_16(e.aux) && (!e.aux.defined() || ldc % 8 == 0);
  if (batch == 1 && tensor_core && lt_enabled() && epilogue_ok) {
    // The cublasGemmEx call below in cuBLASLt's terms: b in the first slot, a in the second. So
    // out's columns are cuBLASLt's rows (the bias and the GELU bias gradient run along them) and
    // a is cuBLASLt's B (its sums over k are BGRADB's).
    const LtGemm g{.type = type, .compute = compute, .op_a = bo.op, .op_b = ao.op, .m = n, .n = m, .k = k,
                   .a = bo.data, .lda = bo.ld, .b = ao.data, .ldb = ao.ld, .d = out.raw_data(), .ldd = ldc,
                   .alpha = float(alpha), .beta = residual ? 1.0f : float(beta),
                   .c = residual ? e.residual.raw_data() : nullptr, .epilogue = *lt,
                   .vec = e.vec.defined() ? e.vec.raw_data() : nullptr,
                   .aux = e.aux.defined() ? e.aux.raw_data() : nullptr};
    if (lt_matmul(device, slot.stream, g, slot.workspace, kWorkspaceBytes)) return;
  }
  if (e.kind == Post::bias) {  // the bias (+ residual) rows first, the product accumulated onto them
    write_bias_rows(out, e.vec, e.residual);
    beta = 1.0;
  } else if (e.kind != Post::none) {
    return run_epilogue_apart(out, a, b, trans_a, trans_b, e);
  }
  const float alpha_f = float(alpha), beta_f = float(beta);
  const void* alpha_p = f64 ? static_cast<const void*>(&alpha) : static_cast<const void*>(&alpha_f);
  const void* beta_p = f64 ? static_cast<const void*>(&beta) : static_cast<const void*>(&beta_f);
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

void run_epilogue_apart(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                        const Epilogue& e) {
  CudaBackend& be = cuda_backend();
  switch (e.kind) {
    case Post::none: return run_gemm(out, a, b, trans_a, trans_b, 1.0, 0.0);
    case Post::bias:
      write_bias_rows(out, e.vec, e.residual);
      return run_gemm(out, a, b, trans_a, trans_b, 1.0, 1.0);
    case Post::gelu_aux_bias:
      run_gemm(e.aux, a, b, trans_a, trans_b, 1.0, 0.0, {Post::bias, e.vec, Tensor(), Tensor()});
      return be.unary(UnaryOp::gelu_tanh, out, e.aux);
    case Post::gelu_backward:
      run_gemm(out, a, b, trans_a, trans_b, 1.0, 0.0);
      if (out.numel() == 0) return be.fill(e.vec, 0.0);
      if (gelu_tanh_backward_with_sums(out, e.aux, e.vec)) return;  // one pass over the product
      be.unary_backward(UnaryOp::gelu_tanh, out, out, e.aux);
      return be.reduce(ReduceOp::sum, as_reduction_output(e.vec, 0), out, {0});
    case Post::row_sums:
      run_gemm(out, a, b, trans_a, trans_b, 1.0, 0.0);
      // op(a) is (M, K): a stored (K, M) when transposed.
      if (a.numel() == 0) return be.fill(e.vec, 0.0);
      return be.reduce(ReduceOp::sum, as_reduction_output(e.vec, trans_a ? 0 : 1), a, {trans_a ? 0 : 1});
  }
}

}  // namespace

void CudaBackend::gemm(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, double alpha,
                       double beta) {
  run_gemm(out, a, b, trans_a, trans_b, alpha, beta);
}

void CudaBackend::gemm_bias(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                            const Tensor& bias, const Tensor& residual) {
  check_gemm_bias(out, bias, residual);
  run_gemm(out, a, b, trans_a, trans_b, 1.0, 0.0, {Post::bias, bias, Tensor(), residual});
}

void CudaBackend::gemm_bias_gelu(const Tensor& out, const Tensor& pre, const Tensor& a, const Tensor& b, bool trans_a,
                                 bool trans_b, const Tensor& bias) {
  check_gemm_epilogue("gemm_bias_gelu", out, bias, out.dim() == 2 ? out.size(1) : -1, pre);
  run_gemm(out, a, b, trans_a, trans_b, 1.0, 0.0, {Post::gelu_aux_bias, bias, pre, Tensor()});
}

void CudaBackend::gemm_gelu_backward(const Tensor& grad_pre, const Tensor& grad_bias, const Tensor& a,
                                     const Tensor& b, bool trans_a, bool trans_b, const Tensor& pre) {
  check_gemm_epilogue("gemm_gelu_backward", grad_pre, grad_bias, grad_pre.dim() == 2 ? grad_pre.size(1) : -1, pre);
  run_gemm(grad_pre, a, b, trans_a, trans_b, 1.0, 0.0, {Post::gelu_backward, grad_bias, pre, Tensor()});
}

void CudaBackend::gemm_row_sums(const Tensor& out, const Tensor& a_sums, const Tensor& a, const Tensor& b,
                                bool trans_a, bool trans_b) {
  check_gemm_epilogue("gemm_row_sums", out, a_sums, out.dim() == 2 ? out.size(0) : -1, Tensor());
  run_gemm(out, a, b, trans_a, trans_b, 1.0, 0.0, {Post::row_sums, a_sums, Tensor(), Tensor()});
}

}  // namespace zt::cuda
