// CPU 2-D max and average pooling (NCHW), forward and backward, one OpenMP task per (n, c)
// plane. Window placement, divisors and NaN handling follow PyTorch (floor mode):
// - max: a NaN in the window wins; the index is the flat h * W + w of the maximum;
// - avg: the window is clipped to the padded input for count_include_pad, to the input
//   otherwise, and divides by the number of positions it then covers.
#include <atomic>
#include <cmath>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/pool_checks.h"
#include "core/cpu/strided.h"

namespace zt::cpu {
namespace {

template <typename T>
void max_pool_forward(const Tensor& out, const Tensor& indices, const Tensor& x, const PoolDims& d,
                      const Pool2dGeometry& g) {
  using A = compute_t<T>;
  const T* xp = typed_data<T>(x);           // (N*C, H, W)
  T* op = typed_data<T>(out);               // (N*C, OH, OW)
  int64_t* ip = typed_data<int64_t>(indices);  // (N*C, OH, OW)
  parallel_for(d.planes, d.oh * d.ow * g.kernel_h * g.kernel_w, [&](int64_t p) {
    const T* plane = xp + p * d.h * d.w;
    for (int64_t oy = 0; oy < d.oh; ++oy)
      for (int64_t ox = 0; ox < d.ow; ++ox) {
        A best = -INFINITY;
        int64_t best_index = -1;
        for (int64_t i = 0; i < g.kernel_h; ++i) {
          const int64_t iy = oy * g.stride_h - g.pad_h + i * g.dil_h;
          if (iy < 0 || iy >= d.h) continue;
          for (int64_t j = 0; j < g.kernel_w; ++j) {
            const int64_t ix = ox * g.stride_w - g.pad_w + j * g.dil_w;
            if (ix < 0 || ix >= d.w) continue;
            const A v = A(plane[iy * d.w + ix]);
            if (best_index < 0 || v > best || std::isnan(v)) {
              best = v;
              best_index = iy * d.w + ix;
            }
            if (std::isnan(v)) break;
          }
          if (std::isnan(best)) break;
        }
        const int64_t o = (p * d.oh + oy) * d.ow + ox;
        op[o] = T(best);
        ip[o] = best_index;
      }
  });
}

template <typename T>
void max_pool_backward(const Tensor& grad_x, const Tensor& grad_out, const Tensor& indices,
                       const PoolDims& d) {
  using A = compute_t<T>;
  const T* gp = typed_data<T>(grad_out);             // (N*C, OH, OW)
  const int64_t* ip = typed_data<int64_t>(indices);  // (N*C, OH, OW)
  T* gx = typed_data<T>(grad_x);                     // (N*C, H, W)
  std::atomic<bool> bad_index{false};
  parallel_for(d.planes, d.oh * d.ow + d.h * d.w, [&](int64_t p) {
    std::vector<A> acc(size_t(d.h * d.w), A(0));  // windows may overlap: accumulate, then store
    for (int64_t o = p * d.oh * d.ow; o < (p + 1) * d.oh * d.ow; ++o) {
      const int64_t idx = ip[o];
      if (idx < 0 || idx >= d.h * d.w) {
        bad_index = true;
        continue;
      }
      acc[size_t(idx)] += A(gp[o]);
    }
    T* dst = gx + p * d.h * d.w;
    for (int64_t i = 0; i < d.h * d.w; ++i) dst[i] = T(acc[size_t(i)]);
  });
  ZT_CHECK(!bad_index, "max_pool2d_backward: an index lies outside its (", d.h, ", ", d.w,
           ") plane (indices must come from max_pool2d)");
}

// The clipped window of output (oy, ox) and its divisor.
struct AvgWindow {
  int64_t y0, y1, x0, x1;
  int64_t divisor;
};

AvgWindow avg_window(int64_t oy, int64_t ox, const PoolDims& d, const Pool2dGeometry& g) {
  int64_t y0 = oy * g.stride_h - g.pad_h, x0 = ox * g.stride_w - g.pad_w;
  int64_t y1 = std::min(y0 + g.kernel_h, d.h + g.pad_h), x1 = std::min(x0 + g.kernel_w, d.w + g.pad_w);
  const int64_t padded = (y1 - y0) * (x1 - x0);
  y0 = std::max<int64_t>(y0, 0);
  x0 = std::max<int64_t>(x0, 0);
  y1 = std::min(y1, d.h);
  x1 = std::min(x1, d.w);
  return {y0, y1, x0, x1, g.count_include_pad ? padded : (y1 - y0) * (x1 - x0)};
}

template <typename T>
void avg_pool_forward(const Tensor& out, const Tensor& x, const PoolDims& d, const Pool2dGeometry& g) {
  using A = compute_t<T>;
  const T* xp = typed_data<T>(x);  // (N*C, H, W)
  T* op = typed_data<T>(out);      // (N*C, OH, OW)
  parallel_for(d.planes, d.oh * d.ow * g.kernel_h * g.kernel_w, [&](int64_t p) {
    const T* plane = xp + p * d.h * d.w;
    for (int64_t oy = 0; oy < d.oh; ++oy)
      for (int64_t ox = 0; ox < d.ow; ++ox) {
        const AvgWindow wdw = avg_window(oy, ox, d, g);
        A sum = 0;
        for (int64_t y = wdw.y0; y < wdw.y1; ++y)
          for (int64_t x = wdw.x0; x < wdw.x1; ++x) sum += A(plane[y * d.w + x]);
        op[(p * d.oh + oy) * d.ow + ox] = T(sum / A(wdw.divisor));
      }
  });
}

template <typename T>
void avg_pool_backward(const Tensor& grad_x, const Tensor& grad_out, const PoolDims& d,
                       const Pool2dGeometry& g) {
  using A = compute_t<T>;
  const T* gp = typed_data<T>(grad_out);  // (N*C, OH, OW)
  T* gx = typed_data<T>(grad_x);          // (N*C, H, W)
  parallel_for(d.planes, d.oh * d.ow * g.kernel_h * g.kernel_w, [&](int64_t p) {
    std::vector<A> acc(size_t(d.h * d.w), A(0));
    for (int64_t oy = 0; oy < d.oh; ++oy)
      for (int64_t ox = 0; ox < d.ow; ++ox) {
        const AvgWindow wdw = avg_window(oy, ox, d, g);
        const A share = A(gp[(p * d.oh + oy) * d.ow + ox]) / A(wdw.divisor);
        for (int64_t y = wdw.y0; y < wdw.y1; ++y)
          for (int64_t x = wdw.x0; x < wdw.x1; ++x) acc[size_t(y * d.w + x)] += share;
      }
    T* dst = gx + p * d.h * d.w;
    for (int64_t i = 0; i < d.h * d.w; ++i) dst[i] = T(acc[size_t(i)]);
  });
}

}  // namespace

void CpuBackend::max_pool2d(const Tensor& out, const Tensor& indices, const Tensor& x,
                            const Pool2dGeometry& geometry) {
  const PoolDims d = pool_dims(x, out, geometry, "max_pool2d");
  check_pool_indices(indices, out, "max_pool2d");
  if (out.numel() == 0) return;
  ZT_DISPATCH_FLOATING(x.dtype(), "max_pool2d",
                       [&]<typename T>() { max_pool_forward<T>(out, indices, x, d, geometry); });
}

void CpuBackend::max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                     const Tensor& indices, const Pool2dGeometry& geometry) {
  const PoolDims d = pool_dims(grad_x, grad_out, geometry, "max_pool2d_backward");
  check_pool_indices(indices, grad_out, "max_pool2d_backward");
  if (grad_x.numel() == 0) return;
  ZT_DISPATCH_FLOATING(grad_x.dtype(), "max_pool2d_backward",
                       [&]<typename T>() { max_pool_backward<T>(grad_x, grad_out, indices, d); });
}

void CpuBackend::avg_pool2d(const Tensor& out, const Tensor& x, const Pool2dGeometry& geometry) {
  check_avg_pool_geometry(geometry, "avg_pool2d");
  const PoolDims d = pool_dims(x, out, geometry, "avg_pool2d");
  if (out.numel() == 0) return;
  ZT_DISPATCH_FLOATING(x.dtype(), "avg_pool2d",
                       [&]<typename T>() { avg_pool_forward<T>(out, x, d, geometry); });
}

void CpuBackend::avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                     const Pool2dGeometry& geometry) {
  check_avg_pool_geometry(geometry, "avg_pool2d_backward");
  const PoolDims d = pool_dims(grad_x, grad_out, geometry, "avg_pool2d_backward");
  if (grad_x.numel() == 0) return;
  ZT_DISPATCH_FLOATING(grad_x.dtype(), "avg_pool2d_backward",
                       [&]<typename T>() { avg_pool_backward<T>(grad_x, grad_out, d, geometry); });
}

}  // namespace zt::cpu
