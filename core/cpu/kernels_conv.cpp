// CPU 2-D convolution (NCHW) by im2col + GEMM through OpenBLAS: forward, backward to the input
// (GEMM then col2im) and backward to the weight (im2col then GEMM, summed over the batch).
// f16/bf16 are converted to f32 and computed in f32, as every CPU kernel does.
//
// Note [Convolution as GEMM]
// For one image and one group, im2col lays the input windows out as col (Cg*KH*KW, OH*OW), so
// out_g (Og, OH*OW) = weight_g (Og, Cg*KH*KW) @ col. The input gradient is
// col = weight_g^T @ grad_out_g folded back by col2im (adding where windows overlap), and the
// weight gradient is grad_out_g @ col^T summed over images. Images are spread over OpenMP
// threads (each with its own scratch) when one image's GEMM is small enough for OpenBLAS to run
// single-threaded; otherwise images run one after another on OpenBLAS's threads.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"

namespace zt::cpu {
namespace {

// OpenBLAS's GEMM_MULTITHREAD_THRESHOLD: products this small run on one thread inside BLAS.
inline constexpr double kSingleThreadGemmWork = 65536.0 * 4;

void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
             const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m),
              int(n), int(k), 1.0f, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
             const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m),
              int(n), int(k), 1.0, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

struct ConvDims {
  int64_t n, c, h, w;    // input
  int64_t o, kh, kw;     // weight (O, C / groups, KH, KW)
  int64_t oh, ow;        // output
  int64_t groups, cg, og;
  int64_t col_rows() const { return cg * kh * kw; }
  int64_t col_cols() const { return oh * ow; }
};

// Sizes of x (N, C, H, W), weight (O, C/groups, KH, KW) and out (N, O, OH, OW), checked against
// each other and the geometry (the dispatch layer checked them already; kernels stay safe).
ConvDims conv_dims(const Tensor& x, const Tensor& weight, const Tensor& out, const Conv2dGeometry& g,
                   const char* op) {
  for (const Tensor* t : {&x, &weight, &out})
    ZT_CHECK(t->dim() == 4 && t->is_contiguous(), op, ": expected contiguous 4-D tensors, found ",
             t->str());
  ConvDims d{x.size(0), x.size(1), x.size(2), x.size(3), weight.size(0), weight.size(2),
             weight.size(3), out.size(2), out.size(3), g.groups, 0, 0};
  ZT_CHECK(g.groups >= 1 && d.c % g.groups == 0 && d.o % g.groups == 0 && weight.size(1) * g.groups == d.c,
           op, ": weight ", shape_str(weight.shape()), " does not fit input ", shape_str(x.shape()),
           " with groups=", g.groups);
  d.cg = d.c / g.groups;
  d.og = d.o / g.groups;
  ZT_CHECK(out.size(0) == d.n && out.size(1) == d.o &&
               d.oh == conv_output_size(d.h, d.kh, g.stride_h, g.pad_h, g.dil_h) &&
               d.ow == conv_output_size(d.w, d.kw, g.stride_w, g.pad_w, g.dil_w),
           op, ": output ", shape_str(out.shape()), " does not match input ", shape_str(x.shape()),
           " and weight ", shape_str(weight.shape()));
  ZT_CHECK(x.dtype() == weight.dtype() && x.dtype() == out.dtype(), op,
           ": tensors must share a dtype, found ", dtype_name(x.dtype()), ", ", dtype_name(weight.dtype()),
           " and ", dtype_name(out.dtype()));
  ZT_CHECK(double(d.col_rows()) * double(d.col_cols()) < double(INT_MAX), op,
           ": one image's im2col buffer is too large for BLAS (", d.col_rows(), " x ", d.col_cols(), ")");
  return d;
}

// col (Cg*KH*KW, OH*OW) = the windows of x (Cg, H, W), zero where they reach into the padding.
template <typename T, typename A>
void im2col(const T* x, A* col, const ConvDims& d, const Conv2dGeometry& g) {
  for (int64_t c = 0; c < d.cg; ++c)
    for (int64_t i = 0; i < d.kh; ++i)
      for (int64_t j = 0; j < d.kw; ++j) {
        A* row = col + ((c * d.kh + i) * d.kw + j) * d.col_cols();
        for (int64_t oy = 0; oy < d.oh; ++oy) {
          const int64_t iy = oy * g.stride_h - g.pad_h + i * g.dil_h;
          A* dst = row + oy * d.ow;
          if (iy < 0 || iy >= d.h) {
            std::fill(dst, dst + d.ow, A(0));
            continue;
          }
          const T* src = x + (c * d.h + iy) * d.w;
          for (int64_t ox = 0; ox < d.ow; ++ox) {
            const int64_t ix = ox * g.stride_w - g.pad_w + j * g.dil_w;
            dst[ox] = (ix >= 0 && ix < d.w) ? A(src[ix]) : A(0);
          }
        }
      }
}

