// CPU cross-entropy over contiguous logits (N, C) with integer targets (N), forward and backward.
// loss[n] = logsumexp(logits[n]) - logits[n, target[n]], computed in float (double for f64) and
// stored as f32 (f64 for f64 logits); rows whose target is ignore_index get loss 0 and zero
// gradient.
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"

namespace zt::cpu {
namespace {

struct Rows {
  int64_t n, c;
};

Rows check_logits(const Tensor& logits, const char* op) {
  ZT_CHECK(logits.dim() == 2 && logits.is_contiguous(), op, ": logits must be contiguous (N, C), found ",
           logits.str(), " with strides ", shape_str(logits.strides()));
  return {logits.size(0), logits.size(1)};
}

// The targets as i64, validated: each in [0, C) or equal to ignore_index. Checked before the
// parallel loop because an exception must not leave an OpenMP region.
std::vector<int64_t> read_targets(const Tensor& target, Rows rs, int64_t ignore_index, const char* op) {
  ZT_CHECK(target.dim() == 1 && target.size(0) == rs.n, op, ": target must be (", rs.n,
           ") to match the logits rows, found ", target.str());
  std::vector<int64_t> t(size_t(rs.n));
  ZT_DISPATCH_INDEX(target.dtype(), op, [&]<typename I>() {
    const I* p = typed_data<I>(target);
    const int64_t s = target.stride(0);
    for (int64_t n = 0; n < rs.n; ++n) t[size_t(n)] = int64_t(p[n * s]);
  });
  for (int64_t n = 0; n < rs.n; ++n) {
    const int64_t v = t[size_t(n)];
    ZT_CHECK(v == ignore_index || (v >= 0 && v < rs.c), op, ": target[", n, "] = ", v,
             " is out of range for ", rs.c, " classes (expected 0 <= target < ", rs.c,
             " or ignore_index ", ignore_index, ")");
  }
  return t;
}

// Loss and its gradient are f32, or f64 for f64 logits (so f64 gradchecks keep full precision).
bool check_loss_dtype(const Tensor& logits, const Tensor& loss, const char* op, const char* what) {
  const DType expected = logits.dtype() == DType::f64 ? DType::f64 : DType::f32;
  ZT_CHECK(loss.dtype() == expected, op, ": ", what, " must be ", dtype_name(expected), " for ",
           dtype_name(logits.dtype()), " logits, found ", loss.str());
  return expected == DType::f64;
}

template <typename A, typename T>
A row_max(const T* x, int64_t C) {
  A mx = -std::numeric_limits<A>::infinity();
  for (int64_t c = 0; c < C; ++c) mx = std::max(mx, A(x[c]));
  return mx;
}

template <typename A, typename T>
A row_sum_exp(const T* x, int64_t C, A mx) {
  A sum = 0;
  for (int64_t c = 0; c < C; ++c) sum += std::exp(A(x[c]) - mx);
  return sum;
}

}  // namespace

void CpuBackend::cross_entropy(const Tensor& loss, const Tensor& logits, const Tensor& target,
                               int64_t ignore_index) {
  const Rows rs = check_logits(logits, "cross_entropy");
  ZT_CHECK(loss.dim() == 1 && loss.size(0) == rs.n && loss.is_contiguous(),
           "cross_entropy: loss must be a contiguous (", rs.n, ") tensor, found ", loss.str());
  const bool out64 = check_loss_dtype(logits, loss, "cross_entropy", "loss");
  const std::vector<int64_t> t = read_targets(target, rs, ignore_index, "cross_entropy");
  void* out = loss.raw_data();  // (N) f32 or f64
  auto store = [&](int64_t n, double v) {
    if (out64) static_cast<double*>(out)[n] = v;
    else static_cast<float*>(out)[n] = float(v);
  };
  ZT_DISPATCH_FLOATING(logits.dtype(), "cross_entropy", [&]<typename T>() {
    using A = compute_t<T>;
    const T* x = typed_data<T>(logits);  // (N, C)
    parallel_for(rs.n, 2 * rs.c, [&](int64_t n) {
      const int64_t tn = t[size_t(n)];
      if (tn == ignore_index) {
        store(n, 0.0);
        return;
      }
      const T* xr = x + n * rs.c;
      const A mx = row_max<A>(xr, rs.c);
      const A lse = mx + std::log(row_sum_exp<A>(xr, rs.c, mx));
      store(n, double(lse - A(xr[tn])));
    });
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                                        const Tensor& logits, const Tensor& target,
                                        int64_t ignore_index) {
  const Rows rs = check_logits(logits, "cross_entropy_backward");
  ZT_CHECK(grad_logits.shape() == logits.shape() && grad_logits.dtype() == logits.dtype() &&
               grad_logits.is_contiguous(),
           "cross_entropy_backward: grad_logits must be contiguous like logits ", logits.str(),
           ", found ", grad_logits.str());
  // grad_loss may be a broadcast view (stride 0) of a scalar gradient from a mean reduction.
  ZT_CHECK(grad_loss.dim() == 1 && grad_loss.size(0) == rs.n,
           "cross_entropy_backward: grad_loss must be (", rs.n, "), found ", grad_loss.str());
  const bool gl64 = check_loss_dtype(logits, grad_loss, "cross_entropy_backward", "grad_loss");
  const std::vector<int64_t> t = read_targets(target, rs, ignore_index, "cross_entropy_backward");
  const void* gl = grad_loss.raw_data();  // (N) f32 or f64, stride gl_stride
  const int64_t gl_stride = grad_loss.stride(0);
  ZT_DISPATCH_FLOATING(logits.dtype(), "cross_entropy_backward", [&]<typename T>() {
    using A = compute_t<T>;
    const T* x = typed_data<T>(logits);    // (N, C)
    T* g = typed_data<T>(grad_logits);     // (N, C)
    parallel_for(rs.n, 3 * rs.c, [&](int64_t n) {
      const int64_t tn = t[size_t(n)];
      T* gr = g + n * rs.c;
      if (tn == ignore_index) {
        for (int64_t c = 0; c < rs.c; ++c) gr[c] = T(A(0));
        return;
      }
      const T* xr = x + n * rs.c;
      const A mx = row_max<A>(xr, rs.c);
      const A gn = gl64 ? A(static_cast<const double*>(gl)[n * gl_stride])
                        : A(static_cast<const float*>(gl)[n * gl_stride]);
      const A scale = gn / row_sum_exp<A>(xr, rs.c, mx);
      for (int64_t c = 0; c < rs.c; ++c) gr[c] = T(std::exp(A(xr[c]) - mx) * scale);
      gr[tn] = T(std::exp(A(xr[tn]) - mx) * scale - gn);
    });
  });
}

}  // namespace zt::cpu
