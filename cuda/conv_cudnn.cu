// CUDA 2-D convolution (NCHW) through cuDNN: forward, backward data and backward filter, with
// the algorithm chosen by cuDNN's heuristics (cudnnGet*Algorithm_v7) once per problem and its
// workspace taken from the caching allocator. The bias is added by a small kernel of ours, in
// the compute type, as the CPU kernel (core/cpu/kernels_conv.cpp) does.
//
// Note [cuDNN math types]
// f16/bf16 are stored as such and accumulated in f32 (tensor cores allowed); f64 runs in f64.
// f32 runs with CUDNN_FMA_MATH, plain f32 arithmetic, unless TF32 is switched on
// (cuda::set_allow_tf32), the switch cuBLAS GEMMs follow too: CUDNN_DEFAULT_MATH would let
// cuDNN pick TF32 kernels on its own and break the f32 parity bound.
#include <cudnn.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <tuple>

#include "cuda/cuda_api.h"
#include "cuda/cuda_backend.h"
#include "cuda/cudnn_util.h"
#include "cuda/device.h"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {
namespace {

cudnnDataType_t cudnn_type(DType t) { return zt::cuda::cudnn_type(t, "conv2d"); }

int to_int(int64_t v, const char* what) {
  ZT_CHECK(v >= 0 && v <= INT32_MAX, "conv2d: ", what, " ", v, " does not fit cuDNN's int sizes");
  return int(v);
}

class TensorDesc {
 public:
  TensorDesc(const Tensor& t) {  // NOLINT: made from the tensor it describes
    ZT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d_));
    ZT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d_, CUDNN_TENSOR_NCHW, cudnn_type(t.dtype()),
                                              to_int(t.size(0), "size"), to_int(t.size(1), "size"),
                                              to_int(t.size(2), "size"), to_int(t.size(3), "size")));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  operator cudnnTensorDescriptor_t() const { return d_; }  // NOLINT

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

class FilterDesc {
 public:
  FilterDesc(const Tensor& w) {  // NOLINT
    ZT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d_));
    ZT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d_, cudnn_type(w.dtype()), CUDNN_TENSOR_NCHW,
                                              to_int(w.size(0), "size"), to_int(w.size(1), "size"),
                                              to_int(w.size(2), "size"), to_int(w.size(3), "size")));
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d_); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  operator cudnnFilterDescriptor_t() const { return d_; }  // NOLINT

 private:
  cudnnFilterDescriptor_t d_ = nullptr;
};

class ConvDesc {
 public:
  ConvDesc(const Conv2dGeometry& g, DType t) {
    ZT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d_));
    const cudnnDataType_t compute = t == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    ZT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        d_, to_int(g.pad_h, "padding"), to_int(g.pad_w, "padding"), to_int(g.stride_h, "stride"),
        to_int(g.stride_w, "stride"), to_int(g.dil_h, "dilation"), to_int(g.dil_w, "dilation"),
        CUDNN_CROSS_CORRELATION, compute));
    ZT_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d_, to_int(g.groups, "groups")));
    const cudnnMathType_t math = (t == DType::f16 || t == DType::bf16) ? CUDNN_TENSOR_OP_MATH
                                 : (t == DType::f32 && allow_tf32())  ? CUDNN_DEFAULT_MATH
                                                                      : CUDNN_FMA_MATH;
    ZT_CUDNN_CHECK(cudnnSetConvolutionMathType(d_, math));
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d_); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
  operator cudnnConvolutionDescriptor_t() const { return d_; }  // NOLINT

 private:
  cudnnConvolutionDescriptor_t d_ = nullptr;
};

// Shared by the three directions: checks and the descriptors of one problem.
struct ConvProblem {
  int device;
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  ConvProblem(int dev, const Tensor& xt, const Tensor& wt, const Tensor& yt, const Conv2dGeometry& g)
      : device(dev), x(xt), y(yt), w(wt), conv(g, xt.dtype()) {}
};

