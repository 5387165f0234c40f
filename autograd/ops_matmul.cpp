// Differentiable matrix products: matmul (with transpose flags, batched, or a batch of rows
// times one matrix), linear and gelu_mlp (each optionally adding a residual in its last GEMM).
// Backward uses the transpose flags of raw::matmul: no copies.
#include "autograd/ops_common.h"

namespace zt {

using autograd::Grads;
using autograd::Needs;

namespace {

// The gradient of op(b) (K, N) shared by every batch of a (..., M, K): the batches are folded
// into rows, gb = a_rows^T @ g_rows, with rows (R, K) and g_rows (R, N).
Tensor grad_of_shared_rhs(const Tensor& a, const Tensor& g, bool trans_a, bool trans_b) {
  Tensor a_rows = trans_a ? raw::contiguous(raw::transpose(a, -2, -1)) : a;  // (..., M, K)
  Tensor a2 = raw::reshape(a_rows, {-1, a_rows.size(-1)});                   // (R, K)
  Tensor g2 = raw::reshape(g, {-1, g.size(-1)});                             // (R, N)
  return trans_b ? raw::matmul(g2, a2, true, false) : raw::matmul(a2, g2, true, false);
}

}  // namespace

// With A = op(a), B = op(b) and out = A @ B: dA = g @ B^T and dB = A^T @ g; the formulas below
// express them in a and b directly, so that no operand is transposed in memory.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  Tensor out = raw::matmul(a, b, trans_a, trans_b);
  if (!autograd::needs_graph(a, b)) return out;
  Tensor keep_a = autograd::save_if(requires_grad(b), a);
  Tensor keep_b = autograd::save_if(requires_grad(a), b);
  bool shared_rhs = a.dim() > 2 && b.dim() == 2;
  return autograd::make_node(
      "matmul", std::move(out), {&a, &b},
      [keep_a, keep_b, trans_a, trans_b, shared_rhs](const Tensor& g, Needs need) -> Grads {
        Grads grads(2);
        if (need[0]) {
          if (!trans_a) {
            grads[0] = raw::matmul(g, keep_b, false, !trans_b);
          } else if (shared_rhs) {  // b (K, N) cannot multiply a batched g^T: transpose dA
            grads[0] = raw::transpose(raw::matmul(g, keep_b, false, !trans_b), -2, -1);
          } else {
            grads[0] = raw::matmul(keep_b, g, trans_b, true);
          }
        }
        if (need[1]) {
          if (shared_rhs) {
            grads[1] = grad_of_shared_rhs(keep_a, g, trans_a, trans_b);
          } else if (!trans_b) {
            grads[1] = raw::matmul(keep_a, g, !trans_a, false);
          } else {
            grads[1] = raw::matmul(g, keep_a, true, trans_a);
          }
        }
        return grads;
      });
}

namespace {

// x W^T + b through raw::linear: the bias added in the GEMM's epilogue (cuBLASLt), or written
// first with the GEMM accumulating onto it, never a separate add pass over the output; the sum is
// rounded once. Arguments the fused form cannot take go the plain way, whose checks name what is
// wrong.
Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const bool fusable = bias.defined() && bias.dim() == 1 && weight.dim() == 2 && x.dim() >= 1 &&
                       bias.size(0) == weight.size(0) && x.size(-1) == weight.size(1) &&
                       bias.dtype() == x.dtype() && weight.dtype() == x.dtype() && bias.device() == x.device() &&
                       weight.device() == x.device();
  if (!fusable) {
    Tensor out = raw::matmul(x, weight, false, true);  // (..., out)
    if (bias.defined()) raw::binary_(BinaryOp::add, out, bias);
    return out;
  }
  return raw::linear(x, weight, bias);
}

// Whether residual can be the C operand of the GEMM that computes x W^T (+ b): of its result's
// shape (..., N), dtype and device. Anything else is added apart (broadcasting as add does).
bool residual_fits(const Tensor& residual, const Tensor& x, const Tensor& weight) {
  if (!x.defined() || !weight.defined() || x.dim() < 1 || weight.dim() != 2) return false;
  Shape shape = x.shape();
  shape.back() = weight.size(0);
  return residual.shape() == shape && residual.dtype() == x.dtype() && residual.device() == x.device();
}

}  // namespace

