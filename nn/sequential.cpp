// Sequential container.
#include "nn/sequential.h"

namespace zt {

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& layer : layers_) h = (*layer)(h);
  return h;
}

const std::shared_ptr<Module>& Sequential::operator[](size_t i) const {
  ZT_CHECK(i < layers_.size(), "Sequential: index ", i, " out of range for ", layers_.size(),
           " layers");
  return layers_[i];
}

}  // namespace zt
