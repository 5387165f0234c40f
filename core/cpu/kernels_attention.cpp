// CPU scaled dot-product attention (core/ops.def: attention_forward, attention_backward): the
// reference the CUDA kernels are checked against. Each query row gets an exact softmax over its
// scores (at most T of them, in a per-thread buffer: never a (T, T) matrix); arithmetic in f32
// for f16/bf16/f32 and f64 for f64. Layouts: Note [Attention layout] in core/attention_checks.h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/attention_checks.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"

namespace zt::cpu {
namespace {

// A (B, H, T, D) operand: row t of head (b, h) starts at row(b, h, t); D has unit stride.
template <typename T>
struct Heads {
  T* base;
  int64_t sb, sh, st;
  explicit Heads(const Tensor& t) : base(typed_data<T>(t)), sb(t.stride(0)), sh(t.stride(1)), st(t.stride(2)) {}
  T* row(int64_t b, int64_t h, int64_t t) const { return base + b * sb + h * sh + t * st; }
};

template <typename A, typename T>
A dot(const A* x, const T* y, int64_t n) {
  A acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t d = 0; d < n; ++d) acc += x[d] * A(y[d]);
  return acc;
}

template <typename A, typename T>
void axpy(A* y, A alpha, const T* x, int64_t n) {  // y += alpha * x
#pragma omp simd
  for (int64_t d = 0; d < n; ++d) y[d] += alpha * A(x[d]);
}

template <typename A, typename T>
void load_row(A* dst, const T* src, int64_t n) {
  for (int64_t d = 0; d < n; ++d) dst[d] = A(src[d]);
}

template <typename T, typename A>
void store_row(T* dst, const A* src, A scale, int64_t n) {
  for (int64_t d = 0; d < n; ++d) dst[d] = T(src[d] * scale);
}

// Keys query row i attends to: j < keys.
int64_t key_count(int64_t i, int64_t seq, bool causal) { return causal ? i + 1 : seq; }

// Rows of query blocks run in parallel; each row: scores, max, exp, weighted sum of V rows.
template <typename T>
void forward_impl(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                  const AttentionDims& dims, double scale, bool causal) {
  using A = compute_t<T>;
  constexpr int64_t kRowsPerItem = 16;
  const int64_t H = dims.heads, seq = dims.seq, D = dims.head_dim;
  const Heads<T> Q(q), K(k), V(v), O(out);
  A* L = typed_data<A>(lse);  // (B, H, T)
  const int64_t blocks = (seq + kRowsPerItem - 1) / kRowsPerItem;
  parallel_for(dims.batch * H * blocks, kRowsPerItem * seq * D, [&](int64_t item) {
    const int64_t bh = item / blocks, b = bh / H, h = bh % H, i0 = (item % blocks) * kRowsPerItem;
    std::vector<A> scores(size_t(seq), A(0)), qrow(size_t(D), A(0)), acc(size_t(D), A(0));
    for (int64_t i = i0; i < std::min(i0 + kRowsPerItem, seq); ++i) {
      const int64_t keys = key_count(i, seq, causal);
      load_row(qrow.data(), Q.row(b, h, i), D);
      A mx = -std::numeric_limits<A>::infinity();
      for (int64_t j = 0; j < keys; ++j) {
        scores[size_t(j)] = A(scale) * dot(qrow.data(), K.row(b, h, j), D);
        mx = std::max(mx, scores[size_t(j)]);
      }
      std::fill(acc.begin(), acc.end(), A(0));
      A sum = 0;
      for (int64_t j = 0; j < keys; ++j) {
        const A p = std::exp(scores[size_t(j)] - mx);
        sum += p;
        axpy(acc.data(), p, V.row(b, h, j), D);
      }
      store_row(O.row(b, h, i), acc.data(), A(1) / sum, D);
      L[bh * seq + i] = mx + std::log(sum);
    }
  });
}

// One head per task (its dK, dV sum over query rows): for each query row i and key j <= i,
//   p = exp(scale q_i.k_j - lse_i), dp = dO_i.v_j, ds = p (dp - dO_i.out_i),
//   dq_i += scale ds k_j, dk_j += scale ds q_i, dv_j += p dO_i.
template <typename T>
void backward_impl(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v, const Tensor& grad_out,
                   const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                   const AttentionDims& dims, double scale, bool causal) {
  using A = compute_t<T>;
  const int64_t H = dims.heads, seq = dims.seq, D = dims.head_dim;
  const Heads<T> Q(q), K(k), V(v), O(out), dO(grad_out), dQ(grad_q), dK(grad_k), dV(grad_v);
  const A* L = typed_data<A>(lse);  // (B, H, T)
  const A s = A(scale);
  parallel_for(dims.batch * H, seq * seq * D, [&](int64_t bh) {
    const int64_t b = bh / H, h = bh % H;
    std::vector<A> dk(size_t(seq * D), A(0)), dv(size_t(seq * D), A(0));  // (T, D) accumulators
    std::vector<A> qrow(size_t(D), A(0)), grow(size_t(D), A(0)), dq(size_t(D), A(0));
    for (int64_t i = 0; i < seq; ++i) {
      load_row(qrow.data(), Q.row(b, h, i), D);
      load_row(grow.data(), dO.row(b, h, i), D);
      const A delta = dot(grow.data(), O.row(b, h, i), D);  // sum_j p_ij dp_ij
      const A row_lse = L[bh * seq + i];
      std::fill(dq.begin(), dq.end(), A(0));
      for (int64_t j = 0; j < key_count(i, seq, causal); ++j) {
        const A p = std::exp(s * dot(qrow.data(), K.row(b, h, j), D) - row_lse);
        const A ds = p * (dot(grow.data(), V.row(b, h, j), D) - delta);
        axpy(dq.data(), s * ds, K.row(b, h, j), D);
        axpy(dk.data() + j * D, s * ds, qrow.data(), D);
        axpy(dv.data() + j * D, p, grow.data(), D);
      }
      store_row(dQ.row(b, h, i), dq.data(), A(1), D);
    }
    for (int64_t j = 0; j < seq; ++j) {
      store_row(dK.row(b, h, j), dk.data() + j * D, A(1), D);
      store_row(dV.row(b, h, j), dv.data() + j * D, A(1), D);
    }
  });
}

}  // namespace

void CpuBackend::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                                   const Tensor& v, double scale, bool causal) {
  const AttentionDims dims = check_attention_forward(out, lse, q, k, v, scale);
  if (dims.batch * dims.heads * dims.seq == 0) return;
  ZT_DISPATCH_FLOATING(q.dtype(), "attention_forward", [&]<typename T>() {
    forward_impl<T>(out, lse, q, k, v, dims, scale, causal);
  });
}

void CpuBackend::attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                                    const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& out, const Tensor& lse, double scale, bool causal) {
  const AttentionDims dims = check_attention_backward(grad_q, grad_k, grad_v, grad_out, q, k, v, out, lse, scale);
  if (dims.batch * dims.heads * dims.seq == 0) return;
  ZT_DISPATCH_FLOATING(q.dtype(), "attention_backward", [&]<typename T>() {
    backward_impl<T>(grad_q, grad_k, grad_v, grad_out, q, k, v, out, lse, dims, scale, causal);
  });
}

}  // namespace zt::cpu
