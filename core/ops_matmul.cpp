// Raw matrix products: matmul and matmul_acc_. Shapes are validated here and reduced to one
// 2-D or 3-D backend gemm on strided views (Note [GEMM operand layout] in core/cpu/gemm.cpp):
// leading dims are flattened into the rows when the memory allows, transposes stay views, and
// an operand is copied only when neither of its last two dims has unit stride.
#include <algorithm>
#include <string>

#include "core/ops.h"
#include "core/ops_util.h"

namespace zt::raw {
namespace {

struct MatmulPlan {
  Tensor a, b;      // 2-D or 3-D operands as stored (trans flags still apply)
  Shape gemm_out;   // (M, N) or (B, M, N)
  Shape out_shape;  // the result shape seen by the caller
};

std::string operand_str(const Tensor& t, bool trans) {
  return shape_str(t.shape()) + (trans ? "^T" : "");
}

Shape leading(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

// A matrix whose layout a strided GEMM can address: unit stride in one of its last two dims and
// rows (or columns) that do not overlap. Anything else becomes contiguous.
Tensor gemm_operand(const Tensor& t) {
  const int64_t rows = t.size(-2), cols = t.size(-1), rs = t.stride(-2), cs = t.stride(-1);
  const bool row_major = (cs == 1 || cols == 1) && (rows == 1 || rs >= cols);
  const bool col_major = (rs == 1 || rows == 1) && (cols == 1 || cs >= rows);
  return row_major || col_major ? t : contiguous(t);
}

// t (batch..., R, C) as (prod(batch), R, C): a view when the batch dims merge, else a copy.
Tensor as_batched(const Tensor& t, int64_t batch) {
  return reshape(t, {batch, t.size(-2), t.size(-1)});
}

MatmulPlan plan_matmul(const char* op, const Tensor& a, const Tensor& b, bool ta, bool tb) {
  detail::check_same_device(op, {&a, &b});
  detail::check_same_dtype(op, a, b);
  detail::check_floating(op, a);
  ZT_CHECK(a.dim() >= 2 && b.dim() >= 2, op, ": operands must have at least 2 dims, found ",
           operand_str(a, ta), " and ", operand_str(b, tb));
  const int64_t m = ta ? a.size(-1) : a.size(-2), k = ta ? a.size(-2) : a.size(-1);
  const int64_t kb = tb ? b.size(-1) : b.size(-2), n = tb ? b.size(-2) : b.size(-1);
  ZT_CHECK(k == kb, op, ": cannot multiply ", operand_str(a, ta), " by ", operand_str(b, tb),
           ": inner dims ", k, " and ", kb, " differ");
  MatmulPlan plan;
  const Shape a_batch = leading(a), b_batch = leading(b);
  Shape batch;
  if (b_batch.empty() || a_batch.empty()) {
    batch = b_batch.empty() ? a_batch : b_batch;
  } else {
    const size_t nd = std::max(a_batch.size(), b_batch.size());
    batch.resize(nd);
    for (size_t i = 0; i < nd; ++i) {
      const int64_t da = i + a_batch.size() < nd ? 1 : a_batch[i + a_batch.size() - nd];
      const int64_t db = i + b_batch.size() < nd ? 1 : b_batch[i + b_batch.size() - nd];
      ZT_CHECK(da == db || da == 1 || db == 1, op, ": batch dims of ", operand_str(a, ta), " and ",
               operand_str(b, tb), " do not broadcast");
      batch[i] = da == 1 ? db : da;
    }
  }
  plan.out_shape = batch;
  plan.out_shape.push_back(m);
  plan.out_shape.push_back(n);
  const int64_t nbatch = shape_numel(batch);

  if (batch.empty()) {  // (M, K) @ (K, N)
    plan.a = a;
    plan.b = b;
    plan.gemm_out = {m, n};
  } else if (b_batch.empty() && !ta &&
             detail::view_strides(a.shape(), a.strides(), {nbatch * m, k})) {
    // (..., M, K) @ (K, N) as one (prod * M, K) @ (K, N): the Linear layer's case.
    plan.a = view(a, {nbatch * m, k});
    plan.b = b;
    plan.gemm_out = {nbatch * m, n};
  } else {
    // A batch-free or batch-of-one operand is shared by every batch (gemm batch size 1).
    auto batched = [&](const Tensor& t, const Shape& t_batch) {
      if (shape_numel(t_batch) == 1) return as_batched(t, 1);
      Shape full = batch;
      full.push_back(t.size(-2));
      full.push_back(t.size(-1));
      return as_batched(expand(t, full), nbatch);
    };
    plan.a = batched(a, a_batch);
    plan.b = batched(b, b_batch);
    plan.gemm_out = {nbatch, m, n};
  }
  plan.a = gemm_operand(plan.a);
  plan.b = gemm_operand(plan.b);
  return plan;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  MatmulPlan plan = plan_matmul("matmul", a, b, trans_a, trans_b);
  Tensor out = Tensor::empty(plan.gemm_out, {a.dtype(), a.device()});
  if (out.numel() > 0)
    backend_for(a.device()).gemm(out, plan.a, plan.b, trans_a, trans_b, 1.0, 0.0);
  return view(out, plan.out_shape);
}

namespace {

// t (..., C) as (R, C), R the product of the leading dims (C may be 0): a view when they merge.
Tensor rows_of(const Tensor& t) {
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) rows *= t.size(d);
  return reshape(t, {rows, t.size(-1)});
}

// The same as an operand a GEMM can address (else a copy).
Tensor as_rows(const Tensor& t) { return gemm_operand(rows_of(t)); }

// a (..., X) and b (..., Y) with the same leading dims.
bool same_leading_dims(const Tensor& a, const Tensor& b) {
  return a.dim() >= 1 && a.dim() == b.dim() &&
         std::equal(a.shape().begin(), a.shape().end() - 1, b.shape().begin());
}

void check_linear_args(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  ZT_CHECK(x.defined() && weight.defined() && bias.defined(), op, ": x, weight and bias must all be defined");
  ZT_CHECK(x.dim() >= 1 && weight.dim() == 2 && bias.dim() == 1 && bias.size(0) == weight.size(0) &&
               x.size(-1) == weight.size(1),
           op, ": expected x (..., K), weight (N, K) and bias (N), found ", x.str(), ", ", weight.str(), " and ",
           bias.str());
  detail::check_same_device(op, {&x, &weight, &bias});
  detail::check_same_dtype(op, x, weight);
  detail::check_same_dtype(op, x, bias);
  detail::check_floating(op, x);
}

// x's shape with its last dim replaced by n.
Shape with_last(const Tensor& x, int64_t n) {
  Shape shape = x.shape();
  shape.back() = n;
  return shape;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual) {
  check_linear_args("linear", x, weight, bias);
  const Shape shape = with_last(x, weight.size(0));
  Tensor residual2;  // (R, N) contiguous, as gemm_bias takes it
  if (residual.defined()) {
    ZT_CHECK(residual.shape() == shape, "linear: expected a residual of the result's shape ", shape_str(shape),
             ", found ", residual.str());
    detail::check_same_device("linear", {&x, &residual});
    detail::check_same_dtype("linear", x, residual);
    residual2 = contiguous(rows_of(residual));
  }
  const Tensor x2 = as_rows(x);
  Tensor out = Tensor::empty({x2.size(0), weight.size(0)}, {x.dtype(), x.device()});
  if (out.numel() > 0)
    backend_for(x.device()).gemm_bias(out, x2, gemm_operand(weight), false, true, contiguous(bias), residual2);
  return view(out, shape);
}

LinearGelu linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_linear_args("linear_gelu", x, weight, bias);
  const Tensor x2 = as_rows(x);
  const TensorOptions options(x.dtype(), x.device());
  LinearGelu r{Tensor::empty({x2.size(0), weight.size(0)}, options), Tensor::empty({x2.size(0), weight.size(0)}, options)};
  if (r.out.numel() > 0)
    backend_for(x.device()).gemm_bias_gelu(r.out, r.pre, x2, gemm_operand(weight), false, true, contiguous(bias));
  const Shape shape = with_last(x, weight.size(0));
  return {view(r.out, shape), view(r.pre, shape)};
}

// The backends handle empty problems (no rows, K = 0): the sums are then zeros.
LinearGrads linear_weight_grads(const Tensor& grad_out, const Tensor& x) {
  const char* op = "linear_weight_grads";
  ZT_CHECK(grad_out.defined() && x.defined() && same_leading_dims(grad_out, x), op,
           ": grad_out (..., N) and x (..., K) must share their leading dims, found ", grad_out.str(), " and ",
           x.str());
  detail::check_same_device(op, {&grad_out, &x});
  detail::check_same_dtype(op, grad_out, x);
  detail::check_floating(op, x);
  const Tensor g2 = as_rows(grad_out), x2 = as_rows(x);
  const TensorOptions options(x.dtype(), x.device());
  LinearGrads r{Tensor::empty({g2.size(1), x2.size(1)}, options), Tensor::empty({g2.size(1)}, options)};
  backend_for(x.device()).gemm_row_sums(r.weight, r.bias, g2, x2, true, false);
  return r;
}

GeluLinearGrads gelu_linear_input_grads(const Tensor& grad_out, const Tensor& weight, const Tensor& pre) {
  const char* op = "gelu_linear_input_grads";
  ZT_CHECK(grad_out.defined() && weight.defined() && pre.defined() && weight.dim() == 2 &&
               same_leading_dims(grad_out, pre) && grad_out.size(-1) == weight.size(0) &&
               pre.size(-1) == weight.size(1),
           op, ": expected grad_out (..., N), weight (N, K) and pre (..., K), found ", grad_out.str(), ", ",
           weight.str(), " and ", pre.str());
  detail::check_same_device(op, {&grad_out, &weight, &pre});
  detail::check_same_dtype(op, grad_out, weight);
  detail::check_same_dtype(op, grad_out, pre);
  detail::check_floating(op, pre);
  const Tensor g2 = as_rows(grad_out), pre2 = contiguous(rows_of(pre));
  const TensorOptions options(pre.dtype(), pre.device());
  GeluLinearGrads r{Tensor::empty(pre2.shape(), options), Tensor::empty({pre.size(-1)}, options)};
  backend_for(pre.device()).gemm_gelu_backward(r.pre, r.bias, g2, gemm_operand(weight), false, false, pre2);
  return {view(r.pre, pre.shape()), r.bias};
}

void matmul_acc_(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                 double alpha, double beta) {
  MatmulPlan plan = plan_matmul("matmul_acc_", a, b, trans_a, trans_b);
  detail::check_same_device("matmul_acc_", {&out, &a});
  detail::check_same_dtype("matmul_acc_", out, a);
  ZT_CHECK(out.shape() == plan.out_shape, "matmul_acc_: out has shape ", shape_str(out.shape()),
           " but ", operand_str(a, trans_a), " @ ", operand_str(b, trans_b), " is ",
           shape_str(plan.out_shape));
  if (out.numel() == 0) return;
  // gemm writes a contiguous out; anything else accumulates in a contiguous copy.
  const Tensor target = out.is_contiguous() ? out : contiguous(out);
  backend_for(out.device())
      .gemm(view(target, plan.gemm_out), plan.a, plan.b, trans_a, trans_b, alpha, beta);
  if (!target.same_impl(out)) copy_(out, target);
}

}  // namespace zt::raw
