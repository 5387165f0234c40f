// CPU softmax / log-softmax over the last dim of contiguous (rows, C) data, and their backward.
// Numerically stable (the row max is subtracted before exp); computed in float, double for f64.
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"

namespace zt::cpu {
namespace {

// The (rows, C) view of a contiguous tensor whose last dim is C.
struct RowShape {
  int64_t rows, cols;
};

RowShape row_shape(const Tensor& t, const char* op, const char* what) {
  ZT_CHECK(t.is_contiguous(), op, ": ", what, " must be contiguous, found shape ",
           shape_str(t.shape()), " with strides ", shape_str(t.strides()));
  const int64_t cols = t.dim() == 0 ? 1 : t.size(-1);
  return {cols == 0 ? 0 : t.numel() / cols, cols};
}

template <typename T>
void softmax_rows(T* y, const T* x, RowShape rs, bool log) {  // y, x: (rows, C)
  using A = compute_t<T>;
  const int64_t C = rs.cols;
  parallel_for(rs.rows, 4 * C, [&](int64_t r) {
    const T* xr = x + r * C;  // (C)
    T* yr = y + r * C;        // (C)
    A mx = -std::numeric_limits<A>::infinity();
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, A(xr[c]));
    A sum = 0;
    if (log) {
      for (int64_t c = 0; c < C; ++c) sum += std::exp(A(xr[c]) - mx);
      const A lse = mx + std::log(sum);
      for (int64_t c = 0; c < C; ++c) yr[c] = T(A(xr[c]) - lse);
    } else if constexpr (std::is_same_v<T, A>) {  // keep exp() in y, then scale
      for (int64_t c = 0; c < C; ++c) sum += (yr[c] = std::exp(xr[c] - mx));
      const A inv = A(1) / sum;
      for (int64_t c = 0; c < C; ++c) yr[c] *= inv;
    } else {  // 16-bit y would round exp() early: evaluate it twice instead
      for (int64_t c = 0; c < C; ++c) sum += std::exp(A(xr[c]) - mx);
      const A inv = A(1) / sum;
      for (int64_t c = 0; c < C; ++c) yr[c] = T(std::exp(A(xr[c]) - mx) * inv);
    }
  });
}

// softmax: gin = y * (gout - sum(gout * y)); log-softmax: gin = gout - exp(y) * sum(gout).
template <typename T>
void softmax_backward_rows(T* gin, const T* gout, const T* y, RowShape rs, bool log) {
  using A = compute_t<T>;
  const int64_t C = rs.cols;
  parallel_for(rs.rows, 4 * C, [&](int64_t r) {
    const T* gr = gout + r * C;  // (C)
    const T* yr = y + r * C;     // (C)
    T* dr = gin + r * C;         // (C)
    A dot = 0;
    if (log) {
      for (int64_t c = 0; c < C; ++c) dot += A(gr[c]);
      for (int64_t c = 0; c < C; ++c) dr[c] = T(A(gr[c]) - std::exp(A(yr[c])) * dot);
    } else {
      for (int64_t c = 0; c < C; ++c) dot += A(gr[c]) * A(yr[c]);
      for (int64_t c = 0; c < C; ++c) dr[c] = T(A(yr[c]) * (A(gr[c]) - dot));
    }
  });
}

}  // namespace

void CpuBackend::softmax(const Tensor& out, const Tensor& x, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  const RowShape rs = row_shape(x, op, "x");
  row_shape(out, op, "out");
  ZT_CHECK(out.shape() == x.shape() && out.dtype() == x.dtype(), op, ": out must match x ",
           x.str(), ", found ", out.str());
  ZT_DISPATCH_FLOATING(x.dtype(), op, [&]<typename T>() {
    softmax_rows<T>(typed_data<T>(out), typed_data<T>(x), rs, log);
  });
}

void CpuBackend::softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out,
                                  bool log) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  const RowShape rs = row_shape(out, op, "out");
  row_shape(grad_in, op, "grad_in");
  row_shape(grad_out, op, "grad_out");
  ZT_CHECK(grad_in.shape() == out.shape() && grad_out.shape() == out.shape() &&
               grad_in.dtype() == out.dtype() && grad_out.dtype() == out.dtype(),
           op, ": grad_in ", grad_in.str(), " and grad_out ", grad_out.str(), " must match out ",
           out.str());
  ZT_DISPATCH_FLOATING(out.dtype(), op, [&]<typename T>() {
    softmax_backward_rows<T>(typed_data<T>(grad_in), typed_data<T>(grad_out), typed_data<T>(out),
                             rs, log);
  });
}

}  // namespace zt::cpu