void check_conv(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dGeometry& g, const char* op) {
  for (const Tensor* t : {&x, &w, &y})
    ZT_CHECK(t->dim() == 4 && t->is_contiguous(), op, ": expected contiguous 4-D tensors, found ", t->str());
  ZT_CHECK(x.dtype() == w.dtype() && x.dtype() == y.dtype(), op, ": tensors must share a dtype, found ",
           dtype_name(x.dtype()), ", ", dtype_name(w.dtype()), " and ", dtype_name(y.dtype()));
  ZT_CHECK(g.groups >= 1 && w.size(1) * g.groups == x.size(1) && w.size(0) % g.groups == 0 &&
               y.size(0) == x.size(0) && y.size(1) == w.size(0) &&
               y.size(2) == conv_output_size(x.size(2), w.size(2), g.stride_h, g.pad_h, g.dil_h) &&
               y.size(3) == conv_output_size(x.size(3), w.size(3), g.stride_w, g.pad_w, g.dil_w),
           op, ": shapes do not fit: input ", shape_str(x.shape()), ", weight ", shape_str(w.shape()),
           ", output ", shape_str(y.shape()), ", groups ", g.groups);
}

// A cache key for the algorithm choice: every size, the dtype, the geometry and the math mode.
std::string problem_key(const char* dir, const Tensor& x, const Tensor& w, const Conv2dGeometry& g, int device) {
  std::ostringstream os;
  os << dir << ' ' << device << ' ' << int(x.dtype()) << ' ' << allow_tf32();
  for (int64_t s : x.shape()) os << ' ' << s;
  for (int64_t s : w.shape()) os << ' ' << s;
  os << ' ' << g.stride_h << ' ' << g.stride_w << ' ' << g.pad_h << ' ' << g.pad_w << ' ' << g.dil_h << ' '
     << g.dil_w << ' ' << g.groups;
  return os.str();
}

// The first heuristic candidate that cuDNN accepts with this descriptor (workspace query
// succeeds), cached per problem. Perf has .status and .algo; ws_size(algo, &bytes) asks cuDNN.
template <typename Algo, typename Perf, int kCount, typename Heuristic, typename WsSize>
std::pair<Algo, size_t> choose_algorithm(const std::string& key, Heuristic&& heuristic, WsSize&& ws_size) {
  static std::mutex mutex;
  static std::map<std::string, std::pair<Algo, size_t>> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  Perf perf[kCount];
  int returned = 0;
  ZT_CUDNN_CHECK(heuristic(kCount, &returned, perf));
  for (int i = 0; i < returned; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    size_t bytes = 0;
    if (ws_size(perf[i].algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
    std::lock_guard<std::mutex> lock(mutex);
    cache[key] = {perf[i].algo, bytes};
    return {perf[i].algo, bytes};
  }
  ZT_FAIL("conv2d: cuDNN offers no algorithm for ", key);
}

// Workspace bytes from the caching allocator (an undefined tensor for zero bytes).
Tensor workspace(size_t bytes, int device) {
  if (bytes == 0) return Tensor();
  return Tensor::empty({int64_t(bytes)}, TensorOptions(DType::u8, Device::cuda(device)));
}
void* workspace_ptr(const Tensor& ws) { return ws.defined() ? ws.raw_data() : nullptr; }

// cuDNN's alpha/beta are double for f64 data and float otherwise.
struct Scale {
  float f;
  double d;
  const void* ptr(DType t) const { return t == DType::f64 ? static_cast<const void*>(&d) : &f; }
};
constexpr Scale kOne{1.0f, 1.0}, kZero{0.0f, 0.0};

// out (N, O, P) += bias (O), rounded once from the compute type.
template <typename T>
__global__ void add_bias_kernel(T* out, const T* bias, int64_t total, int64_t channels, int64_t plane) {
  ZT_GRID_STRIDE_LOOP(i, total) {
    const int64_t o = (i / plane) % channels;
    out[i] = to_element<T>(to_compute(out[i]) + to_compute(bias[o]));
  }
}

}  // namespace

void CudaBackend::conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& weight,
                                 const Tensor& bias, const Conv2dGeometry& geometry) {
  check_conv(x, weight, out, geometry, "conv2d_forward");
  if (bias.defined())
    ZT_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0) && bias.is_contiguous() &&
                 bias.dtype() == x.dtype(),
             "conv2d_forward: bias must be contiguous (", weight.size(0), ") of dtype ", dtype_name(x.dtype()),
             ", found ", bias.str());
  const int device = common_device("conv2d_forward", {&out, &x, &weight, &bias});
  DeviceGuard guard(device);
  if (out.numel() == 0) return;
  ConvProblem p(device, x, weight, out, geometry);
  cudnnHandle_t h = cudnn_handle(device);
  const auto [algo, bytes] =
      choose_algorithm<cudnnConvolutionFwdAlgo_t, cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT>(
          problem_key("fwd", x, weight, geometry, device),
          [&](int n, int* got, cudnnConvolutionFwdAlgoPerf_t* perf) {
            return cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.conv, p.y, n, got, perf);
          },
          [&](cudnnConvolutionFwdAlgo_t a, size_t* b) {
            return cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.conv, p.y, a, b);
          });
  Tensor ws = workspace(bytes, device);
  const DType t = x.dtype();
  ZT_CUDNN_CHECK(cudnnConvolutionForward(h, kOne.ptr(t), p.x, x.raw_data(), p.w, weight.raw_data(), p.conv, algo,
                                         workspace_ptr(ws), bytes, kZero.ptr(t), p.y, out.raw_data()));
  if (!bias.defined()) return;
  const int64_t total = out.numel();
  ZT_DISPATCH_FLOATING(t, "conv2d_forward", ([&]<typename T>() {
    add_bias_kernel<T><<<grid_for(total), kBlockSize, 0, current_stream(device)>>>(
        device_data<T>(out), device_data<T>(bias), total, out.size(1), out.size(2) * out.size(3));
    ZT_CUDA_LAUNCH_CHECK("add_bias_kernel");
  }));
}

