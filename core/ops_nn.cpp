// Raw neural-network ops: softmax / log_softmax over any dim (and backward), layer norm (and
// backward), cross-entropy (and backward), index_select / index_add_ / embedding, dropout.
// Row-wise kernels work on the last dim of contiguous data, so another dim is transposed last.
#include "core/ops.h"
#include "core/ops_util.h"

namespace zt::raw {
namespace {

// t with `dim` moved last (a view), or t itself when dim is already last.
Tensor dim_last(const Tensor& t, int dim) {
  return dim == t.dim() - 1 ? t : transpose(t, dim, t.dim() - 1);
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  detail::check_defined(op, {&x});
  detail::check_floating(op, x);
  if (x.dim() == 0) return reshape(softmax_impl(reshape(x, {1}), 0, log), {});
  const int d = normalize_dim(dim, x.dim());
  Tensor xt = contiguous(dim_last(x, d));
  Tensor out = Tensor::empty(xt.shape(), {x.dtype(), x.device()});
  if (out.numel() > 0) backend_for(x.device()).softmax(out, xt, log);
  return contiguous(dim_last(out, d));
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim, bool log) {
  const char* op = "softmax_backward";
  detail::check_same_device(op, {&grad_out, &out});
  detail::check_same_dtype(op, grad_out, out);
  detail::check_floating(op, out);
  ZT_CHECK(grad_out.shape() == out.shape(), op, ": grad_out shape ", shape_str(grad_out.shape()),
           " differs from the softmax output's ", shape_str(out.shape()));
  if (out.dim() == 0)
    return reshape(softmax_backward(reshape(grad_out, {1}), reshape(out, {1}), 0, log), {});
  const int d = normalize_dim(dim, out.dim());
  Tensor g = contiguous(dim_last(grad_out, d)), y = contiguous(dim_last(out, d));
  Tensor grad_in = Tensor::empty(y.shape(), {out.dtype(), out.device()});
  if (grad_in.numel() > 0) backend_for(out.device()).softmax_backward(grad_in, g, y, log);
  return contiguous(dim_last(grad_in, d));
}

namespace {

// weight/bias of a layer norm over C features: undefined, or (C) of x's dtype and device.
Tensor check_affine(const char* op, const char* what, const Tensor& p, const Tensor& x) {
  if (!p.defined()) return p;
  detail::check_same_device(op, {&x, &p});
  ZT_CHECK(p.dim() == 1 && p.size(0) == x.size(-1), op, ": ", what, " must have shape (",
           x.size(-1), ",) for input ", shape_str(x.shape()), ", found ", shape_str(p.shape()));
  detail::check_same_dtype(op, x, p);
  return contiguous(p);
}

// Row statistics are f32, or f64 for f64 inputs so that gradchecks keep their precision.
DType stats_dtype(DType x) { return x == DType::f64 ? DType::f64 : DType::f32; }

}  // namespace

LayerNormResult layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  detail::check_defined(op, {&x});
  detail::check_floating(op, x);
  ZT_CHECK(x.dim() >= 1 && x.size(-1) > 0, op, ": expected input (..., C) with C > 0, found ",
           shape_str(x.shape()));
  ZT_CHECK(eps >= 0.0, op, ": eps must be non-negative, found ", eps);
  const Tensor w = check_affine(op, "weight", weight, x), b = check_affine(op, "bias", bias, x);
  const Tensor xc = contiguous(x);
  const int64_t rows = x.numel() / x.size(-1);
  LayerNormResult r;
  r.y = Tensor::empty(x.shape(), {x.dtype(), x.device()});
  r.mean = Tensor::empty({rows}, {stats_dtype(x.dtype()), x.device()});
  r.rstd = Tensor::empty({rows}, {stats_dtype(x.dtype()), x.device()});
  if (rows > 0) backend_for(x.device()).layer_norm(r.y, r.mean, r.rstd, xc, w, b, eps);
  return r;
}

LayerNormGrads layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& weight, bool need_weight_grads,
                                   const Tensor& grad_add) {
  const char* op = "layer_norm_backward";
  detail::check_same_device(op, {&grad_y, &x, &mean, &rstd});
  detail::check_same_dtype(op, grad_y, x);
  detail::check_floating(op, x);
  ZT_CHECK(grad_y.shape() == x.shape(), op, ": grad_y shape ", shape_str(grad_y.shape()),
           " differs from input shape ", shape_str(x.shape()));
  ZT_CHECK(x.dim() >= 1 && x.size(-1) > 0, op, ": expected input (..., C) with C > 0, found ",
           shape_str(x.shape()));
  const int64_t rows = x.numel() / x.size(-1);
  ZT_CHECK(mean.numel() == rows && rstd.numel() == rows, op, ": mean and rstd must have ", rows,
           " elements (one per row of ", shape_str(x.shape()), "), found ", shape_str(mean.shape()),
           " and ", shape_str(rstd.shape()));
  const Tensor w = check_affine(op, "weight", weight, x);
  if (grad_add.defined()) {
    detail::check_same_device(op, {&grad_add, &x});
    ZT_CHECK(grad_add.shape() == x.shape() && grad_add.dtype() == x.dtype(), op, ": grad_add must have x's shape ",
             shape_str(x.shape()), " and dtype ", dtype_name(x.dtype()), ", found ", grad_add.str());
  }
  LayerNormGrads g;
  g.x = Tensor::empty(x.shape(), {x.dtype(), x.device()});
  if (need_weight_grads) {
    const Shape c{x.size(-1)};
    if (w.defined()) g.weight = Tensor::empty(c, {w.dtype(), x.device()});
    g.bias = Tensor::empty(c, {w.defined() ? w.dtype() : x.dtype(), x.device()});
  }
  if (rows == 0) {
    if (g.weight.defined()) fill_(g.weight, 0.0);
    if (g.bias.defined()) fill_(g.bias, 0.0);
    return g;
  }
  backend_for(x.device())
      .layer_norm_backward(g.x, g.weight, g.bias, contiguous(grad_y), contiguous(x), contiguous(mean),
                           contiguous(rstd), w, grad_add.defined() ? contiguous(grad_add) : Tensor());
  return g;
}

