// Raw tensor ops: shape/dtype checks, output allocation and dispatch to the device's backend.
// No autograd here (Note [Raw vs differentiable ops] in core/tensor.h). Views share storage.
#pragma once
#include <optional>
#include <vector>

#include "core/backend.h"
#include "core/generator.h"
#include "core/tensor.h"

namespace zt::raw {

// ---- views (no copy) ----
Tensor reshape(const Tensor& a, Shape shape);  // one dim may be -1; copies only if it must
Tensor view(const Tensor& a, Shape shape);     // like reshape, but errors instead of copying
Tensor transpose(const Tensor& a, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& a, const std::vector<int64_t>& dims);
Tensor narrow(const Tensor& a, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& a, int64_t dim, int64_t index);  // removes dim
Tensor unsqueeze(const Tensor& a, int64_t dim);
Tensor squeeze(const Tensor& a, int64_t dim);
Tensor flatten(const Tensor& a, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor expand(const Tensor& a, const Shape& shape);  // broadcast view (stride 0)
std::vector<Tensor> split(const Tensor& a, int64_t split_size, int64_t dim);
std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim);

// ---- copies ----
Tensor contiguous(const Tensor& a);               // a itself when already contiguous
Tensor clone(const Tensor& a);
Tensor to(const Tensor& a, DType dtype);          // a itself when dtype matches
Tensor to(const Tensor& a, Device device);        // a itself when already there
void copy_(const Tensor& dst, const Tensor& src);  // src broadcast to dst's shape, cast
void fill_(const Tensor& dst, double value);
// Note [Asynchronous transfers]
// copy_async starts dst <- src between the host and an accelerator (both contiguous, one shape
// and dtype) and returns at once where it can: on CUDA the copy runs on the device's copy stream,
// after the work already queued on its current stream, so it overlaps what the host does next
// (ZeRO-Offload's CPU Adam). The host side must be page-locked for that; a pageable one makes
// the copy synchronous, as cudaMemcpyAsync does. Wait on the handle before reading dst (for a
// device dst: before queueing work that reads it) and before writing src. On the CPU backend
// (host to host) the copy is done when it returns.
TransferHandle copy_async(const Tensor& dst, const Tensor& src);
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
// dst (N) 1-D contiguous <- each srcs[i] (contiguous, any shape, dst's dtype and device: a narrow
// of a flattened tensor counts) at [offsets[i], offsets[i] + numel), the ranges disjoint, zeros
// everywhere else (no sources: all zeros). One kernel launch (or a few) on CUDA, not a fill plus
// a copy per source: packing many gradients into a flat buffer (core/pack_flat.h).
void pack_flat_(const Tensor& dst, const std::vector<Tensor>& srcs, const std::vector<int64_t>& offsets);

// ---- elementwise (numpy broadcasting; operands must share a dtype) ----
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor binary(BinaryOp op, const Tensor& a, double scalar, bool scalar_first = false);
Tensor unary(UnaryOp op, const Tensor& a);
Tensor unary_backward(UnaryOp op, const Tensor& grad_out, const Tensor& x);
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// In place into a (a must not be a broadcast view): a = a op b.
void binary_(BinaryOp op, const Tensor& a, const Tensor& b);
void binary_(BinaryOp op, const Tensor& a, double scalar);

// ---- reductions ----
// dtype: the result's, when not the default (a's; i64 for integer sums): f32 or f64, no narrower
// than a's, for the sum, mean or sum_squares of a floating a (the sum of squares of bf16
// gradients without a widened copy).
Tensor reduce(ReduceOp op, const Tensor& a, std::vector<int64_t> dims, bool keepdim = false,
              std::optional<DType> dtype = std::nullopt);
Tensor sum(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);  // {} = all
Tensor mean(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amax(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amin(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim = false);
// Reduces a broadcast result back to `shape` by summing the broadcast dims (for backward).
Tensor sum_to(const Tensor& a, const Shape& shape);

// ---- matrix products ----
// (M, K) @ (K, N); (B, M, K) @ (B, K, N); (..., M, K) @ (K, N). trans_* transposes the last two
// dims of that operand without a copy.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x (..., K) @ weight (N, K)^T + bias (N): a linear layer's forward, through the backend's
// gemm_bias (its bias added in the GEMM's epilogue where it can) over x's rows (a copy when its
// leading dims do not merge). One dtype and device. residual, when defined, is of the result's
// shape (..., N) and is added in the same GEMM (a transformer block's residual add, fused).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual = Tensor());
// linear then GELU (tanh approximation) in one product (gemm_bias_gelu): out = gelu_tanh(pre),
// pre = x W^T + b (..., N), kept for backward.
struct LinearGelu {
  Tensor out, pre;
};
LinearGelu linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias);
// A linear layer's weight and bias gradients from grad_out (..., N) and its input x (..., K):
// grad_out^T x (N, K) and the column sums of grad_out (N), from one product (gemm_row_sums).
struct LinearGrads {
  Tensor weight, bias;
};
LinearGrads linear_weight_grads(const Tensor& grad_out, const Tensor& x);
// Through a linear layer's input and the GELU before it (gemm_gelu_backward): pre (..., K) =
// gelu's input, weight (N, K), grad_out (..., N): grad_pre = (grad_out @ weight) * gelu_tanh'(pre)
// and its column sums, the bias gradient of the layer that made pre.
struct GeluLinearGrads {
  Tensor pre, bias;
};
GeluLinearGrads gelu_linear_input_grads(const Tensor& grad_out, const Tensor& weight, const Tensor& pre);
// out += alpha * a @ b with the same shape rules, accumulating in place.
void matmul_acc_(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                 double alpha = 1.0, double beta = 1.0);

// ---- row-wise ----
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim, bool log);
struct LayerNormResult {
  Tensor y, mean, rstd;  // mean/rstd: (rows), f32 (f64 for f64 input)
};
// Normalises over the last dim; weight/bias (C) may be undefined.
LayerNormResult layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
struct LayerNormGrads {
  Tensor x, weight, bias;
};
// grad_add (optional, x's shape and dtype): added to the input gradient in the same pass
// (ops.def layer_norm_backward).
LayerNormGrads layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& weight, bool need_weight_grads,
                                   const Tensor& grad_add = Tensor());
