// Differentiable elementwise ops and the arithmetic operators: each forward calls zt::raw and
// records a short backward closure. Broadcast operands get their gradient summed back (sum_to).
#include "autograd/ops_common.h"

namespace zt {

using autograd::Grads;
using autograd::make_node;
using autograd::needs_graph;
using autograd::Needs;
using autograd::reduce_grad;
using autograd::save_for_backward;
using autograd::save_if;

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = raw::add(a, b);
  if (!needs_graph(a, b)) return out;
  return make_node("add", std::move(out), {&a, &b},
                   [sa = a.shape(), sb = b.shape()](const Tensor& g, Needs need) -> Grads {
                     return {need[0] ? reduce_grad(g, sa) : Tensor(),
                             need[1] ? reduce_grad(g, sb) : Tensor()};
                   });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = raw::sub(a, b);
  if (!needs_graph(a, b)) return out;
  return make_node("sub", std::move(out), {&a, &b},
                   [sa = a.shape(), sb = b.shape()](const Tensor& g, Needs need) -> Grads {
                     return {need[0] ? reduce_grad(g, sa) : Tensor(),
                             need[1] ? reduce_grad(raw::unary(UnaryOp::neg, g), sb) : Tensor()};
                   });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = raw::mul(a, b);
  if (!needs_graph(a, b)) return out;
  Tensor keep_a = save_if(requires_grad(b), a), keep_b = save_if(requires_grad(a), b);
  return make_node("mul", std::move(out), {&a, &b},
                   [keep_a, keep_b, sa = a.shape(), sb = b.shape()](const Tensor& g, Needs need) -> Grads {
                     return {need[0] ? reduce_grad(raw::mul(g, keep_b), sa) : Tensor(),
                             need[1] ? reduce_grad(raw::mul(g, keep_a), sb) : Tensor()};
                   });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = raw::div(a, b);
  if (!needs_graph(a, b)) return out;
  // d(a/b)/db = -(a/b)/b: saves the output instead of a.
  Tensor keep_out = requires_grad(b) ? detach(out) : Tensor();
  return make_node("div", std::move(out), {&a, &b},
                   [keep_out, keep_b = save_for_backward(b), sa = a.shape(), sb = b.shape()](
                       const Tensor& g, Needs need) -> Grads {
                     Grads grads(2);
                     Tensor g_over_b = raw::div(g, keep_b);
                     if (need[0]) grads[0] = reduce_grad(g_over_b, sa);
                     if (need[1]) {
                       grads[1] = reduce_grad(raw::unary(UnaryOp::neg, raw::mul(g_over_b, keep_out)), sb);
                     }
                     return grads;
                   });
}

Tensor add(const Tensor& a, double s) {
  Tensor out = raw::add(a, s);
  if (!needs_graph(a)) return out;
  return make_node("add_scalar", std::move(out), {&a}, [](const Tensor& g, Needs) -> Grads { return {g}; });
}

Tensor sub(const Tensor& a, double s) { return add(a, -s); }

Tensor mul(const Tensor& a, double s) {
  Tensor out = raw::mul(a, s);
  if (!needs_graph(a)) return out;
  return make_node("mul_scalar", std::move(out), {&a},
                   [s](const Tensor& g, Needs) -> Grads { return {raw::mul(g, s)}; });
}

Tensor div(const Tensor& a, double s) { return mul(a, 1.0 / s); }

Tensor pow(const Tensor& a, double exponent) {
  Tensor out = raw::binary(BinaryOp::pow, a, exponent);
  if (!needs_graph(a)) return out;
  return make_node("pow", std::move(out), {&a},
                   [x = save_for_backward(a), exponent](const Tensor& g, Needs) -> Grads {
                     Tensor d = raw::mul(raw::binary(BinaryOp::pow, x, exponent - 1.0), exponent);
                     return {raw::mul(g, d)};
                   });
}

namespace {

// The share of the gradient of maximum/minimum(a, b) that goes to a: 1 where a wins, 1/2 on
// ties, 0 where b wins.
Tensor winner_weight(BinaryOp wins, const Tensor& a, const Tensor& b) {
  Tensor w = raw::to(raw::binary(wins, a, b), a.dtype());
  Tensor tie = raw::to(raw::binary(BinaryOp::eq, a, b), a.dtype());
  return raw::add(w, raw::mul(tie, 0.5));
}

Tensor min_max(BinaryOp op, BinaryOp wins, const char* name, const Tensor& a, const Tensor& b) {
  Tensor out = raw::binary(op, a, b);
  if (!needs_graph(a, b)) return out;
  return make_node(name, std::move(out), {&a, &b},
                   [wins, ka = save_for_backward(a), kb = save_for_backward(b)](const Tensor& g,
                                                                                Needs need) -> Grads {
                     Tensor w = winner_weight(wins, ka, kb);
                     Tensor ga = raw::mul(g, w);
                     Grads grads(2);
                     if (need[0]) grads[0] = reduce_grad(ga, ka.shape());
                     if (need[1]) grads[1] = reduce_grad(raw::sub(g, ga), kb.shape());
                     return grads;
                   });
}

}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return min_max(BinaryOp::maximum, BinaryOp::gt, "maximum", a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return min_max(BinaryOp::minimum, BinaryOp::lt, "minimum", a, b);
}

Tensor neg(const Tensor& a) {
  Tensor out = raw::unary(UnaryOp::neg, a);
  if (!needs_graph(a)) return out;
  return make_node("neg", std::move(out), {&a},
                   [](const Tensor& g, Needs) -> Grads { return {raw::unary(UnaryOp::neg, g)}; });
}

