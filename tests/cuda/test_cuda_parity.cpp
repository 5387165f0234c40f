// CUDA parity: every op of core/ops.def on random inputs (never zeros), several shapes with odd
// sizes and non-contiguous views, each dtype, against the CPU kernel (DESIGN.md §8). The table
// below is the registry check: an op without a parity case fails the test. Without a GPU the
// test passes with zero checks (ZT_REQUIRE_GPU).
#include <doctest/doctest.h>

#include <map>
#include <sstream>

#include "core/attention_checks.h"
#include "core/backend.h"
#include "tests/cuda/parity_util.h"

namespace zt::test {
namespace {

constexpr DType kFloatTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};
const std::vector<Shape> kShapes = {{7}, {3, 5}, {4, 33, 17}, {2, 3, 4, 5}, {1031}};
constexpr Layout kLayouts[] = {Layout::contiguous, Layout::stepped, Layout::transposed, Layout::broadcast};

template <typename... Args>
std::string label(const Args&... args) {
  std::ostringstream os;
  ((os << args << ' '), ...);
  return os.str();
}

// Each case returns how many argument sets ran on both backends (those both rejected excluded).
int case_fill() {
  int ran = 0;
  for (DType dt : kAllDTypes)
    for (const Shape& s : kShapes)
      for (Layout l : {Layout::contiguous, Layout::stepped}) {
        Pair out = random_pair(s, dt, l, 1, 5, 3);
        ran += run_parity(label("fill", dtype_name(dt), shape_str(s), layout_name(l)),
                          [&](Backend& be, int i) { be.fill(out[i], 2.75); }, {&out}, rel_tolerance(dt));
      }
  return ran;
}

int case_arange() {
  int ran = 0;
  for (DType dt : kAllDTypes)
    for (Layout l : {Layout::contiguous, Layout::stepped}) {
      Pair out = random_pair({37}, dt, l, 1, 5, 4);
      ran += run_parity(label("arange", dtype_name(dt), layout_name(l)),
                        [&](Backend& be, int i) { be.arange(out[i], 1.5, 0.25); }, {&out}, rel_tolerance(dt));
    }
  return ran;
}

int case_random_uniform() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const Shape& s : kShapes) {
      Pair out = output_pair(s, dt);
      ran += run_parity(label("random_uniform", dtype_name(dt), shape_str(s)),
                        [&](Backend& be, int i) { be.random_uniform(out[i], 1234, 7, -2.0, 3.0); }, {&out},
                        rel_tolerance(dt));
    }
  return ran;
}

int case_random_normal() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const Shape& s : kShapes) {
      Pair out = output_pair(s, dt);
      ran += run_parity(label("random_normal", dtype_name(dt), shape_str(s)),
                        [&](Backend& be, int i) { be.random_normal(out[i], 99, 3, 0.5, 2.0); }, {&out},
                        // Box-Muller runs in f32 on both sides; logf/cosf differ by an ulp or two
                        // between glibc and CUDA, so f64 outputs get the f32 bound.
                        std::max(rel_tolerance(dt), rel_tolerance(DType::f32)) * 4);
    }
  return ran;
}

int case_copy() {
  int ran = 0;
  for (DType dst_t : kAllDTypes)
    for (DType src_t : kAllDTypes)
      for (Layout l : kLayouts) {
        const Shape s{4, 33, 17};
        Pair src = random_pair(s, src_t, l, is_floating(dst_t) ? -3 : 1, 9, 5);
        Pair dst = random_pair(s, dst_t, l == Layout::stepped ? Layout::stepped : Layout::contiguous, 1, 2, 6);
        ran += run_parity(label("copy", dtype_name(src_t), "->", dtype_name(dst_t), layout_name(l)),
                          [&](Backend& be, int i) { be.copy(dst[i], src[i]); }, {&dst},
                          std::max(rel_tolerance(dst_t), rel_tolerance(src_t)));
      }
  // Column slices on either side (the row path): q, k, v out of a fused projection and their
  // gradients back into one; an offset of 3 is misaligned (per-element path).
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::i64})
    for (int64_t col_offset : {0, 64, 3}) {
      Pair src = column_slice_pair(30, 64, 192, col_offset, dt, 1, 9, 7);
      Pair dst = output_pair({30, 64}, dt);
      ran += run_parity(label("copy from column slice", dtype_name(dt), col_offset),
                        [&](Backend& be, int i) { be.copy(dst[i], src[i]); }, {&dst}, rel_tolerance(dt));
      Pair into = column_slice_pair(30, 64, 192, col_offset, dt, 1, 9, 8);
      Pair from = random_pair({30, 64}, dt, Layout::contiguous, 1, 9, 9);
      ran += run_parity(label("copy into column slice", dtype_name(dt), col_offset),
                        [&](Backend& be, int i) { be.copy(into[i], from[i]); }, {&into}, rel_tolerance(dt));
    }
  return ran;
}

// pack_flat: numel random values (never zero) `start` elements into a random base, so a start
// that is not a multiple of 16 bytes misaligns the source against dst; (rows, numel / rows) when
// rows > 1 (sources of any shape).
struct PackRange {
  int64_t offset, numel, start = 0, rows = 1;
};

// dst (n) starts dst_start elements into a fresh buffer whose sides start apart, so a gap left
// unwritten shows.
int run_pack_flat(const std::string& what, DType dt, int64_t n, const std::vector<PackRange>& ranges,
                  int64_t dst_start = 0) {
  std::vector<Tensor> srcs[2];
  std::vector<int64_t> offsets;
  for (size_t k = 0; k < ranges.size(); ++k) {
    const PackRange& r = ranges[k];
    const Pair base = random_pair({r.start + r.numel}, dt, Layout::contiguous, 1, 9, 300 + k);
    const Shape shape = r.rows > 1 ? Shape{r.rows, r.numel / r.rows} : Shape{r.numel};
    const Shape strides = r.rows > 1 ? Shape{r.numel / r.rows, 1} : Shape{1};
    for (int s = 0; s < 2; ++s) srcs[s].push_back(Tensor::view_of(base[s].storage(), shape, strides, r.start, dt));
    offsets.push_back(r.offset);
  }
  const Pair buffer = output_pair({dst_start + n}, dt);
  Pair out;
  for (int s = 0; s < 2; ++s) out.side[s] = Tensor::view_of(buffer[s].storage(), {n}, {1}, dst_start, dt);
  return run_parity(what, [&](Backend& be, int i) { be.pack_flat(out[i], srcs[i], offsets); }, {&out}, 0.0);
}