// The residual's gradient is g itself: out = ... + residual.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual) {
  Tensor out;
  if (residual.defined()) {
    // The fused form needs the bias in the epilogue too (linear_forward's condition).
    const bool fused = bias.defined() && residual_fits(residual, x, weight);
    if (!fused) return add(linear(x, weight, bias), residual);
    out = raw::linear(x, weight, bias, residual);  // its checks name any other mismatch
  } else {
    out = linear_forward(x, weight, bias);
  }
  if (!autograd::needs_graph(x, weight, bias, residual)) return out;
  Tensor keep_x = autograd::save_if(requires_grad(weight), x);
  Tensor keep_w = autograd::save_if(requires_grad(x), weight);
  const bool bias_1d = bias.defined() && bias.dim() == 1 && bias.dtype() == x.dtype();
  return autograd::make_node(
      "linear", std::move(out), {&x, &weight, &bias, &residual},
      [keep_x, keep_w, bias_1d, bias_shape = bias.defined() ? bias.shape() : Shape{}](const Tensor& g,
                                                                                     Needs need) -> Grads {
        Grads grads(4);
        if (need[3]) grads[3] = g;
        if (need[0]) grads[0] = raw::matmul(g, keep_w);  // (..., out) @ (out, in)
        if (need[1] && need[2] && bias_1d) {  // both from one read of g
          raw::LinearGrads wb = raw::linear_weight_grads(g, keep_x);
          grads[1] = wb.weight;
          grads[2] = wb.bias;
          return grads;
        }
        if (need[1]) {
          Tensor g2 = raw::reshape(g, {-1, g.size(-1)});            // (R, out)
          Tensor x2 = raw::reshape(keep_x, {-1, keep_x.size(-1)});  // (R, in)
          grads[1] = raw::matmul(g2, x2, true, false);              // (out, in)
        }
        if (need[2]) grads[2] = raw::sum_to(g, bias_shape);
        return grads;
      });
}

Tensor gelu_mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2,
                const Tensor& residual) {
  if (residual.defined() && !residual_fits(residual, x, w2)) return add(gelu_mlp(x, w1, b1, w2, b2), residual);
  raw::LinearGelu hidden = raw::linear_gelu(x, w1, b1);  // pre = x w1^T + b1, out = gelu_tanh(pre)
  Tensor out = raw::linear(hidden.out, w2, b2, residual);
  if (!autograd::needs_graph(x, w1, b1, w2, b2, residual)) return out;
  return autograd::make_node(
      "gelu_mlp", std::move(out), {&x, &w1, &b1, &w2, &b2, &residual},
      [x = autograd::save_for_backward(x), w1 = autograd::save_for_backward(w1),
       w2 = autograd::save_for_backward(w2), pre = hidden.pre, h = hidden.out](const Tensor& g, Needs need) -> Grads {
        Grads grads(6);
        if (need[5]) grads[5] = g;  // out = ... + residual
        if (need[3] || need[4]) {
          raw::LinearGrads second = raw::linear_weight_grads(g, h);
          if (need[3]) grads[3] = second.weight;
          if (need[4]) grads[4] = second.bias;
        }
        if (need[0] || need[1] || need[2]) {
          raw::GeluLinearGrads first = raw::gelu_linear_input_grads(g, w2, pre);  // d pre and d b1
          if (need[0]) grads[0] = raw::matmul(first.pre, w1);                    // (..., 4C) @ (4C, C)
          if (need[1]) {
            grads[1] = raw::matmul(raw::reshape(first.pre, {-1, first.pre.size(-1)}),
                                   raw::reshape(x, {-1, x.size(-1)}), true, false);
          }
          if (need[2]) grads[2] = first.bias;
        }
        return grads;
      });
}

}  // namespace zt
