// Activation modules forward to the differentiable ops of autograd/ops.h.
#include "nn/activation.h"

#include "autograd/ops.h"

namespace zt {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor GELU::forward(const Tensor& x) { return gelu(x, tanh_approximation_); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }

}  // namespace zt