int case_pack_flat() {
  int ran = 0;
  for (DType dt : kAllDTypes) {
    // Odd offsets, lengths and view starts (every word size of the kernel), touching ranges, a
    // matrix, ranges out of order, gaps at both ends.
    const std::vector<PackRange> odd = {{200, 333, 1}, {3, 17, 0},    {21, 1, 5},  {22, 100, 2, 4},
                                        {128, 64, 0},  {600, 401, 3}, {1001, 29, 7}};
    ran += run_pack_flat(label("pack_flat odd", dtype_name(dt)), dt, 1031, odd);
    ran += run_pack_flat(label("pack_flat odd, dst 3 elements in", dtype_name(dt)), dt, 1031, odd, 3);
    ran += run_pack_flat(label("pack_flat whole", dtype_name(dt)), dt, 1031, {{0, 1031, 1}});
    ran += run_pack_flat(label("pack_flat no sources", dtype_name(dt)), dt, 777, {});
  }
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::i64}) {
    // Ranges longer than one piece (256 KiB), aligned with dst or not, and a long gap.
    ran += run_pack_flat(label("pack_flat long", dtype_name(dt)), dt, 900'011,
                         {{8, 300'001, 0}, {300'013, 199'999, 3}, {500'017, 65'536, 1}, {800'000, 100'000, 0}});
    // 3000 sources of 1-13 elements with gaps of 0-4: more pieces than one launch's table.
    std::vector<PackRange> many;
    int64_t at = 0;
    for (int64_t k = 0; k < 3000; ++k) {
      at += k % 5;
      many.push_back({at, 1 + k % 13, k % 3});
      at += 1 + k % 13;
    }
    ran += run_pack_flat(label("pack_flat 3000 sources", dtype_name(dt)), dt, at + 9, many);
  }
  return ran;
}

constexpr BinaryOp kBinaryOps[] = {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div,
                                   BinaryOp::pow, BinaryOp::maximum, BinaryOp::minimum, BinaryOp::eq,
                                   BinaryOp::ne, BinaryOp::lt, BinaryOp::le, BinaryOp::gt, BinaryOp::ge};

DType binary_out_dtype(BinaryOp op, DType dt) { return is_comparison(op) ? DType::boolean : dt; }

int case_binary() {
  int ran = 0;
  for (BinaryOp op : kBinaryOps)
    for (DType dt : kAllDTypes)
      for (const Shape& s : kShapes)
        for (Layout la : kLayouts) {
          const Layout lb = la == Layout::broadcast ? Layout::contiguous : Layout::broadcast;
          const bool ints = !is_floating(dt);
          const double lo = op == BinaryOp::pow || ints ? 1 : -2, hi = op == BinaryOp::pow ? (ints ? 4 : 2) : 9;
          Pair a = random_pair(s, dt, la, lo, hi, 11), b = random_pair(s, dt, lb, lo, ints ? 4 : hi, 12);
          if (dt == DType::boolean && op == BinaryOp::div) {  // x / false is an error on the CPU
            cpu_be().fill(b[0], 1.0);
            gpu_be().fill(b[1], 1.0);
          }
          Pair out = output_pair(s, binary_out_dtype(op, dt));
          ran += run_parity(label("binary", op_name(op), dtype_name(dt), shape_str(s), layout_name(la)),
                            [&](Backend& be, int i) { be.binary(op, out[i], a[i], b[i]); }, {&out},
                            rel_tolerance(dt));
        }
  // The row path of cuda/elementwise.cuh (16-byte vectors along rows contiguous in every operand):
  // a column slice of a wider matrix plus a bias broadcast over the leading dims. Slices at an
  // offset of 3 elements are misaligned and must take the per-element path.
  for (BinaryOp op : {BinaryOp::add, BinaryOp::mul, BinaryOp::maximum, BinaryOp::lt})
    for (DType dt : kAllDTypes)
      for (int64_t col_offset : {0, 64, 3}) {
        const double lo = is_floating(dt) ? -2 : 1;
        Pair a = column_slice_pair(30, 64, 192, col_offset, dt, lo, 9, 13), b = bias_pair({30, 64}, dt, lo, 9, 14);
        Pair out = output_pair({30, 64}, binary_out_dtype(op, dt));
        ran += run_parity(label("binary rows", op_name(op), dtype_name(dt), "column offset", col_offset),
                          [&](Backend& be, int i) { be.binary(op, out[i], a[i], b[i]); }, {&out},
                          rel_tolerance(dt));
        Pair x = random_pair({6, 5, 64}, dt, Layout::contiguous, lo, 9, 15), bias = bias_pair({6, 5, 64}, dt, lo, 9, 16);
        Pair out3 = output_pair({6, 5, 64}, binary_out_dtype(op, dt));
        ran += run_parity(label("binary rows bias", op_name(op), dtype_name(dt)),
                          [&](Backend& be, int i) { be.binary(op, out3[i], bias[i], x[i]); }, {&out3},
                          rel_tolerance(dt));
      }
  return ran;
}

int case_binary_scalar() {
  int ran = 0;
  for (BinaryOp op : kBinaryOps)
    for (DType dt : kAllDTypes)
      for (double scalar : {2.0, 0.5})
        for (bool first : {false, true})
          for (Layout l : {Layout::contiguous, Layout::stepped}) {
            const Shape s{5, 67};
            Pair a = random_pair(s, dt, l, 1, 3, 13);
            if (dt == DType::boolean && op == BinaryOp::div) {  // s / false is an error on the CPU
              cpu_be().fill(a[0], 1.0);
              gpu_be().fill(a[1], 1.0);
            }
            Pair out = output_pair(s, binary_out_dtype(op, dt));
            ran += run_parity(label("binary_scalar", op_name(op), dtype_name(dt), scalar, first, layout_name(l)),
                              [&](Backend& be, int i) { be.binary_scalar(op, out[i], a[i], scalar, first); },
                              {&out}, rel_tolerance(dt));
          }
  return ran;
}

constexpr UnaryOp kUnaryOps[] = {UnaryOp::neg, UnaryOp::abs, UnaryOp::exp, UnaryOp::log, UnaryOp::sqrt,
                                 UnaryOp::rsqrt, UnaryOp::reciprocal, UnaryOp::square, UnaryOp::tanh,
                                 UnaryOp::sigmoid, UnaryOp::relu, UnaryOp::gelu, UnaryOp::gelu_tanh,
                                 UnaryOp::logical_not};

bool needs_positive(UnaryOp op) {
  return op == UnaryOp::log || op == UnaryOp::sqrt || op == UnaryOp::rsqrt;
}

int case_unary() {
  int ran = 0;
  for (UnaryOp op : kUnaryOps)
    for (DType dt : kAllDTypes)
      for (const Shape& s : kShapes)
        for (Layout l : {Layout::contiguous, Layout::stepped, Layout::transposed}) {
          const double lo = !is_floating(dt) ? 1 : needs_positive(op) ? 0.5 : -3;
          Pair a = random_pair(s, dt, l, lo, 3, 21);
          Pair out = output_pair(s, op == UnaryOp::logical_not ? DType::boolean : dt);
          ran += run_parity(label("unary", op_name(op), dtype_name(dt), shape_str(s), layout_name(l)),
                            [&](Backend& be, int i) { be.unary(op, out[i], a[i]); }, {&out}, rel_tolerance(dt));
        }
  return ran;
}

int case_unary_backward() {
  int ran = 0;
  for (UnaryOp op : {UnaryOp::relu, UnaryOp::gelu, UnaryOp::gelu_tanh, UnaryOp::tanh, UnaryOp::sigmoid,
                     UnaryOp::exp})
    for (DType dt : kAllDTypes)
      for (const Shape& s : kShapes)
        for (Layout l : {Layout::contiguous, Layout::stepped}) {
          Pair g = random_pair(s, dt, l, -2, 2, 31), x = random_pair(s, dt, Layout::contiguous, -3, 3, 32);
          Pair out = output_pair(s, dt);
          ran += run_parity(label("unary_backward", op_name(op), dtype_name(dt), shape_str(s), layout_name(l)),
                            [&](Backend& be, int i) { be.unary_backward(op, out[i], g[i], x[i]); }, {&out},
                            rel_tolerance(dt));
        }
  return ran;
}

int case_where() {
  int ran = 0;
  for (DType cond_t : {DType::boolean, DType::u8})
    for (DType dt : kAllDTypes)
      for (Layout l : kLayouts) {
        const Shape s{4, 33, 17};
        Pair cond = random_pair(s, cond_t == DType::u8 ? DType::boolean : cond_t, l, 0, 1, 41);
        if (cond_t == DType::u8) {  // a 0/1 u8 mask from the bool one
          Pair c8 = output_pair(s, DType::u8);
          cpu_be().copy(c8[0], cond[0]);
          gpu_be().copy(c8[1], cond[1]);
          cond = c8;
        }
        Pair a = random_pair(s, dt, l, 1, 5, 42), b = random_pair(s, dt, Layout::broadcast, 1, 5, 43);
        Pair out = output_pair(s, dt);
        ran += run_parity(label("where", dtype_name(cond_t), dtype_name(dt), layout_name(l)),
                          [&](Backend& be, int i) { be.where(out[i], cond[i], a[i], b[i]); }, {&out},
                          rel_tolerance(dt));
      }
  return ran;
}

Shape reduced_shape(const Shape& s, const std::vector<int>& dims) {
  Shape out = s;
  for (int d : dims) out[size_t(d)] = 1;
  return out;
}

int case_reduce() {
  int ran = 0;
  const std::vector<std::pair<Shape, std::vector<std::vector<int>>>> plans = {
      {{7}, {{0}, {}}},
      {{4, 33, 17}, {{0}, {2}, {0, 2}, {1}, {0, 1, 2}}},
      {{3, 5000}, {{1}, {0, 1}}},  // long rows: one block per output
      {{2, 70001}, {{1}, {0, 1}}},  // few long rows: split into chunks, then combined
      {{2, 70000}, {{1}}},          // the same in 16-byte vectors (rows start aligned)
      {{2, 3, 4, 5}, {{1, 3}, {0, 2, 3}}},
      // Column sums (a bias gradient): vectors of columns, rows split across blocks.
      {{6, 5, 64}, {{0, 1}}},
      {{4097, 24}, {{0}}},
      {{3, 2, 40}, {{0, 1}}},
      // More columns than the capped grid has warps (65536 blocks x 8): the finish loops.
      {{3, 524288 + 72}, {{0}}}};
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::mean, ReduceOp::max, ReduceOp::min, ReduceOp::sum_squares})
    for (DType dt : kAllDTypes)
      for (const auto& [s, dim_sets] : plans)
        for (const auto& dims : dim_sets)
          for (Layout l : {Layout::contiguous, Layout::stepped, Layout::transposed}) {
            Pair a = is_floating(dt) ? random_pair(s, dt, l, 0.5, 2, 51) : random_pair(s, dt, l, 1, 9, 51);
            const bool widen = op == ReduceOp::sum && !is_floating(dt);
            Pair out = output_pair(reduced_shape(s, dims), widen ? DType::i64 : dt);
            std::ostringstream ds;
            for (int d : dims) ds << d << ',';
            // f16/bf16 sums round once at the end on both sides; the relative bound holds.
            ran += run_parity(label("reduce", op_name(op), dtype_name(dt), shape_str(s), "dims", ds.str(),
                                    layout_name(l)),
                              [&](Backend& be, int i) { be.reduce(op, out[i], a[i], dims); }, {&out},
                              rel_tolerance(dt));
            // Sums of a 16-bit or f32 input into a wider float (ZeRO's gradient norm over the bf16
            // shard): the same double accumulation on both sides, rounded once to the wider dtype.
            const bool sums = op != ReduceOp::max && op != ReduceOp::min;
            if (!sums || !(dt == DType::bf16 || dt == DType::f16 || dt == DType::f32)) continue;
            for (DType wide : {DType::f32, DType::f64}) {
              if (wide == dt) continue;
              Pair wide_out = output_pair(reduced_shape(s, dims), wide);
              ran += run_parity(label("reduce", op_name(op), dtype_name(dt), "to", dtype_name(wide), shape_str(s),
                                      "dims", ds.str(), layout_name(l)),
                                [&](Backend& be, int i) { be.reduce(op, wide_out[i], a[i], dims); }, {&wide_out},
                                rel_tolerance(wide));
            }
          }
  return ran;
}

