// CUDA elementwise kernels: binary (tensor-tensor and tensor-scalar), unary and its backward,
// where, fill, arange and copy (casts, strides, and transfers between devices). Each op is a small functor bound at compile time into the shared map
// (cuda/elementwise.cuh); the arithmetic follows the CPU kernels (core/cpu/
// kernels_elementwise.cpp): f16/bf16 computed in f32, bool as int, comparisons write bool.
#include <algorithm>
#include <cmath>

#include "core/int_pow.h"
#include "core/cpu/cpu_backend.h"
#include "cuda/column_partials.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/elementwise.cuh"
#include "cuda/gelu_backward_sums.h"
#include "cuda/row_softmax.cuh"  // resident_grid

namespace zt::cuda {
namespace {

// ---- device math overloads (float and double; no fast-math approximations) ----

__device__ __forceinline__ float d_exp(float x) { return expf(x); }
__device__ __forceinline__ double d_exp(double x) { return exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return log(x); }
__device__ __forceinline__ float d_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double d_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float d_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double d_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float d_erf(float x) { return erff(x); }
__device__ __forceinline__ double d_erf(double x) { return erf(x); }
__device__ __forceinline__ float d_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double d_abs(double x) { return fabs(x); }

template <typename C>
__host__ __device__ __forceinline__ bool d_isnan(C v) {
  if constexpr (std::is_floating_point_v<C>) {
    return isnan(v);
  } else {
    return false;
  }
}

constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1 / sqrt(2 pi)
constexpr double kGeluCubic = 0.044715;

// ---- binary functions over an arithmetic type C ----

struct AddFn { template <typename C> __host__ __device__ C operator()(C x, C y) const { return C(x + y); } };
struct SubFn { template <typename C> __host__ __device__ C operator()(C x, C y) const { return C(x - y); } };
struct MulFn { template <typename C> __host__ __device__ C operator()(C x, C y) const { return C(x * y); } };
// Integer division by zero yields 0 here; the CPU reports it, but a kernel cannot throw.
struct DivFn {
  template <typename C> __host__ __device__ C operator()(C x, C y) const {
    if constexpr (std::is_floating_point_v<C>) {
      return C(x / y);
    } else {
      return y == 0 ? C(0) : C(x / y);
    }
  }
};
struct PowFn {
  template <typename C> __host__ __device__ C operator()(C x, C y) const {
    if constexpr (std::is_integral_v<C>) return int_pow(x, y);
    else return C(pow(double(x), double(y)));
  }
};
struct MaxFn {
  template <typename C> __host__ __device__ C operator()(C x, C y) const {
    return d_isnan(x) || d_isnan(y) ? C(x + y) : (x > y ? x : y);
  }
};
struct MinFn {
  template <typename C> __host__ __device__ C operator()(C x, C y) const {
    return d_isnan(x) || d_isnan(y) ? C(x + y) : (x < y ? x : y);
  }
};
struct EqFn { template <typename C> __host__ __device__ bool operator()(C x, C y) const { return x == y; } };
struct NeFn { template <typename C> __host__ __device__ bool operator()(C x, C y) const { return x != y; } };
struct LtFn { template <typename C> __host__ __device__ bool operator()(C x, C y) const { return x < y; } };
struct LeFn { template <typename C> __host__ __device__ bool operator()(C x, C y) const { return x <= y; } };
struct GtFn { template <typename C> __host__ __device__ bool operator()(C x, C y) const { return x > y; } };
struct GeFn { template <typename C> __host__ __device__ bool operator()(C x, C y) const { return x >= y; } };

// Calls body(fn, is_comparison) for op.
template <typename Body>
void with_binary_fn(BinaryOp op, Body&& body) {
  switch (op) {
    case BinaryOp::add: return body(AddFn{});
    case BinaryOp::sub: return body(SubFn{});
    case BinaryOp::mul: return body(MulFn{});
    case BinaryOp::div: return body(DivFn{});
    case BinaryOp::pow: return body(PowFn{});
    case BinaryOp::maximum: return body(MaxFn{});
    case BinaryOp::minimum: return body(MinFn{});
    case BinaryOp::eq: return body(EqFn{});
    case BinaryOp::ne: return body(NeFn{});
    case BinaryOp::lt: return body(LtFn{});
    case BinaryOp::le: return body(LeFn{});
    case BinaryOp::gt: return body(GtFn{});
    case BinaryOp::ge: return body(GeFn{});
  }
  ZT_FAIL("binary: unknown op ", int(op));
}

// out = fn(a, b) in C, stored as O.
template <typename O, typename T, typename C, typename Fn>
struct BinaryElem {
  Fn fn;
  __device__ O operator()(T x, T y) const { return to_element<O>(fn(C(to_arith(x)), C(to_arith(y)))); }
};

// out = fn(a, s) or fn(s, a) in C.
template <typename O, typename T, typename C, typename Fn>
struct ScalarElem {
  Fn fn;
  C s;
  bool scalar_first;
  __device__ O operator()(T x) const {
    const C v = C(to_arith(x));
    return to_element<O>(scalar_first ? fn(s, v) : fn(v, s));
  }
};

// ---- unary functions ----

struct NegFn { template <typename C> __device__ C operator()(C x) const { return C(-x); } };
struct AbsFn {
  template <typename C> __device__ C operator()(C x) const {
    if constexpr (std::is_floating_point_v<C>) {
      return d_abs(x);
    } else if constexpr (std::is_unsigned_v<C>) {
      return x;
    } else {
      return C(x < 0 ? -x : x);
    }
  }
};
struct ExpFn { template <typename C> __device__ C operator()(C x) const { return d_exp(x); } };
struct LogFn { template <typename C> __device__ C operator()(C x) const { return d_log(x); } };
struct SqrtFn { template <typename C> __device__ C operator()(C x) const { return d_sqrt(x); } };
struct RsqrtFn { template <typename C> __device__ C operator()(C x) const { return C(C(1) / d_sqrt(x)); } };
struct ReciprocalFn { template <typename C> __device__ C operator()(C x) const { return C(C(1) / x); } };
struct SquareFn { template <typename C> __device__ C operator()(C x) const { return C(x * x); } };
struct TanhFn { template <typename C> __device__ C operator()(C x) const { return d_tanh(x); } };
struct SigmoidFn {
  template <typename C> __device__ C operator()(C x) const { return C(C(1) / (C(1) + d_exp(-x))); }
};
struct ReluFn {
  template <typename C> __device__ C operator()(C x) const {
    return x > C(0) ? x : (d_isnan(x) ? x : C(0));
  }
};
struct GeluFn {
  template <typename C> __device__ C operator()(C x) const {
    return C(C(0.5) * x * (C(1) + d_erf(x * C(kInvSqrt2))));
  }
};
// 0.5 x (1 + tanh(u)) written as x * sigmoid(2u), as the CPU kernel computes it.
struct GeluTanhFn {
  template <typename C> __device__ C operator()(C x) const {
    const C two_u = C(2 * kSqrt2OverPi) * (x + C(kGeluCubic) * x * x * x);
    return C(x / (C(1) + d_exp(-two_u)));
  }
};

template <typename T, typename C, typename Fn>
struct UnaryElem {
  Fn fn;
  __device__ T operator()(T x) const { return to_element<T>(fn(C(to_arith(x)))); }
};

template <typename T>
struct LogicalNotElem {
  __device__ bool operator()(T x) const { return !to_element<bool>(x); }
};

// ---- unary derivatives: g * d op(x) / dx ----

struct ReluGradFn { template <typename C> __device__ C operator()(C g, C x) const { return x > C(0) ? g : C(0); } };
struct TanhGradFn {
  template <typename C> __device__ C operator()(C g, C x) const {
    const C t = d_tanh(x);
    return C(g * (C(1) - t * t));
  }
};
struct SigmoidGradFn {
  template <typename C> __device__ C operator()(C g, C x) const {
    const C s = C(1) / (C(1) + d_exp(-x));
    return C(g * s * (C(1) - s));
  }
};
struct GeluGradFn {
  template <typename C> __device__ C operator()(C g, C x) const {
    const C cdf = C(0.5) * (C(1) + d_erf(x * C(kInvSqrt2)));
    const C pdf = C(kInvSqrt2Pi) * d_exp(C(-0.5) * x * x);
    return C(g * (cdf + x * pdf));
  }
};
// With s = sigmoid(2u): d/dx [x s] = s + 2 x s (1 - s) du/dx (the CPU kernel's form).
struct GeluTanhGradFn {
  template <typename C> __device__ C operator()(C g, C x) const {
    const C two_u = C(2 * kSqrt2OverPi) * (x + C(kGeluCubic) * x * x * x);
    const C s = C(1) / (C(1) + d_exp(-two_u));
    const C du = C(kSqrt2OverPi) * (C(1) + C(3 * kGeluCubic) * x * x);
    return C(g * (s + C(2) * x * s * (C(1) - s) * du));
  }
};

// ---- where, fill, arange ----

template <typename T, typename B>
__global__ void where_kernel(T* out, const B* cond, const T* a, const T* b, int64_t n,
                             OffsetCalc<4> calc) {
  ZT_GRID_STRIDE_LOOP(i, n) {
    int64_t off[4];
    calc.offsets(i, off);
    out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
  }
}

template <typename T>
__global__ void fill_kernel(T* out, int64_t n, OffsetCalc<1> calc, T value) {
  ZT_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    calc.offsets(i, off);
    out[off[0]] = value;
  }
}

// A contiguous, 16-byte aligned fill: whole vectors, then the tail.
template <typename T>
__global__ void fill_contiguous_kernel(T* out, int64_t n, T value) {
  constexpr int kVec = 16 / sizeof(T) > 0 ? 16 / sizeof(T) : 1;
  Vec<T, kVec> v;
#pragma unroll
  for (int j = 0; j < kVec; ++j) v.v[j] = value;
  const int64_t nvec = n / kVec;
  ZT_GRID_STRIDE_LOOP(i, nvec) reinterpret_cast<Vec<T, kVec>*>(out)[i] = v;
  ZT_GRID_STRIDE_LOOP(t, n - nvec * kVec) out[nvec * kVec + t] = value;
}

template <typename T>
__global__ void arange_kernel(T* out, int64_t n, int64_t stride, double start, double step) {
  ZT_GRID_STRIDE_LOOP(i, n) out[i * stride] = to_element<T>(start + double(i) * step);
}

// Host-side conversion of a double to an element type, as the CPU's cast_to does.
template <typename T>
T host_element(double v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    return T(float(v));
  } else {
    return static_cast<T>(v);
  }
}

}  // namespace

