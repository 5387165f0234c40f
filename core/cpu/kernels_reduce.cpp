// CPU reduction kernels: sum/mean/max/min over a set of dims, argmax/argmin over one dim.
// Floating sums accumulate in double (integers in int64), so f16/bf16/f32 results are the
// correctly rounded sum for any realistic length; a wider float out (f32/f64 for a 16-bit input)
// takes the same accumulation in the same order, rounded once to it. Work is split over outputs
// when there are many, otherwise over the reduced elements of each output (partials combined in
// a fixed order).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"

namespace zt::cpu {
namespace {

// How an input maps onto (output element, reduced element) pairs.
struct ReducePlan {
  Shape kept_shape, kept_strides;  // a's non-reduced dims, in order (out's row-major order)
  Shape red_shape, red_strides;    // a's reduced dims, collapsed where contiguous
  int64_t n_out = 1, n_red = 1;
  // The kept elements of each reduced position are one unit-stride run (summing (N, C) over N):
  // outputs are then accumulated a block of columns at a time, reading memory in order.
  bool columns = false;
};

ReducePlan make_plan(const Tensor& a, const std::vector<int>& dims) {
  ReducePlan plan;
  std::vector<bool> reduced(size_t(a.dim()), false);
  for (int d : dims) {
    ZT_CHECK(d >= 0 && d < a.dim(), "reduce: dim ", d, " out of range for shape ", shape_str(a.shape()));
    reduced[size_t(d)] = true;
  }
  Shape red_shape, red_strides;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (reduced[size_t(d)]) {
      red_shape.push_back(a.size(d));
      red_strides.push_back(a.stride(d));
    } else {
      plan.kept_shape.push_back(a.size(d));
      plan.kept_strides.push_back(a.stride(d));
    }
  }
  CollapsedLayout<1> collapsed = collapse_dims<1>(red_shape, {&red_strides});
  plan.red_shape = collapsed.shape;
  plan.red_strides = collapsed.strides[0];
  plan.n_out = shape_numel(plan.kept_shape);
  plan.n_red = shape_numel(red_shape);
  CollapsedLayout<1> kept = collapse_dims<1>(plan.kept_shape, {&plan.kept_strides});
  plan.columns = kept.shape.size() == 1 && kept.strides[0][0] == 1 && !plan.red_shape.empty();
  return plan;
}

int64_t kept_offset(const ReducePlan& plan, int64_t o) {
  int64_t off = 0;
  for (int64_t d = int64_t(plan.kept_shape.size()) - 1; d >= 0; --d) {
    off += (o % plan.kept_shape[size_t(d)]) * plan.kept_strides[size_t(d)];
    o /= plan.kept_shape[size_t(d)];
  }
  return off;
}

// Feeds the reduced elements [r0, r1) (row-major over red_shape) at base to acc(value).
template <typename T, typename Acc>
void accumulate_range(const T* base, const ReducePlan& plan, int64_t r0, int64_t r1, Acc& acc) {
  const int nd = int(plan.red_shape.size());
  if (nd == 0) {  // nothing reduced: the element itself
    if (r0 < r1) acc(base[0]);
    return;
  }
  std::vector<int64_t> index(size_t(nd), 0);
  int64_t offset = 0, rest = r0;
  for (int d = nd - 1; d >= 0; --d) {
    index[size_t(d)] = rest % plan.red_shape[size_t(d)];
    rest /= plan.red_shape[size_t(d)];
    offset += index[size_t(d)] * plan.red_strides[size_t(d)];
  }
  const int64_t inner = plan.red_shape[size_t(nd - 1)], inner_stride = plan.red_strides[size_t(nd - 1)];
  int64_t r = r0;
  while (r < r1) {
    const int64_t n = std::min(inner - index[size_t(nd - 1)], r1 - r);
    const T* p = base + offset;
    if (inner_stride == 1) {
      acc.run(p, n);
    } else {
      for (int64_t j = 0; j < n; ++j) acc(p[j * inner_stride]);
    }
    r += n;
    offset += n * inner_stride;
    index[size_t(nd - 1)] += n;
    for (int d = nd - 1; d > 0 && index[size_t(d)] == plan.red_shape[size_t(d)]; --d) {
      offset -= index[size_t(d)] * plan.red_strides[size_t(d)];
      index[size_t(d)] = 0;
      ++index[size_t(d - 1)];
      offset += plan.red_strides[size_t(d - 1)];
    }
  }
}

// Accumulators: add(x) takes an element, merge() combines partials, value() the result.
template <typename A>
struct SumAcc {
  A total = A(0);
  template <typename T> void operator()(T x) { total += cast_to<A>(x); }
  // A unit-stride run: four independent partial sums hide the add latency.
  template <typename T> void run(const T* p, int64_t n) {
    A s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      s0 += cast_to<A>(p[j]);
      s1 += cast_to<A>(p[j + 1]);
      s2 += cast_to<A>(p[j + 2]);
      s3 += cast_to<A>(p[j + 3]);
    }
    for (; j < n; ++j) s0 += cast_to<A>(p[j]);
    total += (s0 + s1) + (s2 + s3);
  }
  void merge(const SumAcc& o) { total += o.total; }
};