// x (Cg, H, W) += the columns of col (Cg*KH*KW, OH*OW) at their window positions.
template <typename A>
void col2im_add(const A* col, A* x, const ConvDims& d, const Conv2dGeometry& g) {
  for (int64_t c = 0; c < d.cg; ++c)
    for (int64_t i = 0; i < d.kh; ++i)
      for (int64_t j = 0; j < d.kw; ++j) {
        const A* row = col + ((c * d.kh + i) * d.kw + j) * d.col_cols();
        for (int64_t oy = 0; oy < d.oh; ++oy) {
          const int64_t iy = oy * g.stride_h - g.pad_h + i * g.dil_h;
          if (iy < 0 || iy >= d.h) continue;
          A* dst = x + (c * d.h + iy) * d.w;
          const A* src = row + oy * d.ow;
          for (int64_t ox = 0; ox < d.ow; ++ox) {
            const int64_t ix = ox * g.stride_w - g.pad_w + j * g.dil_w;
            if (ix >= 0 && ix < d.w) dst[ix] += src[ox];
          }
        }
      }
}

// Per-thread buffers, grown on first use.
template <typename A>
struct Scratch {
  std::vector<A> col, in, out, acc;
};

// `count` elements of src as compute type A: src itself when T is A, else converted into buf.
template <typename T, typename A>
const A* as_compute(const T* src, int64_t count, std::vector<A>& buf) {
  if constexpr (std::is_same_v<T, A>) {
    return src;
  } else {
    buf.resize(size_t(count));
    for (int64_t i = 0; i < count; ++i) buf[size_t(i)] = A(src[i]);
    return buf.data();
  }
}

// Runs fn(image, scratch) for every image (Note [Convolution as GEMM] on the threading).
template <typename A, typename Fn>
void for_each_image(const ConvDims& d, std::vector<Scratch<A>>& scratch, Fn&& fn) {
  const double work = double(d.og) * double(d.col_rows()) * double(d.col_cols());
  const bool parallel = work <= kSingleThreadGemmWork && d.n > 1;
  scratch.resize(size_t(parallel ? omp_get_max_threads() : 1));
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t n = 0; n < d.n; ++n) fn(n, scratch[size_t(omp_get_thread_num())]);
}

template <typename T>
void conv_forward(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const ConvDims& d, const Conv2dGeometry& g) {
  using A = compute_t<T>;
  std::vector<A> w_buf, b_buf;
  const A* wp = as_compute<T, A>(typed_data<T>(weight), weight.numel(), w_buf);  // (O, Cg*KH*KW)
  const A* bp = bias.defined() ? as_compute<T, A>(typed_data<T>(bias), d.o, b_buf) : nullptr;  // (O)
  const T* xp = typed_data<T>(x);  // (N, C, H, W)
  T* op = typed_data<T>(out);      // (N, O, OH, OW)
  const int64_t K = d.col_rows(), P = d.col_cols();
  std::vector<Scratch<A>> scratch;
  for_each_image<A>(d, scratch, [&](int64_t n, Scratch<A>& s) {
    s.col.resize(size_t(K * P));
    s.out.resize(size_t(d.o * P));
    for (int64_t grp = 0; grp < d.groups; ++grp) {
      im2col<T, A>(xp + (n * d.c + grp * d.cg) * d.h * d.w, s.col.data(), d, g);
      gemm_rm(false, false, d.og, P, K, wp + grp * d.og * K, K, s.col.data(), P, A(0),
              s.out.data() + grp * d.og * P, P);
    }
    T* dst = op + n * d.o * P;
    for (int64_t o = 0; o < d.o; ++o) {
      const A b = bp ? bp[o] : A(0);
      for (int64_t p = 0; p < P; ++p) dst[o * P + p] = T(s.out[size_t(o * P + p)] + b);
    }
  });
}

