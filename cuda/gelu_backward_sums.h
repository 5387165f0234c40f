// GELU's backward fused with the column sums that give the bias gradient (cuda/gemm.cpp's
// gemm_gelu_backward, after the product). No CUDA header here (DESIGN.md §1).
#pragma once
#include "core/tensor.h"

namespace zt::cuda {

// grad (M, N) *= gelu_tanh'(pre) in place, rounded to grad's dtype as unary_backward rounds it,
// and grad_bias (N) = the column sums of the result, in one pass over grad and pre (the sums of
// 16-byte vectors of columns over row chunks in f32, f64 for f64, then added chunk by chunk).
// Returns false, doing nothing, unless grad and pre are contiguous (M, N) of one dtype with
// 16-byte aligned data, N a multiple of the vector, and grad_bias a contiguous (N) of that dtype.
bool gelu_tanh_backward_with_sums(const Tensor& grad, const Tensor& pre, const Tensor& grad_bias);

}  // namespace zt::cuda
