// Creating tensors: not differentiable, so in namespace zt directly (Note [Raw vs
// differentiable ops] in core/tensor.h).
#pragma once
#include <vector>

#include "core/generator.h"
#include "core/tensor.h"

namespace zt {

Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);
// Uniform in [low, high) and normal(mean, std), drawn from gen (default_generator() if null).
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr,
            double low = 0.0, double high = 1.0);
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr,
             double mean = 0.0, double stddev = 1.0);
// Random integers in [low, high), as i64 by default.
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options = DType::i64,
               Generator* gen = nullptr);

// From host values (converted to options.dtype), shape defaulting to 1-D.
template <typename T>
Tensor from_vector(const std::vector<T>& values, Shape shape = {}, TensorOptions options = DTypeOf<T>::value);
Tensor scalar_tensor(double value, TensorOptions options = {});

}  // namespace zt