int case_arg_reduce() {
  int ran = 0;
  for (ArgReduceOp op : {ArgReduceOp::argmax, ArgReduceOp::argmin})
    for (DType dt : kAllDTypes)
      for (const Shape& s : std::vector<Shape>{{7}, {4, 33, 17}, {3, 500}})
        for (int dim = 0; dim < int(s.size()); ++dim)
          for (Layout l : {Layout::contiguous, Layout::stepped}) {
            Pair a = random_pair(s, dt, l, 1, 9, 61);  // integer types have ties: first index wins
            Pair out = output_pair(reduced_shape(s, {dim}), DType::i64);
            ran += run_parity(label("arg_reduce", int(op), dtype_name(dt), shape_str(s), dim, layout_name(l)),
                              [&](Backend& be, int i) { be.arg_reduce(op, out[i], a[i], dim); }, {&out}, 0.0);
          }
  return ran;
}

int case_gemm() {
  int ran = 0;
  const int64_t m = 17, n = 9, k = 33;
  for (DType dt : kFloatTypes)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (int64_t batch : {0, 3})  // 0: 2-D operands
          for (Layout l : {Layout::contiguous, Layout::transposed, Layout::stepped})
            for (double beta : {0.0, 0.5}) {
              auto shape = [&](int64_t r, int64_t c, bool batched) {
                return batched ? Shape{batch, r, c} : Shape{r, c};
              };
              Pair a = random_pair(shape(ta ? k : m, ta ? m : k, batch > 0), dt, l, -1, 1, 71);
              Pair b = random_pair(shape(tb ? n : k, tb ? k : n, false), dt, Layout::contiguous, -1, 1, 72);
              Pair out = random_pair(shape(m, n, batch > 0), dt, Layout::contiguous, -1, 1, 73);
              ran += run_parity(label("gemm", dtype_name(dt), ta, tb, batch, layout_name(l), beta),
                                [&](Backend& be, int i) { be.gemm(out[i], a[i], b[i], ta, tb, 1.5, beta); },
                                {&out}, rel_tolerance(dt) * 2);
            }
  return ran;
}

// Random values, or (an empty shape, which random_pair cannot fill) an empty pair.
Pair operand_pair(const Shape& s, DType dt, double lo, double hi, uint64_t seed) {
  return shape_numel(s) == 0 ? output_pair(s, dt) : random_pair(s, dt, Layout::contiguous, lo, hi, seed);
}

// The bias epilogue (cuBLASLt, 16-byte aligned bias, f16/bf16 and TF32) and the fallback that
// writes the bias rows first: odd and aligned widths, a bias at an odd element offset, K = 0.
int case_gemm_bias() {
  int ran = 0;
  struct Dims {
    int64_t m, n, k;
  };
  for (DType dt : kFloatTypes)
    for (bool tf32 : {false, true})
      for (const Dims& d : {Dims{17, 9, 33}, Dims{33, 64, 40}, Dims{5, 24, 0}})
        for (bool ta : {false, true})
          for (bool offset_bias : {false, true}) {
            if (tf32 && dt != DType::f32) continue;
            Pair a = operand_pair(ta ? Shape{d.k, d.m} : Shape{d.m, d.k}, dt, -1, 1, 74);
            Pair b = operand_pair({d.n, d.k}, dt, -1, 1, 75);  // a weight (N, K)
            Pair storage = random_pair({d.n + 1}, dt, Layout::contiguous, -1, 1, 76);
            Pair bias;
            for (int i = 0; i < 2; ++i)
              bias.side[i] = Tensor::view_of(storage[i].storage(), {d.n}, {1}, storage[i].offset() + (offset_bias ? 1 : 0),
                                             dt);
            Pair out = output_pair({d.m, d.n}, dt);
            cuda::set_allow_tf32(tf32);
            ran += run_parity(
                label("gemm_bias", dtype_name(dt), tf32 ? "tf32" : "", d.m, d.n, d.k, ta, offset_bias),
                [&](Backend& be, int i) { be.gemm_bias(out[i], a[i], b[i], ta, true, bias[i], Tensor()); }, {&out},
                tf32 ? 5e-3 : rel_tolerance(dt) * 2);
            cuda::set_allow_tf32(false);
          }
  // With a residual (cuBLASLt's C apart from D, beta 1; or added to the bias rows first): odd and
  // aligned widths, K = 0, and the residual at an odd element offset after an aligned call of the
  // same shape (the plan cache must not reuse an algorithm chosen for an aligned C).
  for (DType dt : kFloatTypes)
    for (bool tf32 : {false, true})
      for (const Dims& d : {Dims{17, 9, 33}, Dims{33, 64, 40}, Dims{5, 24, 0}, Dims{96, 200, 72}})
        for (bool ta : {false, true})
          for (bool offset_residual : {false, true}) {
            if (tf32 && dt != DType::f32) continue;
            Pair a = operand_pair(ta ? Shape{d.k, d.m} : Shape{d.m, d.k}, dt, -1, 1, 174);
            Pair b = operand_pair({d.n, d.k}, dt, -1, 1, 175);
            Pair bias = random_pair({d.n}, dt, Layout::contiguous, -1, 1, 176);
            Pair storage = random_pair({d.m * d.n + 1}, dt, Layout::contiguous, -2, 2, 177);
            Pair residual;
            for (int i = 0; i < 2; ++i)
              residual.side[i] = Tensor::view_of(storage[i].storage(), {d.m, d.n}, {d.n, 1},
                                                 storage[i].offset() + (offset_residual ? 1 : 0), dt);
            Pair out = output_pair({d.m, d.n}, dt);
            cuda::set_allow_tf32(tf32);
            ran += run_parity(
                label("gemm_bias residual", dtype_name(dt), tf32 ? "tf32" : "", d.m, d.n, d.k, ta, offset_residual),
                [&](Backend& be, int i) { be.gemm_bias(out[i], a[i], b[i], ta, true, bias[i], residual[i]); },
                {&out, &storage}, tf32 ? 5e-3 : rel_tolerance(dt) * 2);
            cuda::set_allow_tf32(false);
          }
  return ran;
}