template <typename T>
void conv_backward_input(const Tensor& grad_x, const Tensor& grad_out, const Tensor& weight,
                         const ConvDims& d, const Conv2dGeometry& g) {
  using A = compute_t<T>;
  std::vector<A> w_buf;
  const A* wp = as_compute<T, A>(typed_data<T>(weight), weight.numel(), w_buf);  // (O, Cg*KH*KW)
  const T* gp = typed_data<T>(grad_out);  // (N, O, OH, OW)
  T* gx = typed_data<T>(grad_x);          // (N, C, H, W)
  const int64_t K = d.col_rows(), P = d.col_cols(), image = d.c * d.h * d.w;
  std::vector<Scratch<A>> scratch;
  for_each_image<A>(d, scratch, [&](int64_t n, Scratch<A>& s) {
    s.col.resize(size_t(K * P));
    s.acc.assign(size_t(image), A(0));
    const A* go = as_compute<T, A>(gp + n * d.o * P, d.o * P, s.in);  // (O, OH*OW)
    for (int64_t grp = 0; grp < d.groups; ++grp) {
      gemm_rm(true, false, K, P, d.og, wp + grp * d.og * K, K, go + grp * d.og * P, P, A(0),
              s.col.data(), P);
      col2im_add<A>(s.col.data(), s.acc.data() + grp * d.cg * d.h * d.w, d, g);
    }
    T* dst = gx + n * image;
    for (int64_t i = 0; i < image; ++i) dst[i] = T(s.acc[size_t(i)]);
  });
}

template <typename T>
void conv_backward_weight(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& x,
                          const ConvDims& d, const Conv2dGeometry& g) {
  using A = compute_t<T>;
  const T* gp = typed_data<T>(grad_out);  // (N, O, OH, OW)
  const T* xp = typed_data<T>(x);         // (N, C, H, W)
  const int64_t K = d.col_rows(), P = d.col_cols(), wsize = d.o * K;
  std::vector<Scratch<A>> scratch;
  // Each thread sums its images into its own acc; the partial sums are added at the end.
  for_each_image<A>(d, scratch, [&](int64_t n, Scratch<A>& s) {
    if (s.acc.empty()) s.acc.assign(size_t(wsize), A(0));
    s.col.resize(size_t(K * P));
    const A* go = as_compute<T, A>(gp + n * d.o * P, d.o * P, s.in);  // (O, OH*OW)
    for (int64_t grp = 0; grp < d.groups; ++grp) {
      im2col<T, A>(xp + (n * d.c + grp * d.cg) * d.h * d.w, s.col.data(), d, g);
      gemm_rm(false, true, d.og, K, P, go + grp * d.og * P, P, s.col.data(), P, A(1),
              s.acc.data() + grp * d.og * K, K);
    }
  });
  T* gw = typed_data<T>(grad_weight);  // (O, Cg, KH, KW)
  for (int64_t i = 0; i < wsize; ++i) {
    A total = 0;
    for (const Scratch<A>& s : scratch)
      if (!s.acc.empty()) total += s.acc[size_t(i)];
    gw[i] = T(total);
  }
}

}  // namespace

void CpuBackend::conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& weight,
                                const Tensor& bias, const Conv2dGeometry& geometry) {
  const ConvDims d = conv_dims(x, weight, out, geometry, "conv2d_forward");
  if (bias.defined())
    ZT_CHECK(bias.dim() == 1 && bias.size(0) == d.o && bias.is_contiguous() && bias.dtype() == x.dtype(),
             "conv2d_forward: bias must be contiguous (", d.o, ") of dtype ", dtype_name(x.dtype()),
             ", found ", bias.str());
  if (out.numel() == 0) return;
  ZT_DISPATCH_FLOATING(x.dtype(), "conv2d_forward",
                       [&]<typename T>() { conv_forward<T>(out, x, weight, bias, d, geometry); });
}

void CpuBackend::conv2d_backward_input(const Tensor& grad_x, const Tensor& grad_out,
                                       const Tensor& weight, const Conv2dGeometry& geometry) {
  const ConvDims d = conv_dims(grad_x, weight, grad_out, geometry, "conv2d_backward_input");
  if (grad_x.numel() == 0) return;
  ZT_DISPATCH_FLOATING(grad_x.dtype(), "conv2d_backward_input", [&]<typename T>() {
    conv_backward_input<T>(grad_x, grad_out, weight, d, geometry);
  });
}

void CpuBackend::conv2d_backward_weight(const Tensor& grad_weight, const Tensor& grad_out,
                                        const Tensor& x, const Conv2dGeometry& geometry) {
  const ConvDims d = conv_dims(x, grad_weight, grad_out, geometry, "conv2d_backward_weight");
  if (grad_weight.numel() == 0) return;
  ZT_DISPATCH_FLOATING(x.dtype(), "conv2d_backward_weight", [&]<typename T>() {
    conv_backward_weight<T>(grad_weight, grad_out, x, d, geometry);
  });
}

}  // namespace zt::cpu
