// The attention ops' contract (core/ops.def: attention_forward, attention_backward), checked once
// for every backend: the kernels may be called directly (the parity tests do), so each one
// validates its tensors with these functions.
//
// Note [Attention layout]
// q, k, v, out and their gradients are logically (B, H, T, D) with unit stride in D and any
// non-negative strides for B, H and T. The qkv projection of nn::CausalSelfAttention yields
// (B, T, 3, H, D) memory, whose q/k/v slices are such views, so nothing is copied on the way in.
// The raw ops (core/ops.h) allocate out and the gradients as (B, T, H, D) memory viewed as
// (B, H, T, D): merging the heads back into (B, T, H * D) for the output projection (and the
// qkv gradient) is then a view too. Outputs must not overlap themselves, each other or an
// input. lse (B, H, T) is contiguous, f32 (f64 for f64 inputs): the log of each row's softmax
// denominator, log(sum_j exp(scale * q_i . k_j)), which the backward uses to rebuild the weights.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace zt {

// The largest head dimension D the attention kernels take (GPT-2: 64; Llama-class: 128).
inline constexpr int64_t kMaxAttentionHeadDim = 128;

struct AttentionDims {
  int64_t batch, heads, seq, head_dim;  // B, H, T, D
};

// The dtype of lse for inputs of dtype t: f64 for f64 (gradchecks keep full precision), f32
// otherwise.
DType attention_lse_dtype(DType t);

// q, k, v: (B, H, T, D) of one floating dtype, 1 <= D <= kMaxAttentionHeadDim, unit stride in
// D, non-negative strides; scale finite. What the raw op checks before allocating outputs.
AttentionDims check_attention_inputs(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                                     double scale);

// The inputs as above, out (B, H, T, D) and lse (B, H, T) as in Note [Attention layout].
AttentionDims check_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                                      const Tensor& v, double scale);

// grad_q/grad_k/grad_v (outputs) and grad_out (B, H, T, D); q, k, v, out and lse as the forward
// produced them.
AttentionDims check_attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                                       const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& out, const Tensor& lse, double scale);

}  // namespace zt