namespace {

void check_cross_entropy_inputs(const char* op, const Tensor& logits, const Tensor& target) {
  detail::check_same_device(op, {&logits, &target});
  detail::check_floating(op, logits);
  detail::check_index_dtype(op, target);
  ZT_CHECK(logits.dim() == 2, op, ": logits must be (N, C), found ", shape_str(logits.shape()));
  ZT_CHECK(target.dim() == 1 && target.size(0) == logits.size(0), op, ": target must be (",
           logits.size(0), ",) for logits ", shape_str(logits.shape()), ", found ",
           shape_str(target.shape()));
}

// Per-row losses are f32, or f64 for f64 logits (so f64 gradchecks keep full precision).
DType cross_entropy_loss_dtype(const Tensor& logits) {
  return logits.dtype() == DType::f64 ? DType::f64 : DType::f32;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index) {
  check_cross_entropy_inputs("cross_entropy", logits, target);
  Tensor loss = Tensor::empty({logits.size(0)}, {cross_entropy_loss_dtype(logits), logits.device()});
  if (loss.numel() > 0)
    backend_for(logits.device())
        .cross_entropy(loss, contiguous(logits), contiguous(target), ignore_index);
  return loss;
}

Tensor cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& target,
                              int64_t ignore_index) {
  const char* op = "cross_entropy_backward";
  check_cross_entropy_inputs(op, logits, target);
  detail::check_same_device(op, {&logits, &grad_loss});
  ZT_CHECK(grad_loss.dim() == 1 && grad_loss.size(0) == logits.size(0), op, ": grad_loss must be (",
           logits.size(0), ",), found ", shape_str(grad_loss.shape()));
  Tensor grad_logits = Tensor::empty(logits.shape(), {logits.dtype(), logits.device()});
  if (grad_logits.numel() > 0)
    backend_for(logits.device())
        .cross_entropy_backward(grad_logits, contiguous(to(grad_loss, cross_entropy_loss_dtype(logits))),
                                contiguous(logits), contiguous(target), ignore_index);
  return grad_logits;
}

Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index) {
  detail::check_same_device("index_select", {&a, &index});
  detail::check_index_dtype("index_select", index);
  ZT_CHECK(index.dim() <= 1, "index_select: index must be 0-D or 1-D, found ",
           shape_str(index.shape()));
  ZT_CHECK(a.dim() > 0, "index_select: cannot index a 0-dim tensor");
  const int d = normalize_dim(dim, a.dim());
  Shape shape = a.shape();
  shape[size_t(d)] = index.numel();
  Tensor out = Tensor::empty(shape, {a.dtype(), a.device()});
  if (index.numel() > 0 && a.size(d) == 0)
    ZT_FAIL("index_select: cannot select from empty dim ", d, " of shape ", shape_str(a.shape()));
  if (out.numel() > 0) backend_for(a.device()).index_select(out, a, d, index);
  return out;
}

void index_add_(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  detail::check_same_device("index_add_", {&out, &index, &src});
  detail::check_same_dtype("index_add_", out, src);
  detail::check_index_dtype("index_add_", index);
  ZT_CHECK(index.dim() <= 1, "index_add_: index must be 0-D or 1-D, found ",
           shape_str(index.shape()));
  ZT_CHECK(out.dim() > 0, "index_add_: cannot index a 0-dim tensor");
  const int d = normalize_dim(dim, out.dim());
  Shape expected = out.shape();
  expected[size_t(d)] = index.numel();
  ZT_CHECK(src.shape() == expected, "index_add_: src must have shape ", shape_str(expected),
           " for out ", shape_str(out.shape()), " and ", index.numel(), " indices, found ",
           shape_str(src.shape()));
  if (src.numel() == 0) return;
  const Tensor target = out.is_contiguous() ? out : contiguous(out);
  backend_for(out.device()).index_add(target, d, index, src);
  if (!target.same_impl(out)) copy_(out, target);
}

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  detail::check_defined("embedding", {&weight, &indices});
  ZT_CHECK(weight.dim() == 2, "embedding: weight must be (V, C), found ", shape_str(weight.shape()));
  Tensor rows = index_select(weight, 0, reshape(indices, {indices.numel()}));
  Shape shape = indices.shape();
  shape.push_back(weight.size(1));
  return view(rows, shape);
}

DropoutResult dropout(const Tensor& x, double p, Generator& gen) {
  detail::check_defined("dropout", {&x});
  detail::check_floating("dropout", x);
  ZT_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), found ", p);
  DropoutResult r;
  r.out = Tensor::empty(x.shape(), {x.dtype(), x.device()});
  r.mask = Tensor::empty(x.shape(), {DType::u8, x.device()});
  const uint64_t offset = gen.reserve(uint64_t(x.numel()));
  if (x.numel() > 0) backend_for(x.device()).dropout(r.out, r.mask, x, p, gen.seed(), offset);
  return r;
}

}  // namespace zt::raw