void CudaBackend::binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  ZT_CHECK(a.shape() == out.shape() && b.shape() == out.shape(), "binary ", op_name(op),
           ": operands ", shape_str(a.shape()), " and ", shape_str(b.shape()),
           " must be broadcast to out's shape ", shape_str(out.shape()));
  ZT_CHECK(a.dtype() == b.dtype(), "binary ", op_name(op), ": dtypes differ (",
           dtype_name(a.dtype()), " vs ", dtype_name(b.dtype()), ")");
  DeviceGuard guard(common_device("binary", {&out, &a, &b}));
  ZT_DISPATCH_ALL(a.dtype(), "binary", ([&]<typename T>() {
    using C = arith_t<T>;
    with_binary_fn(op, [&](auto fn) {
      using R = decltype(fn(C(), C()));
      using O = std::conditional_t<std::is_same_v<R, bool>, bool, T>;
      ZT_CHECK(out.dtype() == DTypeOf<O>::value, "binary ", op_name(op), ": out dtype must be ",
               dtype_name(DTypeOf<O>::value), ", found ", dtype_name(out.dtype()));
      launch_map<2, O, T>("binary_kernel", out, {&a, &b}, BinaryElem<O, T, C, decltype(fn)>{fn});
    });
  }));
}

void CudaBackend::binary_scalar(BinaryOp op, const Tensor& out, const Tensor& a, double scalar,
                                bool scalar_first) {
  ZT_CHECK(a.shape() == out.shape(), "binary_scalar ", op_name(op), ": operand shape ",
           shape_str(a.shape()), " differs from out's shape ", shape_str(out.shape()));
  DeviceGuard guard(common_device("binary_scalar", {&out, &a}));
  // Integer tensors with a fractional scalar compute in double and truncate on store (CPU rule).
  const bool integral_scalar = std::nearbyint(scalar) == scalar && std::abs(scalar) < 9.2e18;
  ZT_DISPATCH_ALL(a.dtype(), "binary_scalar", ([&]<typename T>() {
    auto run = [&]<typename C>() {
      with_binary_fn(op, [&](auto fn) {
        using R = decltype(fn(C(), C()));
        using O = std::conditional_t<std::is_same_v<R, bool>, bool, T>;
        ZT_CHECK(out.dtype() == DTypeOf<O>::value, "binary_scalar ", op_name(op),
                 ": out dtype must be ", dtype_name(DTypeOf<O>::value), ", found ",
                 dtype_name(out.dtype()));
        launch_map<1, O, T>("binary_scalar_kernel", out, {&a},
                            ScalarElem<O, T, C, decltype(fn)>{fn, C(scalar), scalar_first});
      });
    };
    if constexpr (std::is_floating_point_v<arith_t<T>>) {
      run.template operator()<arith_t<T>>();
    } else if (integral_scalar) {
      run.template operator()<int64_t>();
    } else {
      run.template operator()<double>();
    }
  }));
}

