// CPU GEMM kernel: batched out = alpha * op(a) @ op(b) + beta * out through OpenBLAS.
// f32/f64 go straight to cblas_sgemm/dgemm on the callers' memory (transposed views need no
// copy); f16/bf16 are converted to f32, multiplied with f32 accumulation and converted back.
//
// Note [GEMM operand layout]
// out is (B, M, N) or (M, N) (B = 1), with unit stride in its last dim. a is (Ba, R, C) or
// (R, C) where op(a) = trans_a ? a^T : a is (M, K); likewise b with op(b) (K, N). Ba is 1
// (broadcast: the same matrix for every batch, also when its batch stride is 0) or B.
// An operand whose last dim has unit stride is a row-major matrix with ld = stride(-2);
// one whose second-to-last dim has unit stride is the transpose of a row-major matrix with
// ld = stride(-1), so BLAS gets the opposite transpose flag. Any other layout (a stepped
// slice, a broadcast inside the matrix) is packed into a contiguous buffer first.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"
#include "core/gemm_problem.h"

namespace zt::cpu {
namespace {

using Dims3 = GemmOperand;

// One GEMM operand as BLAS consumes it (row-major order).
template <typename T>
struct BlasOperand {
  const T* data;  // first matrix of the batch
  CBLAS_TRANSPOSE trans;
  int64_t ld;
  int64_t batch_stride;  // elements between consecutive matrices; 0 when broadcast
};

// Expresses the stored (R, C) matrix with logical transpose `trans` to BLAS without a copy,
// or returns false when its strides do not allow it (Note [GEMM operand layout]).
bool blas_layout(const Dims3& d, bool trans, CBLAS_TRANSPOSE* blas_trans, int64_t* ld) {
  const bool row_major = (d.col_stride == 1 || d.cols == 1) && (d.rows == 1 || d.row_stride >= d.cols);
  const bool col_major = (d.row_stride == 1 || d.rows == 1) && (d.cols == 1 || d.col_stride >= d.rows);
  if (row_major) {
    *blas_trans = trans ? CblasTrans : CblasNoTrans;
    *ld = d.rows == 1 ? std::max<int64_t>(d.cols, 1) : d.row_stride;
  } else if (col_major) {
    *blas_trans = trans ? CblasNoTrans : CblasTrans;
    *ld = d.cols == 1 ? std::max<int64_t>(d.rows, 1) : d.col_stride;
  } else {
    return false;
  }
  return *ld <= INT_MAX;
}

// Copies the (batch, R, C) strided tensor into a contiguous Dst buffer, converting elements.
template <typename Dst>
std::vector<Dst> pack(const Tensor& t, const Dims3& d) {
  std::vector<Dst> buf(size_t(d.batch * d.rows * d.cols));
  const Shape shape{d.batch, d.rows, d.cols};
  const Shape src_strides{d.batch_stride, d.row_stride, d.col_stride};
  const Shape dst_strides = contiguous_strides(shape);
  ZT_DISPATCH_FLOATING(t.dtype(), "gemm", [&]<typename S>() {
    const S* src = typed_data<S>(t);
    Dst* dst = buf.data();
    for_each_segment<2>(shape, {&dst_strides, &src_strides},
                        [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                          for (int64_t j = 0; j < n; ++j)
                            dst[off[0] + j * st[0]] = cast_to<Dst>(src[off[1] + j * st[1]]);
                        });
  });
  return buf;
}

// The operand for BLAS: the tensor's own memory when its layout allows, else a packed copy
// (held in `storage`) in element type T.
template <typename T>
BlasOperand<T> make_operand(const Tensor& t, const Dims3& d, bool trans, std::vector<T>& storage) {
  BlasOperand<T> op{};
  if (DTypeOf<T>::value == t.dtype() && blas_layout(d, trans, &op.trans, &op.ld)) {
    op.data = typed_data<T>(t);
    op.batch_stride = d.batch_stride;
    return op;
  }
  storage = pack<T>(t, d);
  op.data = storage.data();
  op.trans = trans ? CblasTrans : CblasNoTrans;
  op.ld = std::max<int64_t>(d.cols, 1);
  op.batch_stride = d.batch == 1 ? 0 : d.rows * d.cols;
  return op;
}

inline void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k,
                      float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                      float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta,
              c, int(ldc));
}

inline void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k,
                      double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
                      double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta,
              c, int(ldc));
}

inline constexpr double kBlasSingleThreadWork = 65536.0 * 4;

struct GemmSizes {
  int64_t batch, m, n, k;
};