// Squares summed: each square formed in A (double for floating inputs).
template <typename A>
struct SumSquaresAcc {
  A total = A(0);
  template <typename T> void operator()(T x) {
    const A v = cast_to<A>(x);
    total += v * v;
  }
  // Four independent partial sums, as SumAcc, so the double adds' latency is hidden (ZeRO-Offload
  // takes its clipping norm over the host gradient shard with it).
  template <typename T> void run(const T* p, int64_t n) {
    A s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      const A v0 = cast_to<A>(p[j]), v1 = cast_to<A>(p[j + 1]), v2 = cast_to<A>(p[j + 2]), v3 = cast_to<A>(p[j + 3]);
      s0 += v0 * v0;
      s1 += v1 * v1;
      s2 += v2 * v2;
      s3 += v3 * v3;
    }
    for (; j < n; ++j) {
      const A v = cast_to<A>(p[j]);
      s0 += v * v;
    }
    total += (s0 + s1) + (s2 + s3);
  }
  void merge(const SumSquaresAcc& o) { total += o.total; }
};

template <typename C, bool kMax>
struct ExtremumAcc {
  C best = kMax ? (std::numeric_limits<C>::has_infinity ? -std::numeric_limits<C>::infinity()
                                                          : std::numeric_limits<C>::lowest())
                : (std::numeric_limits<C>::has_infinity ? std::numeric_limits<C>::infinity()
                                                          : std::numeric_limits<C>::max());
  void take(C x) {
    bool better = kMax ? x > best : x < best;
    if constexpr (std::is_floating_point_v<C>) better = better || std::isnan(x);  // NaN sticks
    if (better) best = x;
  }
  template <typename T> void operator()(T x) { take(cast_to<C>(x)); }
  template <typename T> void run(const T* p, int64_t n) {
    for (int64_t j = 0; j < n; ++j) take(cast_to<C>(p[j]));
  }
  void merge(const ExtremumAcc& o) { take(o.best); }
};

// Column path (ReducePlan::columns): threads take blocks of adjacent outputs and walk the
// reduced positions in memory order, feeding each output's accumulator.
template <typename T, typename O, typename Acc, typename Finish>
void reduce_columns(O* o, const T* base, const ReducePlan& plan, int threads, Finish finish) {
  const int64_t block = std::clamp<int64_t>(plan.n_out / threads, 16, 512);
  const int64_t blocks = (plan.n_out + block - 1) / block;
  const int nd = int(plan.red_shape.size());
  parallel_for(blocks, block * plan.n_red, [&](int64_t blk) {
    const int64_t c0 = blk * block, n = std::min(block, plan.n_out - c0);
    std::vector<Acc> acc(size_t(n), Acc{});
    std::vector<int64_t> index(size_t(nd), 0);
    int64_t offset = 0;
    for (int64_t r = 0; r < plan.n_red; ++r) {
      const T* p = base + offset + c0;
      for (int64_t j = 0; j < n; ++j) acc[size_t(j)](p[j]);
      for (int d = nd - 1; d >= 0; --d) {  // odometer over the reduced dims
        offset += plan.red_strides[size_t(d)];
        if (++index[size_t(d)] < plan.red_shape[size_t(d)]) break;
        offset -= index[size_t(d)] * plan.red_strides[size_t(d)];
        index[size_t(d)] = 0;
      }
    }
    for (int64_t j = 0; j < n; ++j) o[c0 + j] = convert_element<O>(finish(acc[size_t(j)]));
  });
}

