// CUDA cross-entropy over contiguous logits (N, C) with integer targets (N), forward and
// backward fused with the softmax, with the CPU kernel's meaning (core/cpu/
// kernels_cross_entropy.cpp): loss[n] = logsumexp(logits[n]) - logits[n, target[n]], stored as
// f32 (f64 for f64 logits; grad_loss likewise); rows whose target is ignore_index get loss 0 and
// zero gradient. A kernel cannot throw: a
// target out of range (neither in [0, C) nor ignore_index) gives a NaN loss and NaN gradients,
// which the non-finite checks of the training loop report.
#include <cmath>

#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/kernel_utils.cuh"
#include "cuda/row_softmax.cuh"

namespace zt::cuda {
namespace {

// One block per row: the row statistics in one read, then the loss from them and x[target].
template <int V, typename T, typename I, typename L>
__global__ void cross_entropy_kernel(L* loss, const T* logits, const I* target, int64_t t_stride,
                                     int64_t rows, int64_t cols, int64_t ignore_index) {  // (N, C)
  using A = compute_t<T>;
  __shared__ A shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t t = int64_t(target[r * t_stride]);
    if (t == ignore_index) {
      if (threadIdx.x == 0) loss[r] = L(0);
      continue;
    }
    const T* xr = logits + r * cols;
    A tmx, tsum, mx, sum;
    thread_max_sum<V>(xr, cols, tmx, tsum);
    block_max_sum<T>(tmx, tsum, shared, mx, sum);
    if (threadIdx.x == 0) loss[r] = (t >= 0 && t < cols) ? L(mx + f_log(sum) - A(to_compute(xr[t]))) : L(NAN);
  }
}

// One block per row: the row statistics, then grad = grad_loss * (softmax - onehot(target)).
template <int V, typename T, typename I, typename L>
__global__ void cross_entropy_backward_kernel(T* grad, const L* grad_loss, int64_t gl_stride,
                                              const T* logits, const I* target, int64_t t_stride,
                                              int64_t rows, int64_t cols, int64_t ignore_index) {
  using A = compute_t<T>;
  __shared__ A shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t t = int64_t(target[r * t_stride]);
    T* gr = grad + r * cols;
    if (t == ignore_index) {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) gr[c] = to_element<T>(A(0));
      continue;
    }
    const T* xr = logits + r * cols;
    A tmx, tsum, mx, sum;
    thread_max_sum<V>(xr, cols, tmx, tsum);
    block_max_sum<T>(tmx, tsum, shared, mx, sum);
    const bool valid = t >= 0 && t < cols;
    const A gn = A(grad_loss[r * gl_stride]);
    const A scale = valid ? gn / sum : A(NAN);
    // The second read of the row, two loads issued before either is used.
    const int64_t step = int64_t(blockDim.x) * V;
    auto write = [&](int64_t c, const Vec<T, V>& xv) {
      Vec<T, V> gv;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A p = row_exp<T>(A(A(to_compute(xv.v[j])) - mx)) * scale;
        gv.v[j] = to_element<T>(c + j == t ? A(p - gn) : p);
      }
      *reinterpret_cast<Vec<T, V>*>(gr + c) = gv;
    };
    int64_t c = int64_t(threadIdx.x) * V;
    for (; c + step < cols; c += 2 * step) {
      const Vec<T, V> x0 = *reinterpret_cast<const Vec<T, V>*>(xr + c);
      const Vec<T, V> x1 = *reinterpret_cast<const Vec<T, V>*>(xr + c + step);
      write(c, x0);
      write(c + step, x1);
    }
    if (c < cols) write(c, *reinterpret_cast<const Vec<T, V>*>(xr + c));
  }
}

struct Rows {
  int64_t n, c;
};

Rows check_logits(const Tensor& logits, const Tensor& target, const char* op) {
  ZT_CHECK(logits.dim() == 2 && logits.is_contiguous(), op, ": logits must be contiguous (N, C), found ",
           logits.str(), " with strides ", shape_str(logits.strides()));
  const Rows rs{logits.size(0), logits.size(1)};
  ZT_CHECK(target.dim() == 1 && target.size(0) == rs.n, op, ": target must be (", rs.n,
           ") to match the logits rows, found ", target.str());
  return rs;
}

// Loss and grad_loss are f32, or f64 for f64 logits (so f64 gradchecks keep full precision).
void check_loss_dtype(const Tensor& logits, const Tensor& loss, const char* op, const char* what) {
  const DType expected = logits.dtype() == DType::f64 ? DType::f64 : DType::f32;
  ZT_CHECK(loss.dtype() == expected, op, ": ", what, " must be ", dtype_name(expected), " for ",
           dtype_name(logits.dtype()), " logits, found ", loss.str());
}

