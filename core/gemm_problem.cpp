// gemm contract checks shared by the backends (core/gemm_problem.h).
#include "core/gemm_problem.h"

#include <climits>

namespace zt {

namespace {

GemmOperand describe_operand(const Tensor& t, const char* what) {
  ZT_CHECK(t.dim() == 2 || t.dim() == 3, "gemm: ", what, " must be 2-D or 3-D, found shape ",
           shape_str(t.shape()));
  const int64_t nd = t.dim();
  GemmOperand d{1, t.size(nd - 2), t.size(nd - 1), 0, t.stride(nd - 2), t.stride(nd - 1)};
  if (nd == 3) {
    d.batch = t.size(0);
    d.batch_stride = d.batch == 1 ? 0 : t.stride(0);
  }
  return d;
}

}  // namespace

GemmProblem describe_gemm(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  ZT_CHECK(is_floating(out.dtype()), "gemm: dtype ", dtype_name(out.dtype()),
           " is not supported (expected f32, f64, f16 or bf16)");
  ZT_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "gemm: operands must share out's dtype ",
           dtype_name(out.dtype()), ", found a ", dtype_name(a.dtype()), " and b ", dtype_name(b.dtype()));
  GemmProblem p{describe_operand(out, "out"), describe_operand(a, "a"), describe_operand(b, "b"), 0, 0, 0, 0};
  p.batch = p.out.batch;
  p.m = p.out.rows;
  p.n = p.out.cols;
  p.k = trans_a ? p.a.rows : p.a.cols;
  const int64_t a_m = trans_a ? p.a.cols : p.a.rows;
  const int64_t b_k = trans_b ? p.b.cols : p.b.rows, b_n = trans_b ? p.b.rows : p.b.cols;
  ZT_CHECK(a_m == p.m && b_k == p.k && b_n == p.n, "gemm: shapes do not chain: out ",
           shape_str(out.shape()), ", a ", shape_str(a.shape()), (trans_a ? " (transposed)" : ""),
           ", b ", shape_str(b.shape()), (trans_b ? " (transposed)" : ""));
  ZT_CHECK((p.a.batch == 1 || p.a.batch == p.batch) && (p.b.batch == 1 || p.b.batch == p.batch),
           "gemm: batch sizes must be 1 or out's ", p.batch, ", found a ", shape_str(a.shape()),
           " and b ", shape_str(b.shape()));
  ZT_CHECK(p.out.col_stride == 1 || p.n == 1,
           "gemm: out must have unit stride in its last dim, found strides ", shape_str(out.strides()));
  ZT_CHECK(p.m <= INT_MAX && p.n <= INT_MAX && p.k <= INT_MAX && p.batch <= INT_MAX &&
               p.out.row_stride <= INT_MAX,
           "gemm: sizes must fit in 32 bits, found m=", p.m, " n=", p.n, " k=", p.k, " batch=", p.batch);
  // The product reads a and b while writing out: an overlap would silently corrupt the result.
  ZT_CHECK(!out.shares_storage(a) && !out.shares_storage(b),
           "gemm: out must not share memory with a or b (write the product to a new tensor)");
  return p;
}

void check_gemm_bias(const Tensor& out, const Tensor& bias, const Tensor& residual) {
  ZT_CHECK(out.dim() == 2 && bias.dim() == 1 && bias.size(0) == out.size(1) && bias.is_contiguous() &&
               bias.dtype() == out.dtype(),
           "gemm_bias: expected out (M, N) and a contiguous bias (N) of out's dtype, found ", out.str(), " and ",
           bias.str());
  if (!residual.defined()) return;
  ZT_CHECK(residual.shape() == out.shape() && residual.is_contiguous() && residual.dtype() == out.dtype() &&
               residual.device() == out.device(),
           "gemm_bias: expected a contiguous residual ", shape_str(out.shape()), " of ", dtype_name(out.dtype()),
           " on ", out.device().str(), " (out's shape, dtype and device), found ", residual.str());
  ZT_CHECK(out.is_contiguous(), "gemm_bias: out must be contiguous when a residual is added, found ", out.str());
  // The epilogue reads the residual while writing out (and the fallback writes out first).
  ZT_CHECK(!out.shares_storage(residual), "gemm_bias: the residual must not share memory with out");
}

void check_gemm_epilogue(const char* op, const Tensor& out, const Tensor& vec, int64_t vec_len, const Tensor& aux) {
  ZT_CHECK(out.dim() == 2 && out.is_contiguous(), op, ": out must be a contiguous 2-D tensor, found ", out.str());
  ZT_CHECK(vec.dim() == 1 && vec.size(0) == vec_len && vec.is_contiguous() && vec.dtype() == out.dtype(), op,
           ": expected a contiguous vector of ", vec_len, " ", dtype_name(out.dtype()), " elements, found ",
           vec.str());
  if (aux.defined())
    ZT_CHECK(aux.shape() == out.shape() && aux.is_contiguous() && aux.dtype() == out.dtype(), op,
             ": the GELU input must be contiguous, of out's shape and dtype ", out.str(), ", found ", aux.str());
}

Tensor as_reduction_output(const Tensor& v, int dim) {
  const int64_t n = v.size(0);
  return Tensor::view_of(v.storage(), dim == 0 ? Shape{1, n} : Shape{n, 1}, {n, 1}, v.offset(), v.dtype());
}

}  // namespace zt
