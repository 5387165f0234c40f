// CPU layer norm over the last dim of contiguous (N, C) data, forward and backward.
// Forward: y = (x - mean) * rstd * w + b, saving mean and rstd (N) for the backward.
// Statistics are computed in float (double for f64) and stored in the dtype of the mean/rstd
// tensors: f32 per the op contract, f64 accepted too (keeps f64 gradchecks exact).
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"

namespace zt::cpu {
namespace {

struct Rows {
  int64_t n, c;  // x viewed as (N, C)
};

Rows check_rows(const Tensor& x, const char* op) {
  ZT_CHECK(x.dim() >= 1 && x.is_contiguous(), op, ": x must be contiguous with at least 1 dim, found ",
           x.str(), " with strides ", shape_str(x.strides()));
  const int64_t c = x.size(-1);
  return {c == 0 ? 0 : x.numel() / c, c};
}

void check_like(const Tensor& t, const Tensor& x, const Shape& shape, const char* op, const char* what) {
  ZT_CHECK(t.shape() == shape && t.dtype() == x.dtype() && t.is_contiguous(), op, ": ", what,
           " must be contiguous of shape ", shape_str(shape), " and dtype ", dtype_name(x.dtype()),
           ", found ", t.str());
}

void check_stats(const Tensor& t, int64_t n, const char* op, const char* what) {
  ZT_CHECK(t.numel() == n && t.is_contiguous() && (t.dtype() == DType::f32 || t.dtype() == DType::f64),
           op, ": ", what, " must be a contiguous f32 (or f64) tensor of ", n, " elements, found ", t.str());
}

template <typename T, typename S>
void layer_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, double eps, Rows rs) {
  using A = compute_t<T>;
  const T* xp = typed_data<T>(x);                                // (N, C)
  T* yp = typed_data<T>(y);                                      // (N, C)
  const T* wp = weight.defined() ? typed_data<T>(weight) : nullptr;  // (C)
  const T* bp = bias.defined() ? typed_data<T>(bias) : nullptr;      // (C)
  S* mp = typed_data<S>(mean);                                   // (N)
  S* rp = typed_data<S>(rstd);                                   // (N)
  const int64_t C = rs.c;
  parallel_for(rs.n, 6 * C, [&](int64_t r) {
    const T* xr = xp + r * C;
    T* yr = yp + r * C;
    A sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += A(xr[c]);
    const A mu = sum / A(C);
    A var = 0;  // two passes: no cancellation when |mean| >> std
    for (int64_t c = 0; c < C; ++c) {
      const A d = A(xr[c]) - mu;
      var += d * d;
    }
    const A inv = A(1) / std::sqrt(var / A(C) + A(eps));
    for (int64_t c = 0; c < C; ++c) {
      A v = (A(xr[c]) - mu) * inv;
      if (wp) v *= A(wp[c]);
      if (bp) v += A(bp[c]);
      yr[c] = T(v);
    }
    mp[r] = S(mu);
    rp[r] = S(inv);
  });
}

// grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = grad_y * w; grad_w and grad_b
// sum grad_y * xhat and grad_y over rows, from per-thread partial sums.
template <typename T, typename S>
void layer_norm_backward_impl(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                              const Tensor& grad_y, const Tensor& x, const Tensor& mean,
                              const Tensor& rstd, const Tensor& weight, const Tensor& grad_add, Rows rs) {
  using A = compute_t<T>;
  const T* gy = typed_data<T>(grad_y);                           // (N, C)
  const T* xp = typed_data<T>(x);                                // (N, C)
  T* gx = typed_data<T>(grad_x);                                 // (N, C)
  const T* wp = weight.defined() ? typed_data<T>(weight) : nullptr;  // (C)
  const T* ap = grad_add.defined() ? typed_data<T>(grad_add) : nullptr;  // (N, C)
  const S* mp = typed_data<S>(mean);                             // (N)
  const S* rp = typed_data<S>(rstd);                             // (N)
  const bool want_w = grad_weight.defined(), want_b = grad_bias.defined();
  const int64_t C = rs.c;
  const bool parallel = rs.n > 1 && rs.n * C * 8 >= kParallelThreshold;
  const int threads = parallel ? omp_get_max_threads() : 1;
  std::vector<A> part_w(want_w ? size_t(threads * C) : 0, A(0));  // (threads, C)
  std::vector<A> part_b(want_b ? size_t(threads * C) : 0, A(0));  // (threads, C)
#pragma omp parallel num_threads(threads) if (parallel)
  {
    const int tid = omp_get_thread_num();
    A* pw = want_w ? part_w.data() + tid * C : nullptr;
    A* pb = want_b ? part_b.data() + tid * C : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rs.n; ++r) {
      const T* gr = gy + r * C;
      const T* xr = xp + r * C;
      T* dr = gx + r * C;
      const A mu = A(mp[r]), inv = A(rp[r]);
      A sum_g = 0, sum_gx = 0;
      for (int64_t c = 0; c < C; ++c) {
        const A xhat = (A(xr[c]) - mu) * inv;
        const A g = wp ? A(gr[c]) * A(wp[c]) : A(gr[c]);
        sum_g += g;
        sum_gx += g * xhat;
        if (pw) pw[c] += A(gr[c]) * xhat;
        if (pb) pb[c] += A(gr[c]);
      }
      const A mean_g = sum_g / A(C), mean_gx = sum_gx / A(C);
      const T* ar = ap ? ap + r * C : nullptr;
      for (int64_t c = 0; c < C; ++c) {
        const A xhat = (A(xr[c]) - mu) * inv;
        const A g = wp ? A(gr[c]) * A(wp[c]) : A(gr[c]);
        const A dx = inv * (g - mean_g - xhat * mean_gx);
        dr[c] = T(ar ? dx + A(ar[c]) : dx);
      }
    }
  }
  auto reduce_into = [&](const Tensor& out, const std::vector<A>& parts) {
    T* o = typed_data<T>(out);  // (C)
    for (int64_t c = 0; c < C; ++c) {
      A s = 0;
      for (int t = 0; t < threads; ++t) s += parts[size_t(t * C + c)];
      o[c] = T(s);
    }
  };
  if (want_w) reduce_into(grad_weight, part_w);
  if (want_b) reduce_into(grad_bias, part_b);
}

}  // namespace