void CudaBackend::unary(UnaryOp op, const Tensor& out, const Tensor& a) {
  ZT_CHECK(a.shape() == out.shape(), "unary ", op_name(op), ": operand shape ",
           shape_str(a.shape()), " differs from out's shape ", shape_str(out.shape()));
  DeviceGuard guard(common_device("unary", {&out, &a}));
  if (op == UnaryOp::logical_not) {
    ZT_CHECK(out.dtype() == DType::boolean, "unary logical_not: out must be bool, found ",
             dtype_name(out.dtype()));
    ZT_DISPATCH_ALL(a.dtype(), "logical_not", ([&]<typename T>() {
      launch_map<1, bool, T>("logical_not_kernel", out, {&a}, LogicalNotElem<T>{});
    }));
    return;
  }
  ZT_CHECK(out.dtype() == a.dtype(), "unary ", op_name(op), ": out dtype ",
           dtype_name(out.dtype()), " differs from input dtype ", dtype_name(a.dtype()));
  ZT_DISPATCH_ALL(a.dtype(), "unary", ([&]<typename T>() {
    using C = arith_t<T>;
    auto run = [&](auto fn) {
      launch_map<1, T, T>("unary_kernel", out, {&a}, UnaryElem<T, C, decltype(fn)>{fn});
    };
    if constexpr (std::is_floating_point_v<C>) {
      switch (op) {
        case UnaryOp::neg: return run(NegFn{});
        case UnaryOp::abs: return run(AbsFn{});
        case UnaryOp::exp: return run(ExpFn{});
        case UnaryOp::log: return run(LogFn{});
        case UnaryOp::sqrt: return run(SqrtFn{});
        case UnaryOp::rsqrt: return run(RsqrtFn{});
        case UnaryOp::reciprocal: return run(ReciprocalFn{});
        case UnaryOp::square: return run(SquareFn{});
        case UnaryOp::tanh: return run(TanhFn{});
        case UnaryOp::sigmoid: return run(SigmoidFn{});
        case UnaryOp::relu: return run(ReluFn{});
        case UnaryOp::gelu: return run(GeluFn{});
        case UnaryOp::gelu_tanh: return run(GeluTanhFn{});
        case UnaryOp::logical_not: break;
      }
      ZT_FAIL("unary: op ", op_name(op), " has no floating implementation");
    } else {
      switch (op) {
        case UnaryOp::neg: return run(NegFn{});
        case UnaryOp::abs: return run(AbsFn{});
        case UnaryOp::square: return run(SquareFn{});
        case UnaryOp::relu: return run(ReluFn{});
        default: break;
      }
      ZT_FAIL("unary ", op_name(op), ": not defined for integer or bool tensors (expected a floating dtype)");
    }
  }));
}