// The GELU and bias-gradient epilogues (cuBLASLt when operands are 16-byte aligned and the
// width a multiple of 8; separate kernels otherwise, as for the odd widths and f64 here). The
// GELU backward's fused gradient-and-sums kernel takes widths of whole 16-byte vectors, in row
// chunks of 32: 200 rows end in a partial chunk.
struct EpilogueDims {
  int64_t m, n, k;
};
const EpilogueDims kEpilogueDims[] = {{17, 9, 33}, {64, 48, 40}, {6, 16, 0}, {200, 136, 24}};


int case_gemm_bias_gelu() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const EpilogueDims& d : kEpilogueDims)
      for (bool ta : {false, true}) {
        Pair a = operand_pair(ta ? Shape{d.k, d.m} : Shape{d.m, d.k}, dt, -1, 1, 77);
        Pair b = operand_pair({d.n, d.k}, dt, -1, 1, 78);
        Pair bias = random_pair({d.n}, dt, Layout::contiguous, -1, 1, 79);
        Pair out = output_pair({d.m, d.n}, dt), pre = output_pair({d.m, d.n}, dt);
        ran += run_parity(label("gemm_bias_gelu", dtype_name(dt), d.m, d.n, d.k, ta),
                          [&](Backend& be, int i) { be.gemm_bias_gelu(out[i], pre[i], a[i], b[i], ta, true, bias[i]); },
                          {&out, &pre}, rel_tolerance(dt) * 2);
      }
  return ran;
}

int case_gemm_gelu_backward() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const EpilogueDims& d : kEpilogueDims) {
      Pair g = operand_pair({d.m, d.k}, dt, -1, 1, 80);  // grad_out (M, K) @ weight (K, N)
      Pair w = operand_pair({d.k, d.n}, dt, -1, 1, 81);
      Pair pre = random_pair({d.m, d.n}, dt, Layout::contiguous, -3, 3, 82);
      Pair grad_pre = output_pair({d.m, d.n}, dt), grad_bias = output_pair({d.n}, dt);
      ran += run_parity(
          label("gemm_gelu_backward", dtype_name(dt), d.m, d.n, d.k),
          [&](Backend& be, int i) { be.gemm_gelu_backward(grad_pre[i], grad_bias[i], g[i], w[i], false, false, pre[i]); },
          {&grad_pre, &grad_bias}, rel_tolerance(dt) * 4);
    }
  return ran;
}

int case_gemm_row_sums() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const EpilogueDims& d : kEpilogueDims)
      for (bool ta : {true, false}) {  // true: a weight gradient g^T x
        Pair a = operand_pair(ta ? Shape{d.k, d.m} : Shape{d.m, d.k}, dt, -1, 1, 83);
        Pair b = operand_pair({d.k, d.n}, dt, -1, 1, 84);
        Pair out = output_pair({d.m, d.n}, dt), sums = output_pair({d.m}, dt);
        ran += run_parity(label("gemm_row_sums", dtype_name(dt), d.m, d.n, d.k, ta),
                          [&](Backend& be, int i) { be.gemm_row_sums(out[i], sums[i], a[i], b[i], ta, false); },
                          {&out, &sums}, rel_tolerance(dt) * 4);
      }
  return ran;
}

const std::vector<Shape> kRowShapes = {{3, 7}, {5, 300}, {2, 3, 1500}, {1, 5000}, {300, 64}};

int case_softmax() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const Shape& s : kRowShapes)
      for (bool log : {false, true}) {
        Pair x = random_pair(s, dt, Layout::contiguous, -4, 4, 81);
        Pair out = output_pair(s, dt);
        ran += run_parity(label("softmax", dtype_name(dt), shape_str(s), log),
                          [&](Backend& be, int i) { be.softmax(out[i], x[i], log); }, {&out}, rel_tolerance(dt));
      }
  return ran;
}

int case_softmax_backward() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const Shape& s : kRowShapes)
      for (bool log : {false, true}) {
        Pair x = random_pair(s, dt, Layout::contiguous, -4, 4, 82), g = random_pair(s, dt, Layout::contiguous, -1, 1, 83);
        Pair y = output_pair(s, dt);  // the forward output, computed on the CPU and mirrored
        cpu_be().softmax(y[0], x[0], log);
        gpu_be().copy(y.side[1], y[0]);
        Pair out = output_pair(s, dt);
        ran += run_parity(label("softmax_backward", dtype_name(dt), shape_str(s), log),
                          [&](Backend& be, int i) { be.softmax_backward(out[i], g[i], y[i], log); }, {&out},
                          rel_tolerance(dt) * 2);
      }
  return ran;
}

int case_layer_norm() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const Shape& s : kRowShapes)
      for (bool affine : {false, true})
        for (DType stat_t : {DType::f32, DType::f64}) {
          const Shape c{s.back()};
          const int64_t rows = shape_numel(s) / s.back();
          Pair x = random_pair(s, dt, Layout::contiguous, -2, 3, 91);
          Pair w = affine ? random_pair(c, dt, Layout::contiguous, 0.5, 1.5, 92) : undefined_pair();
          Pair b = affine ? random_pair(c, dt, Layout::contiguous, -1, 1, 93) : undefined_pair();
          Pair y = output_pair(s, dt), mean = output_pair({rows}, stat_t), rstd = output_pair({rows}, stat_t);
          ran += run_parity(label("layer_norm", dtype_name(dt), shape_str(s), affine, dtype_name(stat_t)),
                            [&](Backend& be, int i) { be.layer_norm(y[i], mean[i], rstd[i], x[i], w[i], b[i], 1e-5); },
                            {&y, &mean, &rstd}, std::max(rel_tolerance(dt), 1e-5) * 2);
        }
  return ran;
}

