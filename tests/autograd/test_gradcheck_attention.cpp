// gradcheck (f64 finite differences) of the fused scaled_dot_product_attention: causal and not,
// T = 1, odd T, head dims that are not powers of two, a custom scale, and q/k/v as the strided
// slices of one packed qkv tensor (the layout nn::CausalSelfAttention feeds it).
#include <string>

#include "helpers.h"

namespace zt {
namespace {

using test::expect_gradcheck;
using test::leaf;
using V = std::vector<Tensor>;

struct Case {
  int64_t B, H, T, D;
};

TEST_CASE("gradcheck: scaled_dot_product_attention over q, k and v") {
  const Case cases[] = {{1, 1, 1, 3}, {2, 2, 5, 3}, {1, 2, 7, 5}, {2, 1, 4, 8}};
  uint64_t seed = 100;
  for (const Case& c : cases) {
    for (bool causal : {true, false}) {
      CAPTURE(causal);
      INFO("B=", c.B, " H=", c.H, " T=", c.T, " D=", c.D);
      const Shape s{c.B, c.H, c.T, c.D};
      expect_gradcheck([=](const V& in) { return scaled_dot_product_attention(in[0], in[1], in[2], causal); },
                       {leaf(s, seed), leaf(s, seed + 1), leaf(s, seed + 2)});
      seed += 3;
    }
  }
}

TEST_CASE("gradcheck: scaled_dot_product_attention with a custom scale and one input differentiated") {
  const Shape s{1, 2, 6, 3};
  Tensor q = leaf(s, 1), k = leaf(s, 2), v = leaf(s, 3);
  expect_gradcheck([](const V& in) { return scaled_dot_product_attention(in[0], in[1], in[2], true, 0.9); },
                   {q, k, v});
  // Only k requires grad: the backward returns nothing for q and v.
  Tensor q_const = detach(q), v_const = detach(v);
  expect_gradcheck([&](const V& in) { return scaled_dot_product_attention(q_const, in[0], v_const); }, {k});
}

TEST_CASE("gradcheck: scaled_dot_product_attention on the slices of a packed (B, T, 3, H, D) qkv") {
  const int64_t B = 2, T = 5, H = 2, D = 3;
  Tensor qkv = leaf({B, T, 3, H, D}, 7);
  expect_gradcheck(
      [](const V& in) {
        // (B, T, 3, H, D) -> three (B, H, T, D) views with strides (T 3 H D, D, 3 H D, 1).
        auto part = [&](int64_t i) { return transpose(select(in[0], 2, i), 1, 2); };
        return scaled_dot_product_attention(part(0), part(1), part(2));
      },
      {qkv});
}

TEST_CASE("gradcheck: packed_qkv_attention over a (B, T, 3C) projection") {
  struct Packed {
    int64_t B, T, H, D;
  };
  for (const Packed& c : {Packed{1, 1, 1, 3}, Packed{2, 5, 2, 3}, Packed{1, 7, 3, 2}}) {
    for (bool causal : {true, false}) {
      INFO("B=", c.B, " T=", c.T, " H=", c.H, " D=", c.D, " causal=", causal);
      expect_gradcheck([&](const V& in) { return packed_qkv_attention(in[0], c.H, causal); },
                       {leaf({c.B, c.T, 3 * c.H * c.D}, 40 + uint64_t(c.T))});
    }
  }
}

}  // namespace
}  // namespace zt
