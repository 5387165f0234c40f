// The differentiable ops users write models with (namespace zt). Each records a graph node when
// grad mode is on and an input requires grad; its backward formula sits next to its forward in
// autograd/ops_*.cpp. Non-differentiable helpers (comparisons, argmax) are re-exported here so
// model code needs one namespace.
#pragma once
#include <optional>
#include <vector>

#include "core/factory.h"
#include "core/ops.h"

namespace zt {

// ---- elementwise ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor sub(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor div(const Tensor& a, double s);
Tensor pow(const Tensor& a, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor square(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a, bool tanh_approximation = false);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // grads flow to a and b

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double s);
Tensor operator-(const Tensor& a, double s);
Tensor operator*(const Tensor& a, double s);
Tensor operator/(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(double s, const Tensor& a);
Tensor operator/(double s, const Tensor& a);

// ---- comparisons and argmax: no gradient, bool / i64 results ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);

// ---- reductions ({} = all dims) ----
Tensor sum(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amax(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);  // grad split among ties
Tensor var(const Tensor& a, std::vector<int64_t> dims = {}, bool unbiased = true, bool keepdim = false);
Tensor norm(const Tensor& a);  // L2 norm of all elements

// ---- matrix products ----
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x (..., in) @ weight (out, in)^T + bias (out) [+ residual]: no transpose copy. A residual
// (..., out) of the result's shape, dtype and device, with a bias, is added inside the GEMM (a
// transformer block's x + proj(...)) and gets the output's gradient itself; any other residual
// goes through add.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Tensor& residual = Tensor());
// GPT's MLP: linear(gelu_tanh(linear(x, w1, b1)), w2, b2) [+ residual], with GELU and the biases
// (and the residual, as in linear) in the products' epilogues (raw::linear_gelu,
// gelu_linear_input_grads, linear_weight_grads): no separate GELU, GELU-gradient or bias-gradient
// pass. Values as the composition of those ops.
Tensor gelu_mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2,
                const Tensor& residual = Tensor());

// ---- shape (views where possible) ----
Tensor reshape(const Tensor& a, Shape shape);
Tensor transpose(const Tensor& a, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& a, const std::vector<int64_t>& dims);
Tensor narrow(const Tensor& a, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& a, int64_t dim, int64_t index);
Tensor unsqueeze(const Tensor& a, int64_t dim);
Tensor squeeze(const Tensor& a, int64_t dim);
Tensor flatten(const Tensor& a, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor expand(const Tensor& a, const Shape& shape);
Tensor contiguous(const Tensor& a);
Tensor to(const Tensor& a, DType dtype);  // cast; gradient cast back
Tensor to(const Tensor& a, Device device);
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
std::vector<Tensor> split(const Tensor& a, int64_t split_size, int64_t dim);
std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim);
Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index);

// ---- neural-network functions ----
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
Tensor embedding(const Tensor& weight, const Tensor& indices);
// Drops with probability p when training; identity otherwise. gen: default_generator() if null.
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);
// Attention over q, k, v (B, H, T, D), 1 <= D <= 128: softmax(q k^T * scale) v with scale
// 1/sqrt(D) unless given, key j <= query i when causal. Fused (core/ops.def attention_forward):
// no (T, T) matrix, forward or backward. The result is a (B, H, T, D) view of (B, T, H, D)
// memory, so merging heads afterwards is free.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = true,
                                    std::optional<double> scale = std::nullopt);
// Multi-head self-attention over a packed projection qkv (B, T, 3C), each token's row [q | k | v]
// with heads of C / n_head: the heads' outputs merged into (B, T, C). The same values as
// scaled_dot_product_attention over the split, head-viewed slices, and in backward the q, k and v
// gradients land straight in one (B, T, 3C) gradient: no zero fill and no assembly copies.
Tensor packed_qkv_attention(const Tensor& qkv, int64_t n_head, bool causal = true,
                            std::optional<double> scale = std::nullopt);
enum class Reduction { mean, sum, none };
// logits (N, C) or (..., C), target i64 (N) or (...); mean over non-ignored targets.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     Reduction reduction = Reduction::mean);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

// ---- 2-D convolution and pooling (NCHW; geometry in core/conv_geometry.h, as PyTorch) ----
// x (N, C, H, W), weight (O, C / groups, KH, KW), bias (O) or undefined -> (N, O, OH, OW).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              const Conv2dGeometry& geometry = {});
Tensor max_pool2d(const Tensor& x, const Pool2dGeometry& geometry);
Tensor avg_pool2d(const Tensor& x, const Pool2dGeometry& geometry);

}  // namespace zt
