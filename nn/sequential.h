// Sequential: runs its children in order; children are named "0", "1", ...
#pragma once
#include <memory>

#include "nn/module.h"

namespace zt {

class Sequential : public Module {
 public:
  Sequential() = default;
  // Appends a module as child str(size()) and returns it, typed.
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    register_module(std::to_string(layers_.size()), module);
    layers_.push_back(module);
    return module;
  }
  Tensor forward(const Tensor& x) override;  // each child's operator(), so its hooks run
  size_t size() const { return layers_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const;

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace zt
