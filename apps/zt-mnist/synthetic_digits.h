// The built-in synthetic digit set of zt-mnist: the ten digits of a 5x7 bitmap font rendered into
// 28x28 images with a random affine warp (scale, shear, shift), random stroke weight and pixel
// noise, so the sample trains without a download. Deterministic: the same seed gives the same
// images on every machine (its own integer RNG, no library distributions).
#pragma once
#include <cstdint>

#include "data/mnist.h"

namespace zt {

// n images (N, 1, 28, 28) f32 in MNIST's layout, normalised like MNIST when normalize is true,
// with labels (N) i64 cycling through 0..9 in a shuffled order.
MnistData make_synthetic_digits(int64_t n, uint64_t seed, bool normalize = true);

// Train and held-out sets of the synthetic digits (disjoint seeds): 4,000 / 1,000 images.
MnistSplits synthetic_train_test(bool normalize = true);

}  // namespace zt
