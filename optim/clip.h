// Gradient clipping by global norm (PyTorch's torch.nn.utils.clip_grad_norm_).
#pragma once
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace zt {

inline constexpr double kInfNorm = std::numeric_limits<double>::infinity();

// The p-norm of all gradients together (parameters without a gradient are skipped); norm_type
// kInfNorm takes the largest absolute value. When total > max_norm every gradient is scaled by
// max_norm / (total + 1e-6). Returns the total norm before clipping (non-finite when a gradient
// is; the caller decides whether to skip the step).
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);

// The same total norm without clipping.
double grad_norm(const std::vector<Tensor>& params, double norm_type = 2.0);

}  // namespace zt