void CudaBackend::unary_backward(UnaryOp op, const Tensor& grad_in, const Tensor& grad_out,
                                 const Tensor& x) {
  ZT_CHECK(grad_out.shape() == grad_in.shape() && x.shape() == grad_in.shape(),
           "unary_backward ", op_name(op), ": grad_out ", shape_str(grad_out.shape()), " and x ",
           shape_str(x.shape()), " must match grad_in ", shape_str(grad_in.shape()));
  ZT_CHECK(grad_out.dtype() == x.dtype() && grad_in.dtype() == x.dtype(), "unary_backward ",
           op_name(op), ": grad_in, grad_out and x must share a dtype, found ",
           dtype_name(grad_in.dtype()), ", ", dtype_name(grad_out.dtype()), ", ", dtype_name(x.dtype()));
  DeviceGuard guard(common_device("unary_backward", {&grad_in, &grad_out, &x}));
  ZT_DISPATCH_FLOATING(x.dtype(), "unary_backward", ([&]<typename T>() {
    using C = compute_t<T>;
    auto run = [&](auto fn) {
      launch_map<2, T, T>("unary_backward_kernel", grad_in, {&grad_out, &x},
                          BinaryElem<T, T, C, decltype(fn)>{fn});
    };
    switch (op) {
      case UnaryOp::relu: return run(ReluGradFn{});
      case UnaryOp::tanh: return run(TanhGradFn{});
      case UnaryOp::sigmoid: return run(SigmoidGradFn{});
      case UnaryOp::gelu: return run(GeluGradFn{});
      case UnaryOp::gelu_tanh: return run(GeluTanhGradFn{});
      default: break;
    }
    ZT_FAIL("unary_backward: op ", op_name(op),
            " has no backward kernel (expected relu, gelu, gelu_tanh, tanh or sigmoid)");
  }));
}