// Runs the batched product on BLAS operands; out is (batch, m, n) row-major with ld ldc.
template <typename T>
void run_batched(const GemmSizes& s, const BlasOperand<T>& a, const BlasOperand<T>& b, T* out,
                 int64_t ldc, int64_t out_batch_stride, double alpha, double beta) {
  // A batch of row-major matrices stacked without gaps, times one shared b, is one tall GEMM:
  // (batch * m, k) @ (k, n). This is the Linear layer's (B, T, C) @ (C, N) case.
  const bool foldable = s.batch > 1 && b.batch_stride == 0 && a.trans == CblasNoTrans &&
                        a.batch_stride == s.m * a.ld && out_batch_stride == s.m * ldc &&
                        s.batch * s.m <= INT_MAX;
  if (foldable) {
    blas_gemm(a.trans, b.trans, s.batch * s.m, s.n, s.k, T(alpha), a.data, a.ld, b.data, b.ld,
              T(beta), out, ldc);
    return;
  }
  // OpenBLAS runs products of at most kBlasSingleThreadWork multiply-adds on one thread (its
  // GEMM_MULTITHREAD_THRESHOLD), so a batch of those is spread over OpenMP threads instead;
  // larger products use OpenBLAS's own threads, one matrix at a time.
  const bool small = double(s.m) * double(s.n) * double(s.k) <= kBlasSingleThreadWork;
#pragma omp parallel for schedule(static) if (small && s.batch > 1)
  for (int64_t i = 0; i < s.batch; ++i) {
    blas_gemm(a.trans, b.trans, s.m, s.n, s.k, T(alpha), a.data + i * a.batch_stride, a.ld,
              b.data + i * b.batch_stride, b.ld, T(beta), out + i * out_batch_stride, ldc);
  }
}

// out = beta * out for an empty inner dimension (BLAS rejects k == 0 with some ld values).
void scale_out(const Tensor& out, double beta) {
  ZT_DISPATCH_FLOATING(out.dtype(), "gemm", [&]<typename T>() {
    T* base = typed_data<T>(out);
    for_each_segment<1>(out.shape(), {&out.strides()},
                        [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
                          for (int64_t j = 0; j < n; ++j) {
                            T& v = base[off[0] + j * st[0]];
                            v = beta == 0.0 ? T(0) : cast_to<T>(cast_to<double>(v) * beta);
                          }
                        });
  });
}

// f32/f64: BLAS on the tensors' own memory; packs only operands BLAS cannot address.
template <typename T>
void gemm_native(const GemmSizes& s, const Tensor& out, const Dims3& od, const Tensor& a,
                 const Dims3& ad, bool trans_a, const Tensor& b, const Dims3& bd, bool trans_b,
                 double alpha, double beta) {
  std::vector<T> a_buf, b_buf;
  BlasOperand<T> ao = make_operand<T>(a, ad, trans_a, a_buf);
  BlasOperand<T> bo = make_operand<T>(b, bd, trans_b, b_buf);
  run_batched<T>(s, ao, bo, typed_data<T>(out), od.row_stride, od.batch_stride, alpha, beta);
}

// f16/bf16: f32 copies of the operands (and of out when beta != 0), sgemm, convert back.
void gemm_half(const GemmSizes& s, const Tensor& out, const Dims3& od, const Tensor& a,
               const Dims3& ad, bool trans_a, const Tensor& b, const Dims3& bd, bool trans_b,
               double alpha, double beta) {
  std::vector<float> a_buf, b_buf;
  BlasOperand<float> ao = make_operand<float>(a, ad, trans_a, a_buf);
  BlasOperand<float> bo = make_operand<float>(b, bd, trans_b, b_buf);
  std::vector<float> acc = beta == 0.0 ? std::vector<float>(size_t(s.batch * s.m * s.n), 0.0f)
                                       : pack<float>(out, od);
  run_batched<float>(s, ao, bo, acc.data(), s.n, s.m * s.n, alpha, beta);
  ZT_DISPATCH_FLOATING(out.dtype(), "gemm", [&]<typename T>() {
    T* o = typed_data<T>(out);
    parallel_for(s.batch * s.m, s.n, [&](int64_t row) {
      const int64_t bi = row / s.m, r = row % s.m;
      T* dst = o + bi * od.batch_stride + r * od.row_stride;
      const float* src = acc.data() + row * s.n;
      for (int64_t j = 0; j < s.n; ++j) dst[j] = cast_to<T>(src[j]);
    });
  });
}

}  // namespace

