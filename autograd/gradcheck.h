// gradcheck: central finite differences in f64 against backward (DESIGN.md §3, §8).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace zt {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;
  std::string message;  // which input and element failed, with both values
};

// fn maps f64 inputs (those with requires_grad are checked) to any output tensor; the scalar
// checked is sum(output * fixed random weights), so every output element matters. Checked
// inputs must be contiguous f64 CPU leaves; their .grad is cleared afterwards. fn is also
// evaluated under NoGradGuard (for the finite differences), so it must not assume grad mode.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, GradcheckOptions options = {});

}  // namespace zt