// Calls fn.template operator()<L>() with L the loss type for these logits.
template <typename Fn>
void with_loss_type(const Tensor& logits, Fn&& fn) {
  if (logits.dtype() == DType::f64) {
    fn.template operator()<double>();
  } else {
    fn.template operator()<float>();
  }
}

unsigned row_grid(int64_t rows) { return unsigned(rows < 65536 ? (rows < 1 ? 1 : rows) : 65536); }
int row_block(int64_t cols) { return cols <= 128 ? 32 : (cols <= 1024 ? 128 : 512); }

}  // namespace

void CudaBackend::cross_entropy(const Tensor& loss, const Tensor& logits, const Tensor& target,
                                int64_t ignore_index) {
  const Rows rs = check_logits(logits, target, "cross_entropy");
  ZT_CHECK(loss.dim() == 1 && loss.size(0) == rs.n && loss.is_contiguous(),
           "cross_entropy: loss must be a contiguous (", rs.n, ") tensor, found ", loss.str());
  check_loss_dtype(logits, loss, "cross_entropy", "loss");
  const int device = common_device("cross_entropy", {&loss, &logits, &target});
  DeviceGuard guard(device);
  if (rs.n == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(logits.dtype(), "cross_entropy", ([&]<typename T>() {
    ZT_DISPATCH_INDEX(target.dtype(), "cross_entropy", ([&]<typename I>() {
      with_loss_type(logits, [&]<typename L>() {
        constexpr int kV = 16 / int(sizeof(T));
        const T* x = device_data<T>(logits);
        auto launch = [&](auto kernel) {
          kernel<<<row_grid(rs.n), row_block(rs.c), 0, stream>>>(device_data<L>(loss), x, device_data<I>(target),
                                                                 target.stride(0), rs.n, rs.c, ignore_index);
        };
        if (vectorizable(rs.c, kV, {x})) {
          launch(cross_entropy_kernel<kV, T, I, L>);
        } else {
          launch(cross_entropy_kernel<1, T, I, L>);
        }
        ZT_CUDA_LAUNCH_CHECK("cross_entropy_kernel");
      });
    }));
  }));
}

void CudaBackend::cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                                         const Tensor& logits, const Tensor& target,
                                         int64_t ignore_index) {
  const char* op = "cross_entropy_backward";
  const Rows rs = check_logits(logits, target, op);
  ZT_CHECK(grad_logits.shape() == logits.shape() && grad_logits.dtype() == logits.dtype() &&
               grad_logits.is_contiguous(),
           op, ": grad_logits must be contiguous like logits ", logits.str(), ", found ", grad_logits.str());
  // grad_loss may be a broadcast view (stride 0) of a scalar gradient from a mean reduction.
  ZT_CHECK(grad_loss.dim() == 1 && grad_loss.size(0) == rs.n, op, ": grad_loss must be (", rs.n,
           "), found ", grad_loss.str());
  check_loss_dtype(logits, grad_loss, op, "grad_loss");
  const int device = common_device(op, {&grad_logits, &grad_loss, &logits, &target});
  DeviceGuard guard(device);
  if (rs.n == 0) return;
  cudaStream_t stream = current_stream(device);
  ZT_DISPATCH_FLOATING(logits.dtype(), op, ([&]<typename T>() {
    ZT_DISPATCH_INDEX(target.dtype(), op, ([&]<typename I>() {
      with_loss_type(logits, [&]<typename L>() {
        constexpr int kV = 16 / int(sizeof(T));
        T* g = device_data<T>(grad_logits);
        const T* x = device_data<T>(logits);
        auto launch = [&](auto kernel) {
          kernel<<<row_grid(rs.n), row_block(rs.c), 0, stream>>>(g, device_data<L>(grad_loss), grad_loss.stride(0),
                                                                 x, device_data<I>(target), target.stride(0), rs.n,
                                                                 rs.c, ignore_index);
        };
        if (vectorizable(rs.c, kV, {g, x})) {
          launch(cross_entropy_backward_kernel<kV, T, I, L>);
        } else {
          launch(cross_entropy_backward_kernel<1, T, I, L>);
        }
        ZT_CUDA_LAUNCH_CHECK("cross_entropy_backward_kernel");
      });
    }));
  }));
}

}  // namespace zt::cuda