void CpuBackend::gemm(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a,
                      bool trans_b, double alpha, double beta) {
  const GemmProblem p = describe_gemm(out, a, b, trans_a, trans_b);
  const Dims3& od = p.out;
  const Dims3& ad = p.a;
  const Dims3& bd = p.b;
  const GemmSizes s{p.batch, p.m, p.n, p.k};
  if (s.batch == 0 || s.m == 0 || s.n == 0) return;
  if (s.k == 0) return scale_out(out, beta);

  Dims3 out_dims = od;
  if (s.m == 1) out_dims.row_stride = s.n;  // ld is unused for one row, but BLAS wants >= n
  ZT_CHECK(out_dims.row_stride >= s.n, "gemm: out rows overlap: row stride ", od.row_stride,
           " < ", s.n, " columns");
  switch (out.dtype()) {
    case DType::f32:
      return gemm_native<float>(s, out, out_dims, a, ad, trans_a, b, bd, trans_b, alpha, beta);
    case DType::f64:
      return gemm_native<double>(s, out, out_dims, a, ad, trans_a, b, bd, trans_b, alpha, beta);
    default:
      return gemm_half(s, out, out_dims, a, ad, trans_a, b, bd, trans_b, alpha, beta);
  }
}

void CpuBackend::gemm_bias(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                           const Tensor& bias, const Tensor& residual) {
  check_gemm_bias(out, bias, residual);
  auto rows_of = [&](const Tensor& vec) {  // the (N) vector broadcast to out's rows
    return Tensor::view_of(vec.storage(), out.shape(), {0, 1}, vec.offset(), vec.dtype());
  };
  if (!residual.defined()) {
    // The bias rows first, then the product accumulated onto them: one rounding of the sum.
    copy(out, rows_of(bias));
    return gemm(out, a, b, trans_a, trans_b, 1.0, 1.0);
  }
  // f16/bf16 sum residual, bias and product in f32 and round once, as gemm_half does for the bias
  // alone; f32/f64 round residual + bias, then the sum with the product.
  const bool half = out.dtype() == DType::f16 || out.dtype() == DType::bf16;
  auto wide = [&](const Tensor& t) {
    if (!half) return t;
    Tensor w = Tensor::empty(t.shape(), {DType::f32, t.device()});
    copy(w, t);
    return w;
  };
  const Tensor acc = half ? Tensor::empty(out.shape(), {DType::f32, out.device()}) : out;
  copy(acc, residual);
  binary(BinaryOp::add, acc, acc, rows_of(wide(bias)));
  gemm(acc, wide(a), wide(b), trans_a, trans_b, 1.0, 1.0);
  if (half) copy(out, acc);
}

// The meaning of the fused forms is the composition: each step rounds to the dtype, as the
// separate ops would.
void CpuBackend::gemm_bias_gelu(const Tensor& out, const Tensor& pre, const Tensor& a, const Tensor& b, bool trans_a,
                                bool trans_b, const Tensor& bias) {
  check_gemm_epilogue("gemm_bias_gelu", out, bias, out.dim() == 2 ? out.size(1) : -1, pre);
  gemm_bias(pre, a, b, trans_a, trans_b, bias, Tensor());
  unary(UnaryOp::gelu_tanh, out, pre);
}

void CpuBackend::gemm_gelu_backward(const Tensor& grad_pre, const Tensor& grad_bias, const Tensor& a,
                                    const Tensor& b, bool trans_a, bool trans_b, const Tensor& pre) {
  check_gemm_epilogue("gemm_gelu_backward", grad_pre, grad_bias, grad_pre.dim() == 2 ? grad_pre.size(1) : -1, pre);
  gemm(grad_pre, a, b, trans_a, trans_b, 1.0, 0.0);
  unary_backward(UnaryOp::gelu_tanh, grad_pre, grad_pre, pre);
  if (grad_pre.numel() == 0) return fill(grad_bias, 0.0);  // no rows (the kernel needs one)
  reduce(ReduceOp::sum, as_reduction_output(grad_bias, 0), grad_pre, {0});
}

void CpuBackend::gemm_row_sums(const Tensor& out, const Tensor& a_sums, const Tensor& a, const Tensor& b,
                               bool trans_a, bool trans_b) {
  check_gemm_epilogue("gemm_row_sums", out, a_sums, out.dim() == 2 ? out.size(0) : -1, Tensor());
  gemm(out, a, b, trans_a, trans_b, 1.0, 0.0);
  if (a.numel() == 0) return fill(a_sums, 0.0);  // K = 0 (the kernel needs an element)
  reduce(ReduceOp::sum, as_reduction_output(a_sums, trans_a ? 0 : 1), a, {trans_a ? 0 : 1});  // op(a) (M, K)
}

}  // namespace zt::cpu
