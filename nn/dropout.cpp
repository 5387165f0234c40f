// Dropout module: the mode comes from Module::is_training().
#include "nn/dropout.h"

#include "autograd/ops.h"

namespace zt {

Dropout::Dropout(double p, Generator* gen) : p_(p), generator_(gen) {
  ZT_CHECK(p >= 0.0 && p < 1.0, "Dropout: expected 0 <= p < 1, found p=", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), generator_); }

}  // namespace zt