Tensor abs(const Tensor& a) {
  Tensor out = raw::unary(UnaryOp::abs, a);
  if (!needs_graph(a)) return out;
  return make_node("abs", std::move(out), {&a}, [x = save_for_backward(a)](const Tensor& g, Needs) -> Grads {
    // sign(x), 0 at 0 as PyTorch.
    Tensor sign = raw::sub(raw::to(raw::binary(BinaryOp::gt, x, 0.0), x.dtype()),
                           raw::to(raw::binary(BinaryOp::lt, x, 0.0), x.dtype()));
    return {raw::mul(g, sign)};
  });
}

Tensor exp(const Tensor& a) {
  Tensor out = raw::unary(UnaryOp::exp, a);
  if (!needs_graph(a)) return out;
  Tensor y = detach(out);
  return make_node("exp", std::move(out), {&a},
                   [y](const Tensor& g, Needs) -> Grads { return {raw::mul(g, y)}; });
}

Tensor log(const Tensor& a) {
  Tensor out = raw::unary(UnaryOp::log, a);
  if (!needs_graph(a)) return out;
  return make_node("log", std::move(out), {&a},
                   [x = save_for_backward(a)](const Tensor& g, Needs) -> Grads { return {raw::div(g, x)}; });
}

Tensor sqrt(const Tensor& a) {
  Tensor out = raw::unary(UnaryOp::sqrt, a);
  if (!needs_graph(a)) return out;
  Tensor y = detach(out);
  return make_node("sqrt", std::move(out), {&a},  // d sqrt(x) = 1 / (2 sqrt(x))
                   [y](const Tensor& g, Needs) -> Grads { return {raw::div(raw::mul(g, 0.5), y)}; });
}

Tensor rsqrt(const Tensor& a) {
  Tensor out = raw::unary(UnaryOp::rsqrt, a);
  if (!needs_graph(a)) return out;
  Tensor y = detach(out);
  return make_node("rsqrt", std::move(out), {&a},  // d x^(-1/2) = -x^(-1/2) / (2x)
                   [y, x = save_for_backward(a)](const Tensor& g, Needs) -> Grads {
                     return {raw::div(raw::mul(raw::mul(g, y), -0.5), x)};
                   });
}

Tensor square(const Tensor& a) {
  Tensor out = raw::unary(UnaryOp::square, a);
  if (!needs_graph(a)) return out;
  return make_node("square", std::move(out), {&a}, [x = save_for_backward(a)](const Tensor& g, Needs) -> Grads {
    return {raw::mul(raw::mul(g, x), 2.0)};
  });
}

namespace {

// Activations whose derivative the backend computes from the input (unary_backward).
Tensor activation(UnaryOp op, const char* name, const Tensor& a) {
  Tensor out = raw::unary(op, a);
  if (!needs_graph(a)) return out;
  return make_node(name, std::move(out), {&a}, [op, x = save_for_backward(a)](const Tensor& g, Needs) -> Grads {
    return {raw::unary_backward(op, g, x)};
  });
}

}  // namespace

Tensor tanh(const Tensor& a) { return activation(UnaryOp::tanh, "tanh", a); }
Tensor sigmoid(const Tensor& a) { return activation(UnaryOp::sigmoid, "sigmoid", a); }
Tensor relu(const Tensor& a) { return activation(UnaryOp::relu, "relu", a); }
Tensor gelu(const Tensor& a, bool tanh_approximation) {
  return tanh_approximation ? activation(UnaryOp::gelu_tanh, "gelu_tanh", a)
                            : activation(UnaryOp::gelu, "gelu", a);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor out = raw::where(cond, a, b);
  if (!needs_graph(a, b)) return out;
  return make_node("where", std::move(out), {&a, &b},
                   [c = save_for_backward(cond), sa = a.shape(), sb = b.shape()](const Tensor& g,
                                                                                 Needs need) -> Grads {
                     Tensor zero = scalar_tensor(0.0, TensorOptions(g.dtype(), g.device()));
                     Grads grads(2);
                     if (need[0]) grads[0] = reduce_grad(raw::where(c, g, zero), sa);
                     if (need[1]) grads[1] = reduce_grad(raw::where(c, zero, g), sb);
                     return grads;
                   });
}

// ---- comparisons and argmax: results carry no gradient ----
Tensor eq(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::ge, a, b); }
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) { return raw::argmax(a, dim, keepdim); }

// ---- operators ----
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return sub(a, s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return div(a, s); }
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }

Tensor operator-(double s, const Tensor& a) {
  Tensor out = raw::binary(BinaryOp::sub, a, s, /*scalar_first=*/true);
  if (!autograd::needs_graph(a)) return out;
  return make_node("rsub_scalar", std::move(out), {&a},
                   [](const Tensor& g, Needs) -> Grads { return {raw::unary(UnaryOp::neg, g)}; });
}

Tensor operator/(double s, const Tensor& a) {
  Tensor out = raw::binary(BinaryOp::div, a, s, /*scalar_first=*/true);
  if (!autograd::needs_graph(a)) return out;
  Tensor y = detach(out);
  return make_node("rdiv_scalar", std::move(out), {&a},  // d(s/x) = -(s/x)/x
                   [y, x = save_for_backward(a)](const Tensor& g, Needs) -> Grads {
                     return {raw::unary(UnaryOp::neg, raw::div(raw::mul(g, y), x))};
                   });
}

}  // namespace zt