int case_layer_norm_backward() {
  int ran = 0;
  std::vector<Shape> shapes = kRowShapes;
  shapes.push_back({700, 768});  // a warp per row (bf16), the staged kernel (f32)
  for (DType dt : kFloatTypes)
    for (const Shape& s : shapes)
      for (bool affine : {false, true})
        for (int mode = 0; mode < 3; ++mode) {  // 0: grad_x only, 1: with grad_w/grad_b, 2: and grad_add
          const bool want_wb = mode > 0, with_add = mode == 2 || (mode == 0 && affine);
          const Shape c{s.back()};
          const int64_t rows = shape_numel(s) / s.back();
          Pair x = random_pair(s, dt, Layout::contiguous, -2, 3, 94), gy = random_pair(s, dt, Layout::contiguous, -1, 1, 95);
          Pair add = with_add ? random_pair(s, dt, Layout::contiguous, -1, 1, 97) : undefined_pair();
          Pair w = affine ? random_pair(c, dt, Layout::contiguous, 0.5, 1.5, 96) : undefined_pair();
          Pair mean = output_pair({rows}, DType::f32), rstd = output_pair({rows}, DType::f32), y = output_pair(s, dt);
          cpu_be().layer_norm(y[0], mean[0], rstd[0], x[0], w[0], Tensor(), 1e-5);
          gpu_be().copy(mean.side[1], mean[0]);
          gpu_be().copy(rstd.side[1], rstd[0]);
          Pair gx = output_pair(s, dt);
          Pair gw = want_wb ? output_pair(c, dt) : undefined_pair(), gb = want_wb ? output_pair(c, dt) : undefined_pair();
          std::vector<const Pair*> outs{&gx};
          if (want_wb) outs.insert(outs.end(), {&gw, &gb});
          ran += run_parity(label("layer_norm_backward", dtype_name(dt), shape_str(s), affine, want_wb, with_add),
                            [&](Backend& be, int i) {
                              be.layer_norm_backward(gx[i], gw[i], gb[i], gy[i], x[i], mean[i], rstd[i], w[i], add[i]);
                            },
                            outs, std::max(rel_tolerance(dt), 1e-5) * 4);
        }
  return ran;
}

// Targets in [0, C) with every third row set to ignore_index.
Pair random_targets(int64_t n, int64_t c, DType dt, int64_t ignore_index) {
  Tensor f = random_host({n}, DType::f32, 0, double(c) - 0.5, 101);  // (0, 1] draws: stay below c
  Tensor t = Tensor::empty({n}, dt);
  cpu_be().copy(t, f);
  for (int64_t r = 0; r < n; r += 3) {
    Tensor one = Tensor::view_of(t.storage(), {1}, {1}, r, dt);
    cpu_be().fill(one, double(ignore_index));
  }
  Pair p;
  p.side[0] = t;
  p.side[1] = mirror_on_gpu(t);
  return p;
}

int case_cross_entropy() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (DType it : {DType::i32, DType::i64})
      for (int64_t c : {5, 1000, 50304}) {  // 50304: GPT-2's padded vocabulary (split and staged rows)
        const int64_t n = 37;
        Pair logits = random_pair({n, c}, dt, Layout::contiguous, -3, 3, 102);
        Pair target = random_targets(n, c, it, -100);
        Pair loss = output_pair({n}, dt == DType::f64 ? DType::f64 : DType::f32);
        ran += run_parity(label("cross_entropy", dtype_name(dt), dtype_name(it), c),
                          [&](Backend& be, int i) { be.cross_entropy(loss[i], logits[i], target[i], -100); },
                          {&loss}, dt == DType::f64 ? 1e-10 : std::max(rel_tolerance(dt), 1e-5) * 2);
      }
  return ran;
}

int case_cross_entropy_backward() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (DType it : {DType::i32, DType::i64})
      for (int64_t c : {5, 1000, 50304})
        for (Layout gl : {Layout::contiguous, Layout::broadcast}) {
          const int64_t n = 37;
          Pair logits = random_pair({n, c}, dt, Layout::contiguous, -3, 3, 103);
          Pair target = random_targets(n, c, it, 2);  // ignore_index 2: a valid class, ignored
          Pair grad_loss = random_pair({n}, dt == DType::f64 ? DType::f64 : DType::f32, gl, 0.5, 1.5, 104);
          Pair grad = output_pair({n, c}, dt);
          ran += run_parity(label("cross_entropy_backward", dtype_name(dt), dtype_name(it), c, layout_name(gl)),
                            [&](Backend& be, int i) {
                              be.cross_entropy_backward(grad[i], grad_loss[i], logits[i], target[i], 2);
                            },
                            {&grad}, rel_tolerance(dt) * 2);
        }
  return ran;
}

// Index values in [0, limit) with repeats.
Pair random_index(int64_t n, int64_t limit, DType dt, uint64_t seed) {
  Tensor f = random_host({n}, DType::f32, 0, double(limit) - 0.5, seed);  // stay below limit
  Tensor t = Tensor::empty({n}, dt);
  cpu_be().copy(t, f);
  Pair p;
  p.side[0] = t;
  p.side[1] = mirror_on_gpu(t);
  return p;
}

int case_index_select() {
  int ran = 0;
  const Shape s{6, 9, 5};
  for (DType dt : kAllDTypes)
    for (DType it : {DType::i32, DType::i64})
      for (int dim = 0; dim < 3; ++dim)
        for (Layout l : {Layout::contiguous, Layout::stepped, Layout::transposed}) {
          Pair a = random_pair(s, dt, l, 1, 9, 111);
          Pair index = random_index(11, s[size_t(dim)], it, 112);
          Shape os = s;
          os[size_t(dim)] = 11;
          Pair out = output_pair(os, dt);
          ran += run_parity(label("index_select", dtype_name(dt), dtype_name(it), dim, layout_name(l)),
                            [&](Backend& be, int i) { be.index_select(out[i], a[i], dim, index[i]); }, {&out},
                            rel_tolerance(dt));
        }
  return ran;
}

int case_index_add() {
  int ran = 0;
  const Shape s{6, 9, 5};
  for (DType dt : kAllDTypes)
    for (DType it : {DType::i32, DType::i64})
      for (int dim = 0; dim < 3; ++dim)
        for (Layout l : {Layout::contiguous, Layout::stepped}) {
          Pair out = random_pair(s, dt, Layout::contiguous, 1, 3, 121);
          Pair index = random_index(11, s[size_t(dim)], it, 122);
          Shape ss = s;
          ss[size_t(dim)] = 11;
          Pair src = random_pair(ss, dt, l, 1, 3, 123);
          ran += run_parity(label("index_add", dtype_name(dt), dtype_name(it), dim, layout_name(l)),
                            [&](Backend& be, int i) { be.index_add(out[i], dim, index[i], src[i]); }, {&out},
                            rel_tolerance(dt) * 2);
        }
  // Whole rows of 16-byte vectors along dim 0 (the embedding backward's vector path): 2-D and
  // 3-D, 37 indices into 7 rows (every row repeated), and rows of one vector.
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (const Shape& s : {Shape{7, 24}, Shape{7, 2, 16}, Shape{7, 8}}) {
      Pair out = random_pair(s, dt, Layout::contiguous, 1, 3, 124);
      Pair index = random_index(37, s[0], DType::i64, 125);
      Shape ss = s;
      ss[0] = 37;
      Pair src = random_pair(ss, dt, Layout::contiguous, 1, 3, 126);
      ran += run_parity(label("index_add rows", dtype_name(dt), shape_str(s)),
                        [&](Backend& be, int i) { be.index_add(out[i], 0, index[i], src[i]); }, {&out},
                        rel_tolerance(dt) * 4);
    }
  return ran;
}

int case_dropout() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const Shape& s : kShapes)
      for (double p : {0.1, 0.5})
        for (Layout l : {Layout::contiguous, Layout::stepped, Layout::transposed}) {
          Pair x = random_pair(s, dt, l, -2, 2, 131);
          Pair out = output_pair(s, dt), mask = output_pair(s, DType::u8);
          ran += run_parity(label("dropout", dtype_name(dt), shape_str(s), p, layout_name(l)),
                            [&](Backend& be, int i) { be.dropout(out[i], mask[i], x[i], p, 555, 17); },
                            {&out, &mask}, rel_tolerance(dt));
        }
  return ran;
}

