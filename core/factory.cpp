// Tensor creation: empty/zeros/ones/full/arange, random draws from a Generator (counter-based:
// each draw reserves its counters, so the same generator state reproduces it), host vectors.
#include "core/factory.h"

#include <cmath>
#include <cstring>

#include "core/backend.h"
#include "core/ops.h"

namespace zt {
namespace {

Generator& generator_or_default(Generator* gen) { return gen ? *gen : default_generator(); }

}  // namespace

Tensor empty(const Shape& shape, TensorOptions options) { return Tensor::empty(shape, options); }

Tensor full(const Shape& shape, double value, TensorOptions options) {
  Tensor t = Tensor::empty(shape, options);
  if (t.numel() > 0) backend_for(options.device).fill(t, value);
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }

Tensor arange(double start, double end, double step, TensorOptions options) {
  ZT_CHECK(step != 0.0 && std::isfinite(step), "arange: step must be finite and nonzero, found ", step);
  ZT_CHECK(std::isfinite(start) && std::isfinite(end), "arange: bounds must be finite, found [",
           start, ", ", end, ")");
  const double count = std::ceil((end - start) / step);
  const int64_t n = count > 0 ? int64_t(count) : 0;
  Tensor t = Tensor::empty({n}, options);
  if (n > 0) backend_for(options.device).arange(t, start, step);
  return t;
}

Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {t.dtype(), t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {t.dtype(), t.device()}); }
Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), {t.dtype(), t.device()}); }

Tensor rand(const Shape& shape, TensorOptions options, Generator* gen, double low, double high) {
  ZT_CHECK(is_floating(options.dtype), "rand: dtype must be floating, found ",
           dtype_name(options.dtype), " (use randint for integers)");
  ZT_CHECK(low <= high, "rand: low ", low, " must not exceed high ", high);
  Generator& g = generator_or_default(gen);
  Tensor t = Tensor::empty(shape, options);
  const uint64_t offset = g.reserve(uint64_t(t.numel()));
  if (t.numel() > 0) backend_for(options.device).random_uniform(t, g.seed(), offset, low, high);
  return t;
}

Tensor randn(const Shape& shape, TensorOptions options, Generator* gen, double mean, double stddev) {
  ZT_CHECK(is_floating(options.dtype), "randn: dtype must be floating, found ",
           dtype_name(options.dtype));
  ZT_CHECK(stddev >= 0.0, "randn: stddev must be non-negative, found ", stddev);
  Generator& g = generator_or_default(gen);
  Tensor t = Tensor::empty(shape, options);
  const uint64_t offset = g.reserve(uint64_t(t.numel()));
  if (t.numel() > 0) backend_for(options.device).random_normal(t, g.seed(), offset, mean, stddev);
  return t;
}

// v = range - range * u with u in (0, 1] lies in [0, range); floor (a truncating cast, v >= 0)
// gives an integer in [0, range - 1], clamped against rounding, then shifted by low. Draws use
// 24-bit uniforms, so ranges beyond 2^24 do not reach every integer.
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options, Generator* gen) {
  ZT_CHECK(low < high, "randint: expected low < high, found [", low, ", ", high, ")");
  ZT_CHECK(options.dtype != DType::boolean, "randint: dtype must be numeric, found bool");
  const double range = double(high) - double(low);
  Generator& g = generator_or_default(gen);
  Tensor v = Tensor::empty(shape, {DType::f64, options.device});
  const uint64_t offset = g.reserve(uint64_t(v.numel()));
  if (v.numel() == 0) return Tensor::empty(shape, options);
  backend_for(options.device).random_uniform(v, g.seed(), offset, range, 0.0);  // low > high: see above
  v = raw::binary(BinaryOp::minimum, v, range - 1.0);
  Tensor i = raw::to(v, DType::i64);
  if (low != 0) raw::binary_(BinaryOp::add, i, double(low));
  return raw::to(i, options.dtype);
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, Shape shape, TensorOptions options) {
  if (shape.empty()) shape = {int64_t(values.size())};
  ZT_CHECK(shape_numel(shape) == int64_t(values.size()), "from_vector: ", values.size(),
           " values do not fill shape ", shape_str(shape), " (", shape_numel(shape), " elements)");
  Tensor host = Tensor::empty(shape, {DTypeOf<T>::value, Device::cpu()});
  if (!values.empty()) std::memcpy(host.raw_data(), values.data(), values.size() * sizeof(T));
  return raw::to(raw::to(host, options.dtype), options.device);
}

template Tensor from_vector<float>(const std::vector<float>&, Shape, TensorOptions);
template Tensor from_vector<double>(const std::vector<double>&, Shape, TensorOptions);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, Shape, TensorOptions);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, Shape, TensorOptions);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, Shape, TensorOptions);

Tensor scalar_tensor(double value, TensorOptions options) { return full({}, value, options); }

}  // namespace zt
