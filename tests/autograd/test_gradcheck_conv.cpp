// gradcheck (f64 finite differences) of conv2d with respect to input, weight and bias, and of
// max/avg pooling, over strides, padding, dilation, groups and odd sizes.
#include "helpers.h"

namespace zt {
namespace {

using test::expect_gradcheck;
using test::leaf;
using V = std::vector<Tensor>;

TEST_CASE("gradcheck: conv2d (x, weight, bias) over stride, padding, dilation and groups") {
  struct Case {
    Shape xs, ws;
    Conv2dGeometry g;
  };
  const Case cases[] = {
      // geometry: {stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups}
      {{2, 3, 5, 4}, {2, 3, 3, 2}, {}},
      {{1, 2, 7, 6}, {3, 2, 3, 3}, {2, 2, 1, 1, 1, 1, 1}},  // stride 2, padding 1
      {{2, 2, 7, 7}, {2, 2, 2, 3}, {1, 1, 0, 2, 2, 2, 1}},  // dilation 2, asymmetric padding
      {{1, 4, 5, 5}, {6, 2, 3, 3}, {1, 2, 1, 0, 1, 1, 2}},  // groups 2, asymmetric stride
      {{2, 3, 4, 4}, {3, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 3}},  // depthwise
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    CAPTURE(shape_str(c.xs));
    CAPTURE(shape_str(c.ws));
    const Conv2dGeometry g = c.g;
    Tensor x = leaf(c.xs, seed++), w = leaf(c.ws, seed++), b = leaf({c.ws[0]}, seed++);
    expect_gradcheck([g](const V& in) { return conv2d(in[0], in[1], in[2], g); }, {x, w, b});
    expect_gradcheck([g](const V& in) { return conv2d(in[0], in[1], Tensor(), g); }, {x, w});
  }
}

TEST_CASE("gradcheck: conv2d inside a small network (conv -> relu -> pool -> conv)") {
  Tensor x = leaf({2, 1, 8, 8}, 21), w1 = leaf({3, 1, 3, 3}, 22), w2 = leaf({2, 3, 2, 2}, 23);
  auto fn = [](const V& in) {
    Tensor h = relu(conv2d(in[0], in[1], Tensor(), {1, 1, 1, 1, 1, 1, 1}));
    h = max_pool2d(h, Pool2dGeometry::square(2));
    return conv2d(h, in[2]);
  };
  expect_gradcheck(fn, {x, w1, w2});
}

TEST_CASE("gradcheck: max_pool2d with stride, padding, dilation and overlapping windows") {
  Pool2dGeometry dil = Pool2dGeometry::square(2, 1);
  dil.dil_h = dil.dil_w = 2;
  Pool2dGeometry rect;
  rect.kernel_h = 3;
  rect.kernel_w = 2;
  rect.stride_h = 2;
  rect.stride_w = 1;
  rect.pad_h = 1;
  const Pool2dGeometry geoms[] = {Pool2dGeometry::square(2), Pool2dGeometry::square(3, 2, 1),
                                  Pool2dGeometry::square(2, 1), dil, rect};
  uint64_t seed = 31;
  for (const Pool2dGeometry& g : geoms) {
    CAPTURE(g.kernel_h);
    CAPTURE(g.stride_h);
    Tensor x = leaf({2, 3, 7, 6}, seed++);
    expect_gradcheck([g](const V& in) { return max_pool2d(in[0], g); }, {x});
  }
}

TEST_CASE("gradcheck: avg_pool2d with and without count_include_pad") {
  Pool2dGeometry rect;
  rect.kernel_h = 3;
  rect.kernel_w = 2;
  rect.stride_h = 2;
  rect.stride_w = 1;
  rect.pad_h = 1;
  uint64_t seed = 41;
  for (bool include : {true, false}) {
    for (Pool2dGeometry g : {Pool2dGeometry::square(2), Pool2dGeometry::square(3, 2, 1), rect}) {
      g.count_include_pad = include;
      CAPTURE(include);
      CAPTURE(g.kernel_h);
      Tensor x = leaf({2, 2, 7, 5}, seed++);
      expect_gradcheck([g](const V& in) { return avg_pool2d(in[0], g); }, {x});
    }
  }
}

TEST_CASE("conv2d records no graph when nothing requires grad") {
  Tensor x = randn({1, 1, 4, 4}, test::opts(DType::f64)), w = randn({1, 1, 2, 2}, test::opts(DType::f64));
  Tensor y = conv2d(x, w);
  CHECK_FALSE(requires_grad(y));
  CHECK(y.shape() == Shape{1, 1, 3, 3});
}

}  // namespace
}  // namespace zt
