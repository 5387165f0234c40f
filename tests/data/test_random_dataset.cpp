// RandomDataset: seeded determinism, labels equal argmax of the label map, and the labels are
// learnable (a few epochs of softmax regression fit them far above chance).
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "data/data_test_util.h"
#include "data/random_dataset.h"

using namespace zt;

namespace {
RandomDatasetOptions small(uint64_t seed, int64_t n = 600) {
  RandomDatasetOptions o;
  o.num_samples = n;
  o.seed = seed;
  return o;
}

// Fraction of samples whose argmax of x @ w (row-major x (N, F), w (F, C)) equals the label.
double accuracy(const std::vector<float>& x, const std::vector<double>& w,
                const std::vector<int64_t>& y, int64_t f, int64_t c) {
  int64_t hits = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    int64_t best = 0;
    double best_v = -1e300;
    for (int64_t k = 0; k < c; ++k) {
      double v = 0;
      for (int64_t j = 0; j < f; ++j) v += double(x[i * size_t(f) + size_t(j)]) * w[size_t(j * c + k)];
      if (v > best_v) best_v = v, best = k;
    }
    hits += best == y[i];
  }
  return double(hits) / double(y.size());
}
}  // namespace

TEST_CASE("random dataset shapes, dtypes and seeded determinism") {
  RandomDataset a(small(1)), b(small(1)), c(small(2));
  CHECK(a.size() == 600);
  CHECK(a.inputs().shape() == Shape{600, 32});
  CHECK(a.inputs().dtype() == DType::f32);
  CHECK(a.targets().shape() == Shape{600});
  CHECK(a.targets().dtype() == DType::i64);
  CHECK(a.label_map().shape() == Shape{32, 10});
  CHECK(a.inputs().to_vector<float>() == b.inputs().to_vector<float>());
  CHECK(a.targets().to_vector<int64_t>() == b.targets().to_vector<int64_t>());
  CHECK(a.inputs().to_vector<float>() != c.inputs().to_vector<float>());
  // Features are standard normal: sample mean near 0 and variance near 1 over 19,200 draws.
  std::vector<float> x = a.inputs().to_vector<float>();
  double mean = 0, sq = 0;
  for (float v : x) mean += v, sq += double(v) * v;
  mean /= double(x.size());
  double var = sq / double(x.size()) - mean * mean;
  CHECK(std::fabs(mean) < 0.05);
  CHECK(std::fabs(var - 1.0) < 0.05);
  CHECK(test::error_message([] {
          RandomDatasetOptions o;
          o.num_classes = 1;
          RandomDataset bad(o);
        }).find("num_classes >= 2") != std::string::npos);
}

TEST_CASE("random dataset labels are the argmax of the label map") {
  RandomDataset ds(small(3));
  std::vector<float> x = ds.inputs().to_vector<float>(), m = ds.label_map().to_vector<float>();
  std::vector<double> w(m.begin(), m.end());
  std::vector<int64_t> y = ds.targets().to_vector<int64_t>();
  CHECK(accuracy(x, w, y, 32, 10) == 1.0);
  std::set<int64_t> classes(y.begin(), y.end());
  CHECK(classes.size() == 10);  // every class occurs
  CHECK(*classes.begin() == 0);
  CHECK(*classes.rbegin() == 9);
}

TEST_CASE("random dataset labels are learnable by softmax regression") {
  RandomDataset ds(small(4, 1000));
  const int64_t n = 1000, f = 32, c = 10;
  std::vector<float> x = ds.inputs().to_vector<float>();
  std::vector<int64_t> y = ds.targets().to_vector<int64_t>();
  std::vector<double> w(static_cast<size_t>(f * c), 0.0), logits(static_cast<size_t>(c));
  const double lr = 0.1;
  auto loss_of = [&] {
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      double mx = -1e300;
      for (int64_t k = 0; k < c; ++k) {
        double v = 0;
        for (int64_t j = 0; j < f; ++j) v += double(x[size_t(i * f + j)]) * w[size_t(j * c + k)];
        logits[size_t(k)] = v;
        mx = std::max(mx, v);
      }
      double z = 0;
      for (int64_t k = 0; k < c; ++k) z += std::exp(logits[size_t(k)] - mx);
      total += std::log(z) + mx - logits[size_t(y[size_t(i)])];
    }
    return total / double(n);
  };
  const double initial = loss_of();
  CHECK(initial == doctest::Approx(std::log(10.0)));
  for (int epoch = 0; epoch < 5; ++epoch) {
    for (int64_t i = 0; i < n; ++i) {  // plain per-sample SGD on cross-entropy
      double mx = -1e300;
      for (int64_t k = 0; k < c; ++k) {
        double v = 0;
        for (int64_t j = 0; j < f; ++j) v += double(x[size_t(i * f + j)]) * w[size_t(j * c + k)];
        logits[size_t(k)] = v;
        mx = std::max(mx, v);
      }
      double z = 0;
      for (int64_t k = 0; k < c; ++k) z += std::exp(logits[size_t(k)] - mx);
      for (int64_t k = 0; k < c; ++k) {
        double g = std::exp(logits[size_t(k)] - mx) / z - (k == y[size_t(i)] ? 1.0 : 0.0);
        for (int64_t j = 0; j < f; ++j) w[size_t(j * c + k)] -= lr * g * x[size_t(i * f + j)];
      }
    }
  }
  CHECK(loss_of() < 0.5 * initial);
  CHECK(accuracy(x, w, y, f, c) > 0.8);  // chance is 0.1
}