namespace {

constexpr int kSumThreads = 128;  // threads of the fused GELU-gradient kernel, one column vector each
constexpr int kSumAhead = 4;      // rows whose loads a thread issues before using any

// grad = gelu_tanh'(pre) * grad for V columns a thread over row groups y, y + gridDim.y, ... of
// kSumAhead rows (y = blockIdx.y), partials[y, col] = the column sums of the rounded results.
// The grid is what fits on the device at once: with a block per fixed 32-row chunk, GPT-2's
// (8192, 3072) bf16 took 768 blocks for 660 resident ones, a second wave of 108 (74 us a call).
// GeluTanhGradFn, with the hardware exponential and reciprocal for 16-bit results (their
// errors, a few f32 ulp, vanish in the rounding to bf16/f16): fewer instructions an element for a
// kernel that computes while its next rows load.
template <typename T>
struct GeluTanhGradSumsFn {
  template <typename C>
  __device__ C operator()(C g, C x) const {
    if constexpr (sizeof(T) == 2 && std::is_same_v<C, float>) {
      const float two_u = float(2 * kSqrt2OverPi) * (x + float(kGeluCubic) * x * x * x);
      const float s = __frcp_rn(1.0f + __expf(-two_u));
      const float du = float(kSqrt2OverPi) * (1.0f + float(3 * kGeluCubic) * x * x);
      return g * (s + 2.0f * x * s * (1.0f - s) * du);
    } else {
      return GeluTanhGradFn{}(g, x);
    }
  }
};

template <typename T, int V>
__global__ void __launch_bounds__(kSumThreads) gelu_tanh_backward_sums_kernel(T* grad, const T* pre,
                                                                              compute_t<T>* partials, int64_t rows,
                                                                              int64_t cols) {
  using C = compute_t<T>;
  const int64_t col = (int64_t(blockIdx.x) * kSumThreads + threadIdx.x) * V;
  if (col >= cols) return;
  C sum[V] = {};
  for (int64_t r = int64_t(blockIdx.y) * kSumAhead; r < rows; r += int64_t(gridDim.y) * kSumAhead) {
    Vec<T, V> g[kSumAhead], x[kSumAhead];
#pragma unroll
    for (int k = 0; k < kSumAhead; ++k) {
      if (r + k < rows) {
        g[k] = *reinterpret_cast<const Vec<T, V>*>(grad + (r + k) * cols + col);
        x[k] = *reinterpret_cast<const Vec<T, V>*>(pre + (r + k) * cols + col);
      }
    }
#pragma unroll
    for (int k = 0; k < kSumAhead; ++k) {
      if (r + k >= rows) break;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const T d = BinaryElem<T, T, C, GeluTanhGradSumsFn<T>>{}(g[k].v[j], x[k].v[j]);
        g[k].v[j] = d;
        sum[j] += C(to_arith(d));
      }
      *reinterpret_cast<Vec<T, V>*>(grad + (r + k) * cols + col) = g[k];
    }
  }
#pragma unroll
  for (int j = 0; j < V; ++j) partials[int64_t(blockIdx.y) * cols + col + j] = sum[j];
}

}  // namespace