// 2-D convolution and pooling: odd sizes, stride/padding/dilation/groups, each float dtype.
// cuDNN and im2col sum the products in different orders, so the bounds allow a few roundings
// of the accumulated value (f16/bf16 results are rounded once more from f32).
struct ConvCase {
  Shape xs, ws;
  Conv2dGeometry g;
};
const ConvCase kConvCases[] = {
    // geometry: {stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups}
    {{2, 3, 7, 5}, {4, 3, 3, 2}, {2, 1, 1, 2, 1, 2, 1}},
    {{3, 4, 9, 8}, {6, 2, 3, 3}, {1, 2, 1, 0, 2, 1, 2}},
    {{2, 6, 5, 5}, {6, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 6}},
    {{4, 1, 28, 28}, {8, 1, 5, 5}, {1, 1, 2, 2, 1, 1, 1}},  // MNIST-like first layer
};

double conv_tolerance(DType dt) { return dt == DType::f32 ? 1e-4 : rel_tolerance(dt) * 4; }

Shape conv_out_shape(const ConvCase& c) {
  return {c.xs[0], c.ws[0], conv_output_size(c.xs[2], c.ws[2], c.g.stride_h, c.g.pad_h, c.g.dil_h),
          conv_output_size(c.xs[3], c.ws[3], c.g.stride_w, c.g.pad_w, c.g.dil_w)};
}

int case_conv2d_forward() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const ConvCase& c : kConvCases)
      for (bool with_bias : {false, true}) {
        Pair x = random_pair(c.xs, dt, Layout::contiguous, -2, 2, 161);
        Pair w = random_pair(c.ws, dt, Layout::contiguous, -1, 1, 162);
        Pair b = with_bias ? random_pair({c.ws[0]}, dt, Layout::contiguous, -1, 1, 163) : undefined_pair();
        Pair out = output_pair(conv_out_shape(c), dt);
        ran += run_parity(label("conv2d_forward", dtype_name(dt), shape_str(c.xs), shape_str(c.ws), with_bias),
                          [&](Backend& be, int i) { be.conv2d_forward(out[i], x[i], w[i], b[i], c.g); }, {&out},
                          conv_tolerance(dt));
      }
  return ran;
}

int case_conv2d_backward_input() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const ConvCase& c : kConvCases) {
      Pair gy = random_pair(conv_out_shape(c), dt, Layout::contiguous, -2, 2, 164);
      Pair w = random_pair(c.ws, dt, Layout::contiguous, -1, 1, 165);
      Pair gx = output_pair(c.xs, dt);
      ran += run_parity(label("conv2d_backward_input", dtype_name(dt), shape_str(c.xs), shape_str(c.ws)),
                        [&](Backend& be, int i) { be.conv2d_backward_input(gx[i], gy[i], w[i], c.g); }, {&gx},
                        conv_tolerance(dt));
    }
  return ran;
}

int case_conv2d_backward_weight() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const ConvCase& c : kConvCases) {
      Pair gy = random_pair(conv_out_shape(c), dt, Layout::contiguous, -2, 2, 166);
      Pair x = random_pair(c.xs, dt, Layout::contiguous, -2, 2, 167);
      Pair gw = output_pair(c.ws, dt);
      ran += run_parity(label("conv2d_backward_weight", dtype_name(dt), shape_str(c.xs), shape_str(c.ws)),
                        [&](Backend& be, int i) { be.conv2d_backward_weight(gw[i], gy[i], x[i], c.g); }, {&gw},
                        conv_tolerance(dt) * 2);
    }
  return ran;
}

std::vector<Pool2dGeometry> pool_geometries(bool with_dilation) {
  Pool2dGeometry rect;
  rect.kernel_h = 3;
  rect.kernel_w = 2;
  rect.stride_h = 2;
  rect.stride_w = 1;
  rect.pad_h = 1;
  std::vector<Pool2dGeometry> gs = {Pool2dGeometry::square(2), Pool2dGeometry::square(3, 2, 1),
                                    Pool2dGeometry::square(2, 1), rect};
  if (with_dilation) {
    Pool2dGeometry dil = Pool2dGeometry::square(2, 1);
    dil.dil_h = dil.dil_w = 2;
    gs.push_back(dil);
  }
  return gs;
}

Shape pool_out_shape(const Shape& xs, const Pool2dGeometry& g) {
  return {xs[0], xs[1], conv_output_size(xs[2], g.kernel_h, g.stride_h, g.pad_h, g.dil_h),
          conv_output_size(xs[3], g.kernel_w, g.stride_w, g.pad_w, g.dil_w)};
}

const Shape kPoolShape{3, 5, 9, 7};

int case_max_pool2d() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const Pool2dGeometry& g : pool_geometries(true)) {
      Pair x = random_pair(kPoolShape, dt, Layout::contiguous, -2, 2, 171);
      const Shape os = pool_out_shape(kPoolShape, g);
      Pair out = output_pair(os, dt), idx = output_pair(os, DType::i64);
      ran += run_parity(label("max_pool2d", dtype_name(dt), g.kernel_h, g.stride_h, g.pad_h, g.dil_h),
                        [&](Backend& be, int i) { be.max_pool2d(out[i], idx[i], x[i], g); }, {&out, &idx},
                        rel_tolerance(dt));
    }
  return ran;
}

int case_max_pool2d_backward() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const Pool2dGeometry& g : pool_geometries(true)) {
      // Indices from the CPU forward, so both sides scatter the same positions.
      Tensor xh = random_host(kPoolShape, dt, -2, 2, 172);
      const Shape os = pool_out_shape(kPoolShape, g);
      Tensor out_h = Tensor::empty(os, dt), idx_h = Tensor::empty(os, DType::i64);
      cpu_be().max_pool2d(out_h, idx_h, xh, g);
      Pair idx;
      idx.side[0] = idx_h;
      idx.side[1] = mirror_on_gpu(idx_h);
      Pair gy = random_pair(os, dt, Layout::contiguous, -2, 2, 173);
      Pair gx = output_pair(kPoolShape, dt);
      ran += run_parity(label("max_pool2d_backward", dtype_name(dt), g.kernel_h, g.stride_h, g.pad_h, g.dil_h),
                        [&](Backend& be, int i) { be.max_pool2d_backward(gx[i], gy[i], idx[i], g); }, {&gx},
                        rel_tolerance(dt) * 2);
    }
  return ran;
}

int case_avg_pool2d() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (Pool2dGeometry g : pool_geometries(false))
      for (bool include : {true, false}) {
        g.count_include_pad = include;
        Pair x = random_pair(kPoolShape, dt, Layout::contiguous, -2, 2, 174);
        Pair out = output_pair(pool_out_shape(kPoolShape, g), dt);
        ran += run_parity(label("avg_pool2d", dtype_name(dt), g.kernel_h, g.stride_h, g.pad_h, include),
                          [&](Backend& be, int i) { be.avg_pool2d(out[i], x[i], g); }, {&out},
                          rel_tolerance(dt) * 2);
      }
  return ran;
}

int case_avg_pool2d_backward() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (Pool2dGeometry g : pool_geometries(false))
      for (bool include : {true, false}) {
        g.count_include_pad = include;
        Pair gy = random_pair(pool_out_shape(kPoolShape, g), dt, Layout::contiguous, -2, 2, 175);
        Pair gx = output_pair(kPoolShape, dt);
        ran += run_parity(label("avg_pool2d_backward", dtype_name(dt), g.kernel_h, g.stride_h, g.pad_h, include),
                          [&](Backend& be, int i) { be.avg_pool2d_backward(gx[i], gy[i], g); }, {&gx},
                          rel_tolerance(dt) * 2);
      }
  return ran;
}

