// cuDNN's fused attention (Note [cuDNN attention] in cuda/attention_cudnn.cpp) against
// zerotrain's own tensor-core kernels at the shapes GPT training runs: q, k and v as views of
// one packed (B, T, 3, H, D) projection, outputs and gradients as (B, T, H, D) memory. The
// parity suite compares both paths with the CPU at small shapes; this one checks that cuDNN
// really runs (on sm_90, the machine the speed is claimed for) and agrees at T = 1024.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/storage.h"
#include "cuda/attention_cudnn.h"
#include "tests/cuda/parity_util.h"

namespace zt::test {
namespace {

struct Heads {
  Tensor q, k, v;
};

// q, k, v (B, H, T, D) over one (B, T, 3, H, D) tensor of random values on the GPU.
Heads packed_heads(int64_t B, int64_t H, int64_t T, int64_t D, DType dt, uint64_t seed) {
  const Tensor qkv = mirror_on_gpu(random_host({B, T, 3, H, D}, dt, -1.0, 1.0, seed));
  const Shape shape{B, H, T, D};
  const std::vector<int64_t> strides{T * 3 * H * D, D, 3 * H * D, 1};
  auto view = [&](int64_t part) { return Tensor::view_of(qkv.storage(), shape, strides, part * H * D, dt); };
  return {view(0), view(1), view(2)};
}

// A (B, H, T, D) view of fresh (B, T, H, D) memory on the GPU.
Tensor heads_output(int64_t B, int64_t H, int64_t T, int64_t D, DType dt) {
  const Tensor mem = Tensor::empty({B, T, H, D}, TensorOptions(dt, Device::cuda(0)));
  return Tensor::view_of(mem.storage(), {B, H, T, D}, {T * H * D, D, H * D, 1}, 0, dt);
}

struct Results {
  Tensor out, lse, gq, gk, gv;
};

Results run_attention(const Heads& in, const Tensor& grad_out, bool causal) {
  const int64_t B = in.q.size(0), H = in.q.size(1), T = in.q.size(2), D = in.q.size(3);
  const DType dt = in.q.dtype();
  const double scale = 1.0 / std::sqrt(double(D));
  Results r{heads_output(B, H, T, D, dt), Tensor::empty({B, H, T}, TensorOptions(DType::f32, Device::cuda(0))),
            heads_output(B, H, T, D, dt), heads_output(B, H, T, D, dt), heads_output(B, H, T, D, dt)};
  gpu_be().attention_forward(r.out, r.lse, in.q, in.k, in.v, scale, causal);
  gpu_be().attention_backward(r.gq, r.gk, r.gv, grad_out, in.q, in.k, in.v, r.out, r.lse, scale, causal);
  cuda::synchronize(0);
  return r;
}

// cuDNN's result against our kernels' with the parity suite's bound (same_values: our kernels
// stand where the CPU does there, so its "cpu" in a failure message means zerotrain's kernels).
void check_close(const std::string& what, const Tensor& cudnn, const Tensor& own, double tol) {
  Pair p;
  p.side[0] = own;
  p.side[1] = cudnn;
  CHECK(same_values(what, p, tol));
}

}  // namespace

TEST_CASE("cuDNN fused attention runs GPT shapes and matches zerotrain's kernels, forward and backward") {
  ZT_REQUIRE_GPU();
  const bool was_enabled = cuda::cudnn_attention_enabled();
  const int major = cuda::compute_capability_major(0);
  const int64_t B = 2, H = 4, T = 1024, D = 64;
  for (DType dt : {DType::bf16, DType::f16})
    for (bool causal : {true, false}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(causal);
      const Heads in = packed_heads(B, H, T, D, dt, 801);
      const Tensor grad_out = heads_output(B, H, T, D, dt);
      gpu_be().copy(grad_out, mirror_on_gpu(random_host({B, H, T, D}, dt, -1.0, 1.0, 802)));
      cuda::set_cudnn_attention(true);
      const cuda::CudnnAttentionCounts before = cuda::cudnn_attention_counts();
      const Results fused = run_attention(in, grad_out, causal);
      const cuda::CudnnAttentionCounts after = cuda::cudnn_attention_counts();
      cuda::set_cudnn_attention(false);
      const Results own = run_attention(in, grad_out, causal);
      const bool ran_cudnn = after.forward == before.forward + 1 && after.backward == before.backward + 1;
      if (major >= 9) {
        CHECK(ran_cudnn);  // Hopper: where the fused attention's speed is measured
      } else if (!ran_cudnn) {
        MESSAGE("cuDNN declined the attention on this GPU (sm_" << major << "x): compared our kernels with themselves");
      }
      const double tol = dt == DType::bf16 ? 3e-2 : 1e-2;
      check_close("out", fused.out, own.out, tol);
      check_close("lse", fused.lse, own.lse, 1e-4);
      check_close("grad_q", fused.gq, own.gq, tol);
      check_close("grad_k", fused.gk, own.gk, tol);
      check_close("grad_v", fused.gv, own.gv, tol);
    }
  cuda::set_cudnn_attention(was_enabled);
}

}  // namespace zt::test