void CpuBackend::layer_norm(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                            const Tensor& weight, const Tensor& bias, double eps) {
  const Rows rs = check_rows(x, "layer_norm");
  const Shape c_shape{rs.c};
  check_like(y, x, x.shape(), "layer_norm", "y");
  if (weight.defined()) check_like(weight, x, c_shape, "layer_norm", "weight");
  if (bias.defined()) check_like(bias, x, c_shape, "layer_norm", "bias");
  check_stats(mean, rs.n, "layer_norm", "mean");
  check_stats(rstd, rs.n, "layer_norm", "rstd");
  ZT_CHECK(mean.dtype() == rstd.dtype(), "layer_norm: mean and rstd must share a dtype, found ",
           dtype_name(mean.dtype()), " and ", dtype_name(rstd.dtype()));
  ZT_DISPATCH_FLOATING(x.dtype(), "layer_norm", [&]<typename T>() {
    if (mean.dtype() == DType::f64)
      (layer_norm_forward<T, double>)(y, mean, rstd, x, weight, bias, eps, rs);
    else
      (layer_norm_forward<T, float>)(y, mean, rstd, x, weight, bias, eps, rs);
  });
}

void CpuBackend::layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                     const Tensor& grad_bias, const Tensor& grad_y, const Tensor& x,
                                     const Tensor& mean, const Tensor& rstd, const Tensor& weight,
                                     const Tensor& grad_add) {
  const Rows rs = check_rows(x, "layer_norm_backward");
  const Shape c_shape{rs.c};
  check_like(grad_x, x, x.shape(), "layer_norm_backward", "grad_x");
  check_like(grad_y, x, x.shape(), "layer_norm_backward", "grad_y");
  if (weight.defined()) check_like(weight, x, c_shape, "layer_norm_backward", "weight");
  if (grad_weight.defined()) check_like(grad_weight, x, c_shape, "layer_norm_backward", "grad_weight");
  if (grad_bias.defined()) check_like(grad_bias, x, c_shape, "layer_norm_backward", "grad_bias");
  if (grad_add.defined()) check_like(grad_add, x, x.shape(), "layer_norm_backward", "grad_add");
  check_stats(mean, rs.n, "layer_norm_backward", "mean");
  check_stats(rstd, rs.n, "layer_norm_backward", "rstd");
  ZT_CHECK(mean.dtype() == rstd.dtype(), "layer_norm_backward: mean and rstd must share a dtype, found ",
           dtype_name(mean.dtype()), " and ", dtype_name(rstd.dtype()));
  ZT_DISPATCH_FLOATING(x.dtype(), "layer_norm_backward", [&]<typename T>() {
    if (mean.dtype() == DType::f64)
      (layer_norm_backward_impl<T, double>)(grad_x, grad_weight, grad_bias, grad_y, x, mean, rstd, weight, grad_add,
                                                 rs);
    else
      (layer_norm_backward_impl<T, float>)(grad_x, grad_weight, grad_bias, grad_y, x, mean, rstd, weight, grad_add,
                                                 rs);
  });
}

}  // namespace zt::cpu