// The buffers of one Adam step at element offset `shift` into a fresh storage (shift 1 leaves
// the 16-byte vector path for the scalar one). v stays positive, as a second moment.
Pair adam_buffer(int64_t n, DType dt, int64_t shift, double lo, double hi, uint64_t seed) {
  const Pair base = random_pair({n + shift}, dt, Layout::contiguous, lo, hi, seed);
  Pair p;
  for (int s = 0; s < 2; ++s) p.side[s] = Tensor::view_of(base[s].storage(), {n}, {1}, shift, dt);
  return p;
}

int case_adam_step() {
  int ran = 0;
  struct Types {
    DType param, grad;
  };
  const Types types[] = {{DType::f32, DType::f32}, {DType::f32, DType::bf16}, {DType::f32, DType::f16},
                         {DType::f64, DType::f64}};
  // The gradient factors (core/adam_scalars.h): none; 1 / loss scale and a clipping coefficient,
  // neither a power of two, so each f32 product rounds; a clipping coefficient alone.
  const GradientScale scales[] = {{}, {.unscale = 1.0 / 1000, .clip = 0.37}, {.clip = 0.81}};
  for (const Types& t : types)
    for (int64_t n : {7, 1031, 4099})
      for (int64_t shift : {0, 1})
        for (int kind = 0; kind < 3; ++kind)
          for (int with_copy = 0; with_copy < 3; ++with_copy)  // none, bf16, f16
            for (const GradientScale& scale : scales) {
              const DType copy_t = with_copy == 1 ? DType::bf16 : DType::f16;
              Pair p = adam_buffer(n, t.param, shift, -2, 2, 181), g = adam_buffer(n, t.grad, shift, -1, 1, 182);
              Pair m = adam_buffer(n, t.param, shift, -0.5, 0.5, 183), v = adam_buffer(n, t.param, shift, 0.01, 1, 184);
              Pair copy = with_copy == 0 ? undefined_pair() : output_pair({n}, copy_t);
              const double wd = kind == 0 ? 0.0 : 0.05;
              ran += run_parity(label("adam_step", dtype_name(t.param), dtype_name(t.grad), n, shift, kind,
                                      with_copy == 0 ? "no-copy" : dtype_name(copy_t), "unscale", scale.unscale, "clip",
                                      scale.clip),
                                [&](Backend& be, int i) {
                                  be.adam_step(p[i], g[i], m[i], v[i], copy[i], 1e-2, 0.9, 0.95, 1e-8, wd, kind == 2, 3,
                                               scale);
                                },
                                with_copy == 0 ? std::vector<const Pair*>{&p, &m, &v}
                                                           : std::vector<const Pair*>{&p, &m, &v, &copy},
                                // Both sides round the same operations in the same order (the CUDA
                                // kernel contracts no FMA), so they agree bit for bit: tolerance 0.
                                0.0);
            }
  return ran;
}

// Fused attention, (B, H, T, D): T = 1 and T cut mid-tile (17, 33, 77, 129, 257), D = 32, 64,
// 128, one padded on the tensor-core path (40) and one without 16-byte rows (20: element
// loads). Layouts: separate contiguous tensors, or q/k/v as the strided slices of one
// (B, T, 3, H, D) qkv buffer with outputs in (B, T, H, D) memory (what nn::CausalSelfAttention
// passes), that buffer also shifted by one element (misaligned: the element-load path at D = 64).
// The sums run in another order on the GPU, and the tensor cores take P and dS rounded to 16 bits:
// dQ = sum_j dS_ij K_j cancels (sum_j dS_ij = 0), so its bf16 error reaches ~10 units of bf16's
// rounding (4e-2 in a warp-level emulation of the kernels on these shapes); an indexing or
// masking error is O(1).
struct AttentionCase {
  int64_t B, H, T, D;
};
// T = 256 (a multiple of 128) gives cuDNN's fused attention the backward on every cuDNN 9.
const AttentionCase kAttentionCases[] = {{2, 3, 1, 32}, {1, 2, 17, 64}, {2, 2, 129, 128}, {1, 2, 257, 64},
                                         {1, 2, 77, 40}, {2, 1, 33, 20},  {1, 2, 256, 64}};
enum class AttentionLayout { separate, packed, packed_shifted };
constexpr AttentionLayout kAttentionLayouts[] = {AttentionLayout::separate, AttentionLayout::packed,
                                                 AttentionLayout::packed_shifted};
const char* attention_layout_name(AttentionLayout l) {
  return l == AttentionLayout::separate ? "separate" : l == AttentionLayout::packed ? "packed" : "packed+1";
}

double attention_tolerance(DType dt, bool backward) {
  switch (dt) {
    case DType::f32: return 1e-4;
    case DType::f64: return 1e-10;
    case DType::f16: return backward ? 1e-2 : 5e-3;
    default: return backward ? 8e-2 : 2e-2;  // bf16
  }
}

// A (B, H, T, D) view of `base` on both sides.
Pair heads_view(const Pair& base, const AttentionCase& c, const Shape& strides, int64_t offset) {
  Pair p;
  for (int s = 0; s < 2; ++s)
    p.side[s] = Tensor::view_of(base[s].storage(), {c.B, c.H, c.T, c.D}, strides, offset, base.dtype());
  return p;
}

// q, k, v in the given layout, random in [-2, 2).
std::vector<Pair> attention_inputs(const AttentionCase& c, DType dt, AttentionLayout l, uint64_t seed) {
  if (l == AttentionLayout::separate) {
    const Shape s{c.B, c.H, c.T, c.D};
    return {random_pair(s, dt, Layout::contiguous, -2, 2, seed), random_pair(s, dt, Layout::contiguous, -2, 2, seed + 1),
            random_pair(s, dt, Layout::contiguous, -2, 2, seed + 2)};
  }
  const int64_t shift = l == AttentionLayout::packed_shifted ? 1 : 0, row = 3 * c.H * c.D;
  const Pair base = random_pair({c.B * c.T * row + shift}, dt, Layout::contiguous, -2, 2, seed);
  const Shape strides{c.T * row, c.D, row, 1};  // (B, T, 3, H, D) memory seen as (B, H, T, D)
  return {heads_view(base, c, strides, shift), heads_view(base, c, strides, shift + c.H * c.D),
          heads_view(base, c, strides, shift + 2 * c.H * c.D)};
}

// An output in the layout's memory order: (B, H, T, D), or (B, T, H, D) seen as (B, H, T, D).
Pair attention_output(const AttentionCase& c, DType dt, AttentionLayout l) {
  if (l == AttentionLayout::separate) return output_pair({c.B, c.H, c.T, c.D}, dt);
  const Pair base = output_pair({c.B, c.T, c.H, c.D}, dt);
  return heads_view(base, c, {c.T * c.H * c.D, c.D, c.H * c.D, 1}, 0);
}

std::string attention_label(const char* op, DType dt, const AttentionCase& c, AttentionLayout l, bool causal) {
  return label(op, dtype_name(dt), "B H T D", c.B, c.H, c.T, c.D, attention_layout_name(l), causal ? "causal" : "full");
}

int case_attention_forward() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const AttentionCase& c : kAttentionCases)
      for (AttentionLayout l : kAttentionLayouts)
        for (bool causal : {true, false}) {
          const std::vector<Pair> in = attention_inputs(c, dt, l, 191);
          Pair out = attention_output(c, dt, l), lse = output_pair({c.B, c.H, c.T}, attention_lse_dtype(dt));
          const double scale = 1.0 / std::sqrt(double(c.D));
          ran += run_parity(attention_label("attention_forward", dt, c, l, causal),
                            [&](Backend& be, int i) {
                              be.attention_forward(out[i], lse[i], in[0][i], in[1][i], in[2][i], scale, causal);
                            },
                            {&out, &lse}, attention_tolerance(dt, false));
        }
  return ran;
}

