// Parameter initialisers (PyTorch's torch.nn.init), drawing from an explicit Generator so a
// seeded model initialises identically on every run and every backend.
#pragma once
#include "core/generator.h"
#include "core/tensor.h"

namespace zt::init {

// All write in place (under no-grad) and return t.
const Tensor& uniform_(const Tensor& t, double low, double high, Generator& gen);
const Tensor& normal_(const Tensor& t, double mean, double stddev, Generator& gen);
const Tensor& zeros_(const Tensor& t);
const Tensor& ones_(const Tensor& t);
// Uniform(-bound, bound), bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)).
// a = sqrt(5) gives PyTorch's nn.Linear weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
const Tensor& kaiming_uniform_(const Tensor& t, double a, Generator& gen);
// Uniform(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)).
const Tensor& xavier_uniform_(const Tensor& t, double gain, Generator& gen);

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (t must be >= 2-D).
struct Fans {
  int64_t fan_in, fan_out;
};
Fans compute_fans(const Tensor& t);

}  // namespace zt::init
