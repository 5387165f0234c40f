// Attention argument checks (core/attention_checks.h).
#include "core/attention_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <utility>
#include <vector>

#include "core/ops_util.h"

namespace zt {
namespace {

using NamedTensor = std::pair<const char*, const Tensor*>;

// A (B, H, T, D) operand: rank, shape, dtype, unit stride in D, no negative strides.
void check_heads(const char* op, const char* what, const Tensor& t, const Tensor& q) {
  ZT_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
  ZT_CHECK(t.dim() == 4, op, ": ", what, " must be 4-D (B, H, T, D), found shape ", shape_str(t.shape()));
  ZT_CHECK(t.shape() == q.shape(), op, ": ", what, " must have q's shape ", shape_str(q.shape()), ", found ",
           shape_str(t.shape()));
  ZT_CHECK(t.dtype() == q.dtype(), op, ": ", what, " must have q's dtype ", dtype_name(q.dtype()), ", found ",
           dtype_name(t.dtype()));
  ZT_CHECK(t.stride(3) == 1 || t.size(3) == 1, op, ": ", what,
           " must have unit stride in its last dim (D), found strides ", shape_str(t.strides()));
  for (int64_t d = 0; d < 4; ++d)
    ZT_CHECK(t.stride(d) >= 0, op, ": ", what, " has a negative stride: ", shape_str(t.strides()));
}

// No two elements of t share memory: with the dims sorted by stride, each stride is past the
// last element the smaller dims reach (sufficient, and true of every permuted dense layout).
bool self_disjoint(const Tensor& t) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of dims with size > 1
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) > 1) dims.emplace_back(t.stride(d), t.size(d));
  std::sort(dims.begin(), dims.end());
  int64_t reach = 0;  // the largest offset the dims so far reach
  for (const auto& [stride, size] : dims) {
    if (stride <= reach) return false;
    reach += stride * (size - 1);
  }
  return true;
}

// Whether two views of one storage with the same shape and strides touch disjoint elements
// because they interleave: for some stride R that every larger stride is a multiple of, the dims
// of smaller strides reach E elements, and the offsets differ by d with E <= d mod R <= R - E.
// That is the q, k and v slices of one packed (B, T, 3C) buffer (R = 3C, E = C), as the packed
// attention's gradient is (autograd: packed_qkv_attention).
bool interleaved_disjoint(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.strides() != b.strides()) return false;
  const int64_t delta = std::abs(a.offset() - b.offset());
  for (int64_t r = 0; r < a.dim(); ++r) {
    const int64_t period = a.stride(r);
    if (a.size(r) <= 1 || period <= 0) continue;
    int64_t reach = 1;  // elements the dims of smaller stride span
    bool periodic = true;
    for (int64_t d = 0; d < a.dim(); ++d) {
      if (a.size(d) <= 1 || d == r) continue;
      if (a.stride(d) < period) {
        reach += (a.size(d) - 1) * a.stride(d);
      } else if (a.stride(d) % period != 0) {
        periodic = false;
      }
    }
    const int64_t phase = delta % period;
    if (periodic && phase >= reach && phase <= period - reach) return true;
  }
  return false;
}

// Outputs may overlap neither themselves, nor each other (unless they interleave, above), nor
// an input.
void check_outputs_disjoint(const char* op, std::initializer_list<NamedTensor> outputs,
                            std::initializer_list<NamedTensor> inputs) {
  for (const auto& [name, t] : outputs) {
    ZT_CHECK(self_disjoint(*t), op, ": output ", name, " has overlapping elements (strides ",
             shape_str(t->strides()), " for shape ", shape_str(t->shape()), ")");
    for (const auto& [other_name, other] : outputs)
      ZT_CHECK(t == other || !raw::detail::may_overlap(*t, *other) || interleaved_disjoint(*t, *other), op,
               ": outputs ", name, " and ", other_name,
               " overlap in memory");
    for (const auto& [in_name, in] : inputs)
      ZT_CHECK(!raw::detail::may_overlap(*t, *in), op, ": output ", name, " overlaps input ", in_name);
  }
}

void check_lse(const char* op, const Tensor& lse, const AttentionDims& d, DType input) {
  const Shape want{d.batch, d.heads, d.seq};
  ZT_CHECK(lse.defined(), op, ": lse is an undefined tensor");
  ZT_CHECK(lse.shape() == want && lse.is_contiguous() && lse.dtype() == attention_lse_dtype(input), op,
           ": lse must be a contiguous ", dtype_name(attention_lse_dtype(input)), " tensor of shape ",
           shape_str(want), ", found ", lse.str());
}

}  // namespace

DType attention_lse_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

AttentionDims check_attention_inputs(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                                     double scale) {
  ZT_CHECK(q.defined(), op, ": q is an undefined tensor");
  ZT_CHECK(is_floating(q.dtype()), op, ": expected a floating dtype (f32, f64, f16, bf16), found ",
           dtype_name(q.dtype()));
  check_heads(op, "q", q, q);
  check_heads(op, "k", k, q);
  check_heads(op, "v", v, q);
  const AttentionDims d{q.size(0), q.size(1), q.size(2), q.size(3)};
  ZT_CHECK(d.head_dim >= 1 && d.head_dim <= kMaxAttentionHeadDim, op, ": head dim D must be in [1, ",
           kMaxAttentionHeadDim, "], found ", d.head_dim, " in shape ", shape_str(q.shape()));
  ZT_CHECK(std::isfinite(scale), op, ": scale must be finite, found ", scale);
  return d;
}

AttentionDims check_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                                      const Tensor& v, double scale) {
  const char* op = "attention_forward";
  const AttentionDims d = check_attention_inputs(op, q, k, v, scale);
  check_heads(op, "out", out, q);
  check_lse(op, lse, d, q.dtype());
  check_outputs_disjoint(op, {{"out", &out}, {"lse", &lse}}, {{"q", &q}, {"k", &k}, {"v", &v}});
  return d;
}

AttentionDims check_attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                                       const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& out, const Tensor& lse, double scale) {
  const char* op = "attention_backward";
  const AttentionDims d = check_attention_inputs(op, q, k, v, scale);
  check_heads(op, "out", out, q);
  check_heads(op, "grad_out", grad_out, q);
  check_heads(op, "grad_q", grad_q, q);
  check_heads(op, "grad_k", grad_k, q);
  check_heads(op, "grad_v", grad_v, q);
  check_lse(op, lse, d, q.dtype());
  check_outputs_disjoint(op, {{"grad_q", &grad_q}, {"grad_k", &grad_k}, {"grad_v", &grad_v}},
                         {{"grad_out", &grad_out}, {"q", &q}, {"k", &k}, {"v", &v}, {"out", &out}, {"lse", &lse}});
  return d;
}

}  // namespace zt