// Per-row losses (N) for logits (N, C) and target (N): f32, or f64 for f64 logits.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100);
Tensor cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& target,
                              int64_t ignore_index = -100);

// ---- attention (core/ops.def: attention_forward/backward; Note [Attention layout]) ----
struct AttentionResult {
  Tensor out;  // (B, H, T, D), a view of (B, T, H, D) memory
  Tensor lse;  // (B, H, T): f32, or f64 for f64 inputs
};
// softmax(scale * q k^T) v over q, k, v (B, H, T, D) of one floating dtype, 1 <= D <= 128, with
// key j <= query i when causal; fused (no (T, T) matrix). Inputs are used as they are when their
// last dim has unit stride (the views of a qkv projection), copied otherwise.
AttentionResult attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal);
struct AttentionGrads {
  Tensor q, k, v;  // (B, H, T, D) each, views of (B, T, H, D) memory
};
// The gradients of attention() from grad_out and that call's inputs, out and lse.
AttentionGrads attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse, double scale, bool causal);
// The same into given gradients (B, H, T, D) of q's dtype and device, unit stride in D: views that
// may interleave, as the q, k and v slices of one packed (B, T, 3C) gradient do.
void attention_backward_into(const AttentionGrads& grads, const Tensor& grad_out, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& out, const Tensor& lse, double scale, bool causal);

// ---- indexing ----
Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index);
void index_add_(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
Tensor embedding(const Tensor& weight, const Tensor& indices);  // (..., C) for indices (...)

// ---- random ----
struct DropoutResult {
  Tensor out, mask;  // mask: u8, 1 = kept
};
DropoutResult dropout(const Tensor& x, double p, Generator& gen);

// ---- optimizer ----
// One fused Adam (decoupled = false: g += wd * p) or AdamW (decoupled: p *= 1 - lr * wd) step,
// in place over contiguous tensors of one numel on one device (ops.def: adam_step):
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
// param, exp_avg, exp_avg_sq: f32 or f64; grad: param's dtype, or f16/bf16 for an f32 param,
// read as grad * grad_scale.unscale * grad_scale.clip with the roundings core/adam_scalars.h
// states (finite factors); model_copy: undefined, or f16/bf16 receiving the updated param in the
// same pass.
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled,
                int64_t step, const Tensor& model_copy = Tensor(), const GradientScale& grad_scale = {});

// ---- 2-D convolution and pooling (NCHW; geometry in core/conv_geometry.h) ----
// x (N, C, H, W), weight (O, C / groups, KH, KW), bias (O) or undefined -> (N, O, OH, OW).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dGeometry& geometry);
// The gradients of conv2d with respect to x (of shape x_shape) and weight (of weight_shape);
// the bias gradient is sum(grad_out, {0, 2, 3}).
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& x_shape,
                             const Conv2dGeometry& geometry);
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dGeometry& geometry);
struct MaxPool2dResult {
  Tensor out, indices;  // indices: i64, flat h * W + w of each maximum in its plane
};
MaxPool2dResult max_pool2d(const Tensor& x, const Pool2dGeometry& geometry);
Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& x_shape,
                           const Pool2dGeometry& geometry);
Tensor avg_pool2d(const Tensor& x, const Pool2dGeometry& geometry);
Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& x_shape, const Pool2dGeometry& geometry);

// ---- host helpers ----
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);
double max_abs_diff(const Tensor& a, const Tensor& b);
bool all_finite(const Tensor& a);

}  // namespace zt::raw