void CudaBackend::conv2d_backward_input(const Tensor& grad_x, const Tensor& grad_out, const Tensor& weight,
                                        const Conv2dGeometry& geometry) {
  check_conv(grad_x, weight, grad_out, geometry, "conv2d_backward_input");
  const int device = common_device("conv2d_backward_input", {&grad_x, &grad_out, &weight});
  DeviceGuard guard(device);
  if (grad_x.numel() == 0) return;
  ConvProblem p(device, grad_x, weight, grad_out, geometry);
  cudnnHandle_t h = cudnn_handle(device);
  const auto [algo, bytes] = choose_algorithm<cudnnConvolutionBwdDataAlgo_t, cudnnConvolutionBwdDataAlgoPerf_t,
                                              CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>(
      problem_key("bwd_data", grad_x, weight, geometry, device),
      [&](int n, int* got, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
        return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, p.conv, p.x, n, got, perf);
      },
      [&](cudnnConvolutionBwdDataAlgo_t a, size_t* b) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w, p.y, p.conv, p.x, a, b);
      });
  Tensor ws = workspace(bytes, device);
  const DType t = grad_x.dtype();
  ZT_CUDNN_CHECK(cudnnConvolutionBackwardData(h, kOne.ptr(t), p.w, weight.raw_data(), p.y, grad_out.raw_data(),
                                              p.conv, algo, workspace_ptr(ws), bytes, kZero.ptr(t), p.x,
                                              grad_x.raw_data()));
}

void CudaBackend::conv2d_backward_weight(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& x,
                                         const Conv2dGeometry& geometry) {
  check_conv(x, grad_weight, grad_out, geometry, "conv2d_backward_weight");
  const int device = common_device("conv2d_backward_weight", {&grad_weight, &grad_out, &x});
  DeviceGuard guard(device);
  if (grad_weight.numel() == 0) return;
  ConvProblem p(device, x, grad_weight, grad_out, geometry);
  cudnnHandle_t h = cudnn_handle(device);
  const auto [algo, bytes] =
      choose_algorithm<cudnnConvolutionBwdFilterAlgo_t, cudnnConvolutionBwdFilterAlgoPerf_t,
                       CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>(
          problem_key("bwd_filter", x, grad_weight, geometry, device),
          [&](int n, int* got, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
            return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.conv, p.w, n, got, perf);
          },
          [&](cudnnConvolutionBwdFilterAlgo_t a, size_t* b) {
            return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x, p.y, p.conv, p.w, a, b);
          });
  Tensor ws = workspace(bytes, device);
  const DType t = x.dtype();
  ZT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, kOne.ptr(t), p.x, x.raw_data(), p.y, grad_out.raw_data(),
                                                p.conv, algo, workspace_ptr(ws), bytes, kZero.ptr(t), p.w,
                                                grad_weight.raw_data()));
}

}  // namespace zt::cuda