// Runs acc over every output; stores finish(acc) into out (contiguous).
template <typename T, typename O, typename Acc, typename Finish>
void run_reduce(const Tensor& out, const Tensor& a, const ReducePlan& plan, Finish finish) {
  const T* base = typed_data<T>(a);
  O* o = typed_data<O>(out);
  const int threads = omp_get_max_threads();
  if (plan.columns && plan.n_out >= 16 * threads) {
    reduce_columns<T, O, Acc>(o, base, plan, threads, finish);
    return;
  }
  const bool split_outputs = plan.n_out >= 4 * threads || plan.n_red * plan.n_out < kParallelThreshold;
  if (split_outputs) {
    parallel_for(plan.n_out, plan.n_red, [&](int64_t i) {
      Acc acc;
      accumulate_range(base + kept_offset(plan, i), plan, 0, plan.n_red, acc);
      o[i] = convert_element<O>(finish(acc));
    });
    return;
  }
  for (int64_t i = 0; i < plan.n_out; ++i) {
    const T* b = base + kept_offset(plan, i);
    std::vector<Acc> partial(size_t(threads), Acc{});
    const int64_t per = (plan.n_red + threads - 1) / threads;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; ++t)
      accumulate_range(b, plan, std::min(plan.n_red, t * per), std::min(plan.n_red, (t + 1) * per),
                       partial[size_t(t)]);
    for (int t = 1; t < threads; ++t) partial[0].merge(partial[size_t(t)]);
    o[i] = convert_element<O>(finish(partial[0]));
  }
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& a, const std::vector<int>& dims) {
  ReducePlan plan = make_plan(a, dims);
  ZT_CHECK(out.numel() == plan.n_out && out.is_contiguous(), "reduce ", op_name(op),
           ": out must be contiguous with ", plan.n_out, " elements, found ", out.str());
  ZT_CHECK(plan.n_red > 0 || op == ReduceOp::sum || op == ReduceOp::sum_squares, "reduce ", op_name(op),
           ": cannot reduce an empty set of elements (shape ", shape_str(a.shape()), ")");
  ZT_DISPATCH_ALL(a.dtype(), "reduce", ([&]<typename T>() {
    using C = std::conditional_t<std::is_same_v<T, bool>, int, compute_t<T>>;
    using A = std::conditional_t<std::is_floating_point_v<C>, double, int64_t>;
    auto with_out = [&]<typename O>() {
      const double count = double(plan.n_red);
      switch (op) {
        case ReduceOp::sum:
          return run_reduce<T, O, SumAcc<A>>(out, a, plan, [](const SumAcc<A>& s) { return s.total; });
        case ReduceOp::mean:
          return run_reduce<T, O, SumAcc<A>>(out, a, plan, [count](const SumAcc<A>& s) {
            return double(s.total) / count;
          });
        case ReduceOp::sum_squares:
          if constexpr (std::is_floating_point_v<C>)
            return run_reduce<T, O, SumSquaresAcc<A>>(out, a, plan, [](const auto& s) { return s.total; });
          ZT_FAIL("reduce sum_squares: expected a floating dtype, found ", dtype_name(a.dtype()));
        case ReduceOp::max:
          return run_reduce<T, O, ExtremumAcc<C, true>>(out, a, plan, [](const auto& m) { return m.best; });
        case ReduceOp::min:
          return run_reduce<T, O, ExtremumAcc<C, false>>(out, a, plan, [](const auto& m) { return m.best; });
      }
    };
    const bool widened = op != ReduceOp::max && op != ReduceOp::min;
    if (out.dtype() == a.dtype()) {
      with_out.template operator()<T>();
    } else if (out.dtype() == DType::i64 && !is_floating(a.dtype())) {
      with_out.template operator()<int64_t>();  // integer sums widen, as numpy does
    } else if (widened && std::is_floating_point_v<C> && out.dtype() == DType::f64) {
      if constexpr (std::is_floating_point_v<C>) with_out.template operator()<double>();
    } else if (widened && std::is_floating_point_v<C> && out.dtype() == DType::f32) {
      if constexpr (std::is_floating_point_v<C>) with_out.template operator()<float>();
    } else {
      ZT_FAIL("reduce ", op_name(op), ": out dtype ", dtype_name(out.dtype()), " for input dtype ",
              dtype_name(a.dtype()), " (expected the input dtype, i64 for integer inputs, or f32/f64 for the sums "
              "of floating inputs)");
    }
  }));
}

void CpuBackend::arg_reduce(ArgReduceOp op, const Tensor& out, const Tensor& a, int dim) {
  ZT_CHECK(dim >= 0 && dim < a.dim(), "arg_reduce: dim ", dim, " out of range for shape ", shape_str(a.shape()));
  ZT_CHECK(out.dtype() == DType::i64, "arg_reduce: out must be i64, found ", dtype_name(out.dtype()));
  ReducePlan plan = make_plan(a, {dim});
  ZT_CHECK(out.numel() == plan.n_out && out.is_contiguous(), "arg_reduce: out must be contiguous with ",
           plan.n_out, " elements, found ", out.str());
  ZT_CHECK(plan.n_red > 0, "arg_reduce: dim ", dim, " of shape ", shape_str(a.shape()), " is empty");
  const bool want_max = op == ArgReduceOp::argmax;
  const int64_t len = a.size(dim), stride = a.stride(dim);
  ZT_DISPATCH_ALL(a.dtype(), "arg_reduce", ([&]<typename T>() {
    using C = std::conditional_t<std::is_same_v<T, bool>, int, compute_t<T>>;
    const T* base = typed_data<T>(a);
    int64_t* o = typed_data<int64_t>(out);
    parallel_for(plan.n_out, len, [&](int64_t i) {
      const T* p = base + kept_offset(plan, i);
      int64_t best_index = 0;
      C best = cast_to<C>(p[0]);
      for (int64_t j = 1; j < len; ++j) {
        const C x = cast_to<C>(p[j * stride]);
        bool better = want_max ? x > best : x < best;
        if constexpr (std::is_floating_point_v<C>) {
          if (std::isnan(best)) better = false;  // the first NaN wins, as in PyTorch
          else if (std::isnan(x)) better = true;
        }
        if (better) {
          best = x;
          best_index = j;
        }
      }
      o[i] = best_index;
    });
  }));
}

}  // namespace zt::cpu
