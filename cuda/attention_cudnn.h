// Scaled dot-product attention through cuDNN's fused flash-attention engines (the graph API), for
// f16/bf16 heads on sm_80+: the CUDA backend's attention ops try it first and fall back to
// zerotrain's own kernels (cuda/kernels_attention.cu) when it declines. Note [cuDNN attention]
// in attention_cudnn.cpp.
#pragma once
#include "core/tensor.h"

namespace zt::cuda {

// out (B, H, T, D) and lse (B, H, T) from q, k, v as CudaBackend::attention_forward; false, with
// nothing queued, when cuDNN has no engine for these tensors (or is switched off).
bool cudnn_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                             double scale, bool causal);

// grad_q, grad_k, grad_v as CudaBackend::attention_backward; false, with nothing queued, as above.
bool cudnn_attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                              const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& out, const Tensor& lse, double scale, bool causal);

// Whether the attention ops may use cuDNN: on unless the environment sets ZT_CUDNN_ATTENTION=0
// (zerotrain's kernels are deterministic; cuDNN's backward sums dQ with atomics).
void set_cudnn_attention(bool enabled);
bool cudnn_attention_enabled();

// Calls cuDNN ran since the start (forward, backward): what tests and reports check.
struct CudnnAttentionCounts {
  int64_t forward = 0, backward = 0;
};
CudnnAttentionCounts cudnn_attention_counts();

}  // namespace zt::cuda