bool gelu_tanh_backward_with_sums(const Tensor& grad, const Tensor& pre, const Tensor& grad_bias) {
  if (grad.dim() != 2 || pre.shape() != grad.shape() || grad_bias.dim() != 1 || grad_bias.size(0) != grad.size(1) ||
      pre.dtype() != grad.dtype() || grad_bias.dtype() != grad.dtype() || !grad.is_contiguous() ||
      !pre.is_contiguous() || !grad_bias.is_contiguous() || grad.numel() == 0 || !is_floating(grad.dtype()))
    return false;
  const int64_t rows = grad.size(0), cols = grad.size(1);
  const int vec = int(16 / dtype_size(grad.dtype()));
  auto aligned = [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0; };
  if (cols % vec != 0 || !aligned(grad) || !aligned(pre)) return false;
  const int64_t col_blocks = (cols / vec + kSumThreads - 1) / kSumThreads;
  if (col_blocks > INT32_MAX) return false;
  const int device = common_device("gemm_gelu_backward", {&grad, &pre, &grad_bias});
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(grad.dtype(), "gemm_gelu_backward", ([&]<typename T>() {
    using C = compute_t<T>;
    constexpr int V = 16 / sizeof(T);
    auto kernel = gelu_tanh_backward_sums_kernel<T, V>;
    // Row groups: every resident block busy (resident_grid, which ZT_ROW_GRID_CAP caps so that
    // the parity tests' small cases loop too), none without rows, within the grid's y limit.
    const int64_t groups = std::clamp<int64_t>(resident_grid(kernel, kSumThreads, 0, INT64_MAX, device) / col_blocks,
                                               1, std::min<int64_t>((rows + kSumAhead - 1) / kSumAhead, 65535));
    const Tensor partials = Tensor::empty({groups, cols}, TensorOptions(DTypeOf<C>::value, grad.device()));
    kernel<<<dim3(unsigned(col_blocks), unsigned(groups)), kSumThreads, 0, stream>>>(
        device_data<T>(grad), device_data<T>(pre), device_data<C>(partials), rows, cols);
    ZT_CUDA_LAUNCH_CHECK("gelu_tanh_backward_sums_kernel");
    launch_column_partials_finish<T, C>(device_data<T>(grad_bias), nullptr, device_data<C>(partials), nullptr, groups,
                                        cols, stream);
  }));
  return true;
}

void CudaBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  ZT_CHECK(cond.shape() == out.shape() && a.shape() == out.shape() && b.shape() == out.shape(),
           "where: cond ", shape_str(cond.shape()), ", a ", shape_str(a.shape()), " and b ",
           shape_str(b.shape()), " must be broadcast to out's shape ", shape_str(out.shape()));
  ZT_CHECK(cond.dtype() == DType::boolean || cond.dtype() == DType::u8,
           "where: cond must be bool or u8, found ", dtype_name(cond.dtype()));
  ZT_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "where: a and b must have out's dtype ",
           dtype_name(out.dtype()), ", found ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  const int device = common_device("where", {&out, &cond, &a, &b});
  DeviceGuard guard(device);
  const int64_t n = out.numel();
  if (n == 0) return;
  const OffsetCalc<4> calc =
      make_offset_calc<4>(out.shape(), {&out.strides(), &cond.strides(), &a.strides(), &b.strides()});
  ZT_DISPATCH_ALL(out.dtype(), "where", ([&]<typename T>() {
    auto run = [&]<typename B>() {
      where_kernel<T, B><<<grid_for(n), kBlockSize, 0, current_stream(device)>>>(
          device_data<T>(out), device_data<B>(cond), device_data<T>(a), device_data<T>(b), n, calc);
      ZT_CUDA_LAUNCH_CHECK("where_kernel");
    };
    if (cond.dtype() == DType::boolean) {
      run.template operator()<bool>();
    } else {
      run.template operator()<uint8_t>();
    }
  }));
}

void CudaBackend::fill(const Tensor& out, double value) {
  const int device = common_device("fill", {&out});
  DeviceGuard guard(device);
  const int64_t n = out.numel();
  if (n == 0) return;
  const OffsetCalc<1> calc = make_offset_calc<1>(out.shape(), {&out.strides()});
  ZT_DISPATCH_ALL(out.dtype(), "fill", ([&]<typename T>() {
    if (out.is_contiguous() && reinterpret_cast<uintptr_t>(out.raw_data()) % 16 == 0) {
      const int64_t vec = std::max<int64_t>(1, 16 / int64_t(sizeof(T)));
      fill_contiguous_kernel<T><<<grid_for((n + vec - 1) / vec), kBlockSize, 0, current_stream(device)>>>(
          device_data<T>(out), n, host_element<T>(value));
      ZT_CUDA_LAUNCH_CHECK("fill_contiguous_kernel");
      return;
    }
    fill_kernel<T><<<grid_for(n), kBlockSize, 0, current_stream(device)>>>(device_data<T>(out), n, calc,
                                                                          host_element<T>(value));
    ZT_CUDA_LAUNCH_CHECK("fill_kernel");
  }));
}

void CudaBackend::arange(const Tensor& out, double start, double step) {
  ZT_CHECK(out.dim() == 1, "arange: out must be 1-D, found shape ", shape_str(out.shape()));
  const int device = common_device("arange", {&out});
  DeviceGuard guard(device);
  const int64_t n = out.numel();
  if (n == 0) return;
  ZT_DISPATCH_ALL(out.dtype(), "arange", ([&]<typename T>() {
    arange_kernel<T><<<grid_for(n), kBlockSize, 0, current_stream(device)>>>(device_data<T>(out), n,
                                                                            out.stride(0), start, step);
    ZT_CUDA_LAUNCH_CHECK("arange_kernel");
  }));
}

