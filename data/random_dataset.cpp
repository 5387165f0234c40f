// RandomDataset: seeded features and a seeded label map; labels computed on the host in double
// in a fixed order, so they are identical on every machine (no BLAS summation-order ties).
#include "data/random_dataset.h"

#include <vector>

#include "core/factory.h"
#include "core/generator.h"

namespace zt {

namespace {
RandomDatasetOptions checked(RandomDatasetOptions o) {
  ZT_CHECK(o.num_samples >= 1 && o.num_features >= 1 && o.num_classes >= 2,
           "RandomDataset: expected num_samples >= 1, num_features >= 1 and num_classes >= 2, "
           "got ", o.num_samples, ", ", o.num_features, " and ", o.num_classes);
  return o;
}

// i64 (N) labels: argmax over classes of x (N, F) @ w (F, C); the first maximum wins.
Tensor argmax_labels(const Tensor& x, const Tensor& w) {
  const int64_t n = x.size(0), f = x.size(1), c = w.size(1);
  std::vector<float> xs = x.to_vector<float>(), ws = w.to_vector<float>();
  std::vector<int64_t> labels(size_t(n), 0);
  std::vector<double> logits(static_cast<size_t>(c));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < c; ++k) {
      double acc = 0.0;
      for (int64_t j = 0; j < f; ++j) acc += double(xs[size_t(i * f + j)]) * ws[size_t(j * c + k)];
      logits[size_t(k)] = acc;
    }
    int64_t best = 0;
    for (int64_t k = 1; k < c; ++k) {
      if (logits[size_t(k)] > logits[size_t(best)]) best = k;
    }
    labels[size_t(i)] = best;
  }
  return from_vector<int64_t>(labels, {n}, DType::i64);
}
}  // namespace

RandomDataset::Parts RandomDataset::generate(const RandomDatasetOptions& options) {
  // One generator, features first, then the map: both fixed by the seed alone.
  Generator gen(options.seed);
  Parts p;
  p.inputs = randn({options.num_samples, options.num_features}, DType::f32, &gen);
  p.label_map = randn({options.num_features, options.num_classes}, DType::f32, &gen);
  p.targets = argmax_labels(p.inputs, p.label_map);
  return p;
}

RandomDataset::RandomDataset(RandomDatasetOptions options)
    : RandomDataset(checked(options), generate(checked(options))) {}

RandomDataset::RandomDataset(RandomDatasetOptions options, Parts parts)
    : TensorDataset(parts.inputs, parts.targets),
      options_(options),
      label_map_(std::move(parts.label_map)) {}

}  // namespace zt