int case_attention_backward() {
  int ran = 0;
  for (DType dt : kFloatTypes)
    for (const AttentionCase& c : kAttentionCases)
      for (AttentionLayout l : kAttentionLayouts)
        for (bool causal : {true, false}) {
          const std::vector<Pair> in = attention_inputs(c, dt, l, 192);
          const Pair grad_out = random_pair({c.B, c.H, c.T, c.D}, dt, Layout::contiguous, -1, 1, 195);
          const double scale = 1.0 / std::sqrt(double(c.D));
          // The forward's out and lse, computed on the CPU and mirrored, so both sides start equal.
          Pair out = attention_output(c, dt, l), lse = output_pair({c.B, c.H, c.T}, attention_lse_dtype(dt));
          cpu_be().attention_forward(out[0], lse[0], in[0][0], in[1][0], in[2][0], scale, causal);
          gpu_be().copy(out.side[1], out[0]);
          gpu_be().copy(lse.side[1], lse[0]);
          Pair gq = attention_output(c, dt, l), gk = attention_output(c, dt, l), gv = attention_output(c, dt, l);
          // With T = 1 each row's one key has weight 1: dQ and dK are exactly 0 on the CPU while the
          // GPU's rounding leaves ~1e-7, which no relative bound accepts. They must be small instead
          // (the inputs are O(1), so a wrong kernel gives O(1) values).
          const bool one_key = c.T == 1;
          const double tol = attention_tolerance(dt, true);
          const std::string what = attention_label("attention_backward", dt, c, l, causal);
          const bool compared = run_parity(
              what,
              [&](Backend& be, int i) {
                be.attention_backward(gq[i], gk[i], gv[i], grad_out[i], in[0][i], in[1][i], in[2][i], out[i], lse[i],
                                      scale, causal);
              },
              one_key ? std::vector<const Pair*>{&gv} : std::vector<const Pair*>{&gq, &gk, &gv}, tol);
          ran += compared;
          if (compared && one_key)
            for (const Pair* g : {&gq, &gk})
              for (double x : host_values((*g)[1])) CHECK_MESSAGE(std::fabs(x) <= tol, what << ": " << x << " for 0");
        }
  return ran;
}

// The registry: one parity case per op of core/ops.def.
const std::map<OpId, int (*)()>& parity_cases() {
  static const std::map<OpId, int (*)()> cases = {
      {OpId::fill, case_fill},
      {OpId::arange, case_arange},
      {OpId::random_uniform, case_random_uniform},
      {OpId::random_normal, case_random_normal},
      {OpId::copy, case_copy},
      {OpId::pack_flat, case_pack_flat},
      {OpId::binary, case_binary},
      {OpId::binary_scalar, case_binary_scalar},
      {OpId::unary, case_unary},
      {OpId::unary_backward, case_unary_backward},
      {OpId::where, case_where},
      {OpId::reduce, case_reduce},
      {OpId::arg_reduce, case_arg_reduce},
      {OpId::gemm, case_gemm},
      {OpId::gemm_bias, case_gemm_bias},
      {OpId::gemm_bias_gelu, case_gemm_bias_gelu},
      {OpId::gemm_gelu_backward, case_gemm_gelu_backward},
      {OpId::gemm_row_sums, case_gemm_row_sums},
      {OpId::softmax, case_softmax},
      {OpId::softmax_backward, case_softmax_backward},
      {OpId::layer_norm, case_layer_norm},
      {OpId::layer_norm_backward, case_layer_norm_backward},
      {OpId::cross_entropy, case_cross_entropy},
      {OpId::cross_entropy_backward, case_cross_entropy_backward},
      {OpId::index_select, case_index_select},
      {OpId::index_add, case_index_add},
      {OpId::dropout, case_dropout},
      {OpId::attention_forward, case_attention_forward},
      {OpId::attention_backward, case_attention_backward},
      {OpId::adam_step, case_adam_step},
      {OpId::conv2d_forward, case_conv2d_forward},
      {OpId::conv2d_backward_input, case_conv2d_backward_input},
      {OpId::conv2d_backward_weight, case_conv2d_backward_weight},
      {OpId::max_pool2d, case_max_pool2d},
      {OpId::max_pool2d_backward, case_max_pool2d_backward},
      {OpId::avg_pool2d, case_avg_pool2d},
      {OpId::avg_pool2d_backward, case_avg_pool2d_backward},
  };
  return cases;
}

}  // namespace

TEST_CASE("CUDA parity: every op of core/ops.def matches the CPU kernel") {
  ZT_REQUIRE_GPU();
  for (int id = 0; id < kNumOps; ++id) {
    const auto it = parity_cases().find(OpId(id));
    CHECK_MESSAGE(it != parity_cases().end(), "op " << op_name(OpId(id)) << " has no CUDA parity case");
    if (it == parity_cases().end()) continue;
    const int ran = it->second();
    MESSAGE(std::string(op_name(OpId(id))) << ": " << ran << " argument sets compared");
    CHECK_MESSAGE(ran > 0, "op " << op_name(OpId(id)) << ": every argument set was rejected");
  }
}

TEST_CASE("CUDA copy moves values between the host and the device, with casts and views") {
  ZT_REQUIRE_GPU();
  for (Layout l : kLayouts) {
    const Pair src = random_pair({4, 33, 17}, DType::f32, l, 1, 3, 141);
    // host -> device (strided source, bf16 destination), then device -> host (f64).
    Tensor on_gpu = Tensor::empty(src.shape(), TensorOptions(DType::bf16, Device::cuda(0)));
    gpu_be().copy(on_gpu, src[0]);
    Tensor back = Tensor::empty(src.shape(), DType::f64);
    gpu_be().copy(back, on_gpu);
    const std::vector<double> want = src[0].to_vector<double>(), got = back.to_vector<double>();
    REQUIRE(want.size() == got.size());
    for (size_t i = 0; i < want.size(); ++i) REQUIRE(std::fabs(got[i] - want[i]) <= 1e-2 * std::fabs(want[i]));
    // device strided view -> strided host view
    Tensor host_dst = random_pair(src.shape(), DType::f32, Layout::stepped, 5, 6, 142)[0];
    gpu_be().copy(host_dst, src[1]);
    const std::vector<double> got2 = host_dst.to_vector<double>();
    for (size_t i = 0; i < want.size(); ++i) REQUIRE(got2[i] == want[i]);
  }
}

TEST_CASE("CUDA f32 GEMM uses TF32 only when switched on") {
  ZT_REQUIRE_GPU();
  REQUIRE_FALSE(cuda::allow_tf32());
  const Pair a = random_pair({64, 256}, DType::f32, Layout::contiguous, -1, 1, 151);
  const Pair b = random_pair({256, 48}, DType::f32, Layout::contiguous, -1, 1, 152);
  Pair exact = output_pair({64, 48}, DType::f32), fast = output_pair({64, 48}, DType::f32);
  cpu_be().gemm(exact[0], a[0], b[0], false, false, 1.0, 0.0);
  gpu_be().gemm(exact[1], a[1], b[1], false, false, 1.0, 0.0);
  cuda::set_allow_tf32(true);
  gpu_be().gemm(fast[1], a[1], b[1], false, false, 1.0, 0.0);
  cuda::set_allow_tf32(false);
  fast.side[0] = exact[0];  // both compare against the CPU result
  CHECK(same_values("gemm f32 (TF32 off)", exact, 1e-5));
  CHECK(same_values("gemm f32 (TF32 on)", fast, 1e-2));  // TF32 keeps 10 mantissa bits
}

TEST_CASE("CUDA ops reject tensors on different devices") {
  ZT_REQUIRE_GPU();
  const Pair a = random_pair({8}, DType::f32);
  Tensor out = Tensor::empty({8}, TensorOptions(DType::f32, Device::cuda(0)));
  CHECK_THROWS_WITH_AS(gpu_be().binary(BinaryOp::add, out, a[1], a[0]), doctest::Contains("CUDA device"), Error);
}

}  // namespace zt::test
