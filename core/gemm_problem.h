// The gemm op's contract (core/ops.def), checked once for every backend: operand layouts as
// (batch, rows, cols) with element strides, and the problem sizes (batch, m, n, k).
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace zt {

// A 2-D or 3-D tensor as (batch, rows, cols); batch stride 0 when 2-D or a batch of one.
struct GemmOperand {
  int64_t batch, rows, cols;
  int64_t batch_stride, row_stride, col_stride;
};

struct GemmProblem {
  GemmOperand out, a, b;
  int64_t batch, m, n, k;
};

// out (B, M, N) = op(a) (B|1, M, K) @ op(b) (B|1, K, N): checks dtypes (one floating dtype),
// ranks, that the shapes chain, the batch rule, out's unit stride, 32-bit sizes (BLAS and
// cuBLAS take int) and that out shares no memory with a or b; errors name what was found.
GemmProblem describe_gemm(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);

// gemm_bias: out (M, N), a contiguous bias (N) of out's dtype; residual undefined, or contiguous
// (M, N) of out's dtype and device, sharing no memory with out, which is then contiguous too.
void check_gemm_bias(const Tensor& out, const Tensor& bias, const Tensor& residual);

// The epilogue ops' extra operands (gemm_bias_gelu, gemm_gelu_backward, gemm_row_sums): out a
// contiguous 2-D tensor; vec a contiguous (vec_len) of out's dtype; aux, when defined, contiguous
// and like out.
void check_gemm_epilogue(const char* op, const Tensor& out, const Tensor& vec, int64_t vec_len, const Tensor& aux);

// A (n) vector viewed as the (1, n) or (n, 1) output of a 2-D reduction over dim 0 or 1.
Tensor as_reduction_output(const Tensor& v, int dim);

}  // namespace zt
