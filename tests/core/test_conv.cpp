// 2-D convolution and pooling on the CPU: hand-computed small cases (stride, padding, dilation,
// groups, odd sizes, NaN, overlapping windows), a direct-loop reference on larger odd shapes for
// every floating dtype, backward kernels, and argument errors.
#include <cmath>

#include "core_test_util.h"

namespace zt::test {
namespace {

std::vector<double> iota(int64_t n, double start = 1.0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = start + double(i);
  return v;
}

Conv2dGeometry geom(int64_t stride, int64_t pad, int64_t dil = 1, int64_t groups = 1) {
  return {stride, stride, pad, pad, dil, dil, groups};
}

// Direct-loop convolution in double: the definition, independent of im2col.
struct RefConv {
  Shape xs, ws;
  Conv2dGeometry g;
  int64_t oh() const { return conv_output_size(xs[2], ws[2], g.stride_h, g.pad_h, g.dil_h); }
  int64_t ow() const { return conv_output_size(xs[3], ws[3], g.stride_w, g.pad_w, g.dil_w); }
  // Calls f(x_index, w_index, out_index) for every multiply-add of the convolution.
  template <typename F>
  void each(F&& f) const {
    const int64_t og = ws[0] / g.groups, cg = ws[1];
    for (int64_t n = 0; n < xs[0]; ++n)
      for (int64_t o = 0; o < ws[0]; ++o)
        for (int64_t y = 0; y < oh(); ++y)
          for (int64_t x = 0; x < ow(); ++x)
            for (int64_t c = 0; c < cg; ++c)
              for (int64_t i = 0; i < ws[2]; ++i)
                for (int64_t j = 0; j < ws[3]; ++j) {
                  const int64_t iy = y * g.stride_h - g.pad_h + i * g.dil_h;
                  const int64_t ix = x * g.stride_w - g.pad_w + j * g.dil_w;
                  if (iy < 0 || iy >= xs[2] || ix < 0 || ix >= xs[3]) continue;
                  const int64_t ci = (o / og) * cg + c;
                  f(((n * xs[1] + ci) * xs[2] + iy) * xs[3] + ix, ((o * cg + c) * ws[2] + i) * ws[3] + j,
                    ((n * ws[0] + o) * oh() + y) * ow() + x);
                }
  }
};

TEST_CASE("conv2d: hand-computed cases (plain, bias, stride 2 + padding 1, dilation 2, groups 2)") {
  for (DType dt : kFloatDTypes) {
    CAPTURE(dtype_name(dt));
    const Tensor x = make(iota(9), {1, 1, 3, 3}, dt);  // [[1 2 3] [4 5 6] [7 8 9]]
    const Tensor diag = make({1, 0, 0, 1}, {1, 1, 2, 2}, dt);
    check_values(raw::conv2d(x, diag, Tensor(), geom(1, 0)), {6, 8, 12, 14}, {1, 1, 2, 2});
    check_values(raw::conv2d(x, diag, make({0.5}, {1}, dt), geom(1, 0)), {6.5, 8.5, 12.5, 14.5}, {1, 1, 2, 2});
    // 3x3 box with padding 1 and stride 2: the windows around the four corners.
    const Tensor box = make(std::vector<double>(9, 1.0), {1, 1, 3, 3}, dt);
    check_values(raw::conv2d(x, box, Tensor(), geom(2, 1)), {12, 16, 24, 28}, {1, 1, 2, 2});
    // Dilation 2 on a 5x5 ramp x[r][c] = 5r + c: out(i, j) = 20i + 4j + 24.
    const Tensor ramp = make(iota(25, 0.0), {1, 1, 5, 5}, dt);
    check_values(raw::conv2d(ramp, make({1, 1, 1, 1}, {1, 1, 2, 2}, dt), Tensor(), geom(1, 0, 2)),
                 {24, 28, 32, 44, 48, 52, 64, 68, 72}, {1, 1, 3, 3});
    // Groups 2: each output channel sees only its own input channel.
    const Tensor two = make(iota(8), {1, 2, 2, 2}, dt);
    check_values(raw::conv2d(two, make({2, -1}, {2, 1, 1, 1}, dt), Tensor(), geom(1, 0, 1, 2)),
                 {2, 4, 6, 8, -5, -6, -7, -8}, {1, 2, 2, 2});
  }
}

TEST_CASE("conv2d backward: hand-computed input and weight gradients") {
  const Tensor x = make(iota(9), {1, 1, 3, 3}, DType::f64);
  const Tensor diag = make({1, 0, 0, 1}, {1, 1, 2, 2}, DType::f64);
  const Tensor g = make({1, 1, 1, 1}, {1, 1, 2, 2}, DType::f64);
  // Tap (0,0) reaches the top-left 2x2 block, tap (1,1) the bottom-right one.
  check_values(raw::conv2d_backward_input(g, diag, x.shape(), geom(1, 0)), {1, 1, 0, 1, 2, 1, 0, 1, 1},
               {1, 1, 3, 3});
  // grad_w(i, j) = sum of the 2x2 block of x starting at (i, j).
  check_values(raw::conv2d_backward_weight(g, x, diag.shape(), geom(1, 0)), {12, 16, 24, 28}, {1, 1, 2, 2});
}

TEST_CASE("conv2d: odd shapes, asymmetric geometry and groups against a direct loop, every dtype") {
  struct Case {
    Shape xs, ws;
    Conv2dGeometry g;
  };
  const Case cases[] = {
      // geometry: {stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups}
      {{2, 3, 7, 5}, {4, 3, 3, 2}, {2, 1, 1, 2, 1, 2, 1}},
      {{3, 4, 9, 8}, {6, 2, 3, 3}, {1, 2, 1, 0, 2, 1, 2}},
      {{2, 6, 5, 5}, {6, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 6}},  // depthwise
      {{1, 2, 11, 13}, {3, 2, 1, 1}, {3, 2, 0, 0, 1, 1, 1}},
      {{4, 2, 6, 6}, {3, 2, 5, 5}, {1, 1, 2, 2, 1, 1, 1}},  // sizes preserved by padding
  };
  for (const Case& c : cases) {
    CAPTURE(shape_str(c.xs));
    CAPTURE(shape_str(c.ws));
    Generator gen(11);
    const Tensor x64 = randn(c.xs, opts(DType::f64), &gen), w64 = randn(c.ws, opts(DType::f64), &gen);
    const Tensor b64 = randn({c.ws[0]}, opts(DType::f64), &gen);
    const RefConv ref{c.xs, c.ws, c.g};
    const Shape os{c.xs[0], c.ws[0], ref.oh(), ref.ow()};
    const Tensor gy64 = randn(os, opts(DType::f64), &gen);
    const std::vector<double> xv = values(x64), wv = values(w64), bv = values(b64), gv = values(gy64);
    std::vector<double> out(size_t(shape_numel(os))), gx(xv.size(), 0.0), gw(wv.size(), 0.0);
    for (size_t i = 0; i < out.size(); ++i) out[i] = bv[(i / size_t(os[2] * os[3])) % size_t(os[1])];
    ref.each([&](int64_t xi, int64_t wi, int64_t oi) {
      out[size_t(oi)] += xv[size_t(xi)] * wv[size_t(wi)];
      gx[size_t(xi)] += wv[size_t(wi)] * gv[size_t(oi)];
      gw[size_t(wi)] += xv[size_t(xi)] * gv[size_t(oi)];
    });
    for (DType dt : kFloatDTypes) {
      CAPTURE(dtype_name(dt));
      // Sums of ~50 products of N(0,1) values: 16-bit inputs round first, so allow more.
      const double tol = dt == DType::f64 ? 1e-10 : dt == DType::f32 ? 1e-4 : dt == DType::f16 ? 3e-2 : 1.5e-1;
      const Tensor x = raw::to(x64, dt), w = raw::to(w64, dt), gy = raw::to(gy64, dt);
      check_values(raw::conv2d(x, w, raw::to(b64, dt), c.g), out, os, tol);
      check_values(raw::conv2d_backward_input(gy, w, c.xs, c.g), gx, c.xs, tol);
      check_values(raw::conv2d_backward_weight(gy, x, c.ws, c.g), gw, c.ws, tol * 2);
    }
  }
}

TEST_CASE("conv2d accepts non-contiguous inputs") {
  Generator gen(3);
  const Tensor base = randn({2, 3, 6, 5}, opts(DType::f64), &gen);
  const Tensor w = randn({2, 3, 2, 2}, opts(DType::f64), &gen);
  const Tensor xt = raw::transpose(base, 2, 3);  // (2, 3, 5, 6) view
  check_values(raw::conv2d(xt, w, Tensor(), geom(1, 1)),
               values(raw::conv2d(raw::contiguous(xt), w, Tensor(), geom(1, 1))), {2, 2, 6, 7});
}

TEST_CASE("conv2d rejects bad arguments with clear messages") {
  const Tensor x = zeros({1, 4, 5, 5}, opts()), w = zeros({2, 4, 3, 3}, opts());
  CHECK(contains(error_of([&] { raw::conv2d(zeros({4, 5, 5}, opts()), w, Tensor(), {}); }), "must be 4-D"));
  CHECK(contains(error_of([&] { raw::conv2d(x, zeros({2, 3, 3, 3}, opts()), Tensor(), {}); }), "input channels"));
  CHECK(contains(error_of([&] { raw::conv2d(x, zeros({3, 2, 3, 3}, opts()), Tensor(), geom(1, 0, 1, 2)); }),
                 "divisible by groups"));
  CHECK(contains(error_of([&] { raw::conv2d(x, zeros({2, 4, 7, 7}, opts()), Tensor(), {}); }), "does not fit"));
  CHECK(contains(error_of([&] { raw::conv2d(x, w, zeros({3}, opts()), {}); }), "bias must have shape"));
  CHECK(contains(error_of([&] { raw::conv2d(x, w, Tensor(), geom(0, 0)); }), "stride must be positive"));
  CHECK(contains(error_of([&] { raw::conv2d(x, zeros({2, 4, 3, 3}, opts(DType::f64)), Tensor(), {}); }),
                 "share a dtype"));
}

TEST_CASE("max_pool2d: hand-computed values and indices, stride/padding/dilation, NaN") {
  for (DType dt : kFloatDTypes) {
    CAPTURE(dtype_name(dt));
    // 4x4 ramp, 2x2 windows, stride 2: the bottom-right element of each window.
    raw::MaxPool2dResult r = raw::max_pool2d(make(iota(16), {1, 1, 4, 4}, dt), Pool2dGeometry::square(2));
    check_values(r.out, {6, 8, 14, 16}, {1, 1, 2, 2});
    CHECK(r.indices.to_vector<int64_t>() == std::vector<int64_t>{5, 7, 13, 15});
    // 5x5, kernel 3, stride 2, padding 1 (odd sizes, windows clipped by the padding).
    const Tensor x5 = make({3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3},
                           {1, 1, 5, 5}, dt);
    r = raw::max_pool2d(x5, Pool2dGeometry::square(3, 2, 1));
    check_values(r.out, {9, 6, 5, 9, 9, 9, 6, 8, 8}, {1, 1, 3, 3});
    CHECK(r.indices.to_vector<int64_t>() == std::vector<int64_t>{5, 7, 4, 5, 12, 14, 20, 18, 18});
    // Dilation 2: taps (0,0) (0,2) (2,0) (2,2) of each window.
    Pool2dGeometry dil = Pool2dGeometry::square(2, 1);
    dil.dil_h = dil.dil_w = 2;
    r = raw::max_pool2d(x5, dil);
    check_values(r.out, {9, 8, 9, 9, 8, 6, 9, 8, 9}, {1, 1, 3, 3});
    // NaN wins over every number.
    r = raw::max_pool2d(make({1, NAN, 3, 4}, {1, 1, 2, 2}, dt), Pool2dGeometry::square(2));
    CHECK(std::isnan(values(r.out)[0]));
    CHECK(r.indices.to_vector<int64_t>() == std::vector<int64_t>{1});
  }
}

TEST_CASE("max_pool2d backward: gradients go to the maxima, overlapping windows add up") {
  const Tensor x = make(iota(9), {1, 1, 3, 3}, DType::f64);
  const Pool2dGeometry g = Pool2dGeometry::square(2, 1);
  raw::MaxPool2dResult r = raw::max_pool2d(x, g);
  const Tensor gy = make({1, 2, 3, 4}, {1, 1, 2, 2}, DType::f64);
  check_values(raw::max_pool2d_backward(gy, r.indices, x.shape(), g), {0, 0, 0, 0, 1, 2, 0, 3, 4}, {1, 1, 3, 3});
  // A single peak is the maximum of all four windows: its gradient is their sum.
  const Tensor peak = make({0, 0, 0, 0, 9, 0, 0, 0, 0}, {1, 1, 3, 3}, DType::f32);
  r = raw::max_pool2d(peak, g);
  check_values(raw::max_pool2d_backward(raw::to(gy, DType::f32), r.indices, peak.shape(), g),
               {0, 0, 0, 0, 10, 0, 0, 0, 0}, {1, 1, 3, 3});
  // CPU only: a CUDA kernel cannot report a bad index (cuda/cuda_backend.h, Note [CUDA kernel errors]).
  const Tensor bad = from_vector<double>({0, 0, 0, 99}, {1, 1, 2, 2}, DType::i64);
  const Tensor gy_cpu = raw::to(gy, Device::cpu());
  CHECK(contains(error_of([&] { raw::max_pool2d_backward(gy_cpu, bad, x.shape(), g); }), "outside"));
}

TEST_CASE("avg_pool2d: plain, padded with and without count_include_pad, backward") {
  for (DType dt : kFloatDTypes) {
    CAPTURE(dtype_name(dt));
    const Tensor x = make(iota(9), {1, 1, 3, 3}, dt);
    check_values(raw::avg_pool2d(x, Pool2dGeometry::square(2, 1)), {3, 4, 6, 7}, {1, 1, 2, 2});
    Pool2dGeometry g = Pool2dGeometry::square(3, 2, 1);
    check_values(raw::avg_pool2d(x, g), {12.0 / 9, 16.0 / 9, 24.0 / 9, 28.0 / 9}, {1, 1, 2, 2});
    g.count_include_pad = false;
    check_values(raw::avg_pool2d(x, g), {3, 4, 6, 7}, {1, 1, 2, 2});
  }
  // Each input receives 1/9 per window (padded zeros counted) that covers it.
  const Tensor gy = ones({1, 1, 2, 2}, opts(DType::f64));
  Pool2dGeometry g = Pool2dGeometry::square(3, 2, 1);
  check_values(raw::avg_pool2d_backward(gy, {1, 1, 3, 3}, g),
               {1.0 / 9, 2.0 / 9, 1.0 / 9, 2.0 / 9, 4.0 / 9, 2.0 / 9, 1.0 / 9, 2.0 / 9, 1.0 / 9}, {1, 1, 3, 3});
  g.count_include_pad = false;  // every window covers 4 inputs
  check_values(raw::avg_pool2d_backward(gy, {1, 1, 3, 3}, g),
               {0.25, 0.5, 0.25, 0.5, 1.0, 0.5, 0.25, 0.5, 0.25}, {1, 1, 3, 3});
  // Several planes and images: each (n, c) plane pools on its own.
  const Tensor multi = make(iota(2 * 3 * 2 * 2), {2, 3, 2, 2}, DType::f32);
  check_values(raw::avg_pool2d(multi, Pool2dGeometry::square(2)), {2.5, 6.5, 10.5, 14.5, 18.5, 22.5},
               {2, 3, 1, 1});
}

TEST_CASE("pooling rejects bad geometry with clear messages") {
  const Tensor x = zeros({1, 1, 4, 4}, opts());
  CHECK(contains(error_of([&] { raw::max_pool2d(x, Pool2dGeometry::square(2, 2, 2)); }), "half the kernel"));
  CHECK(contains(error_of([&] { raw::max_pool2d(x, Pool2dGeometry::square(5)); }), "does not fit"));
  CHECK(contains(error_of([&] { raw::avg_pool2d(zeros({4, 4}, opts()), Pool2dGeometry::square(2)); }), "4-D"));
  Pool2dGeometry dil = Pool2dGeometry::square(2);
  dil.dil_h = 2;
  CHECK(contains(error_of([&] { raw::avg_pool2d(x, dil); }), "no dilation"));
}

}  // namespace
}  // namespace zt::test