namespace {

// dst = cast(src) for same-shape views on one CUDA device.
void copy_same_device(const Tensor& dst, const Tensor& src) {
  DeviceGuard guard(dst.device().index);
  ZT_DISPATCH_ALL(dst.dtype(), "copy", ([&]<typename D>() {
    ZT_DISPATCH_ALL(src.dtype(), "copy", ([&]<typename S>() {
      launch_map<1, D, S>("copy_kernel", dst, {&src}, CastFn<D, S>{});
    }));
  }));
}

// A contiguous tensor holding src's values in src's dtype on src's device (src itself when
// it already is), so that a transfer is one plain memcpy.
Tensor contiguous_on_source(const Tensor& src) {
  if (src.is_contiguous()) return src;
  if (src.device().is_cpu()) {
    Tensor c = Tensor::empty(src.shape(), TensorOptions(src.dtype(), src.device()));
    cpu::cpu_backend().copy(c, src);
    return c;
  }
  DeviceGuard guard(src.device().index);  // the caching allocator serves the current device
  Tensor c = Tensor::empty(src.shape(), TensorOptions(src.dtype(), src.device()));
  copy_same_device(c, src);
  return c;
}

// Where a transfer lands on the destination side: dst itself when it is contiguous with src's
// dtype, else a contiguous staging tensor that is cast/strided into dst afterwards.
Tensor landing_for(const Tensor& dst, const Tensor& src) {
  if (dst.is_contiguous() && dst.dtype() == src.dtype()) return dst;
  if (dst.device().is_cpu()) return Tensor::empty(src.shape(), TensorOptions(src.dtype(), dst.device()));
  DeviceGuard guard(dst.device().index);
  return Tensor::empty(src.shape(), TensorOptions(src.dtype(), dst.device()));
}

void finish_into(const Tensor& dst, const Tensor& landing) {
  if (landing.same_impl(dst)) return;
  if (dst.device().is_cpu()) {
    cpu::cpu_backend().copy(dst, landing);
  } else {
    copy_same_device(dst, landing);
  }
}

}  // namespace

// Transfers are synchronous with respect to the host: the host side of the copy may be a
// temporary, and the caller may read a CPU destination right after.
void CudaBackend::copy(const Tensor& dst, const Tensor& src) {
  ZT_CHECK(dst.shape() == src.shape(), "copy: dst shape ", shape_str(dst.shape()),
           " differs from src shape ", shape_str(src.shape()));
  const Device dd = dst.device(), sd = src.device();
  if (dd.is_cpu() && sd.is_cpu()) return cpu::cpu_backend().copy(dst, src);
  if (dd == sd) return copy_same_device(dst, src);
  if (dst.numel() == 0) return;
  const Tensor from = contiguous_on_source(src);
  const Tensor to = landing_for(dst, src);
  const size_t bytes = from.nbytes();
  if (sd.is_cpu() || dd.is_cpu()) {
    const int device = sd.is_cpu() ? dd.index : sd.index;
    DeviceGuard guard(device);
    cudaStream_t stream = current_stream(device);
    ZT_CUDA_CHECK(cudaMemcpyAsync(to.raw_data(), from.raw_data(), bytes,
                                  sd.is_cpu() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, stream));
    ZT_CUDA_CHECK(cudaStreamSynchronize(stream));
  } else {
    // Between GPUs: the destination's pending work (e.g. the staging allocation's previous
    // users) is on its own stream; wait for it, then copy on the source's stream.
    ZT_CUDA_CHECK(cudaStreamSynchronize(current_stream(dd.index)));
    DeviceGuard guard(sd.index);
    cudaStream_t stream = current_stream(sd.index);
    ZT_CUDA_CHECK(cudaMemcpyPeerAsync(to.raw_data(), dd.index, from.raw_data(), sd.index, bytes, stream));
    ZT_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  finish_into(dst, to);
}

}  // namespace zt::cuda
