// Renders the synthetic digit set (see synthetic_digits.h): each image samples a 5x7 glyph
// through an inverse affine map with bilinear filtering, then adds noise.
#include "synthetic_digits.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/factory.h"

namespace zt {
namespace {

constexpr int kSide = 28;
constexpr int kGlyphW = 5, kGlyphH = 7;

// 5x7 glyphs, one string per row, '#' = ink.
constexpr std::array<std::array<const char*, kGlyphH>, 10> kGlyphs = {{
    {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "},
    {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
    {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"},
    {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "},
    {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "},
    {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "},
    {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "},
    {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "},
    {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "},
    {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "},
}};

// SplitMix64: a fixed, portable stream of 64-bit values.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
};

// Ink of glyph `digit` at continuous glyph coordinates (u, v), bilinear over the cell centres;
// 0 outside the glyph.
double glyph_ink(int digit, double u, double v) {
  auto cell = [digit](int x, int y) {
    if (x < 0 || y < 0 || x >= kGlyphW || y >= kGlyphH) return 0.0;
    return kGlyphs[size_t(digit)][size_t(y)][x] == '#' ? 1.0 : 0.0;
  };
  const double x = u - 0.5, y = v - 0.5;
  const int x0 = int(std::floor(x)), y0 = int(std::floor(y));
  const double fx = x - x0, fy = y - y0;
  return (1 - fx) * (1 - fy) * cell(x0, y0) + fx * (1 - fy) * cell(x0 + 1, y0) +
         (1 - fx) * fy * cell(x0, y0 + 1) + fx * fy * cell(x0 + 1, y0 + 1);
}

// One 28x28 image of `digit` in [0, 1], row-major, into out.
void render(int digit, Rng& rng, float* out) {  // (28, 28)
  const double scale_x = rng.uniform(2.6, 3.6), scale_y = rng.uniform(2.4, 3.1);
  const double shear = rng.uniform(-0.35, 0.35);
  const double cx = 14 + rng.uniform(-3, 3), cy = 14 + rng.uniform(-2.5, 2.5);
  const double weight = rng.uniform(0.35, 0.6);  // ink threshold: lower draws bolder strokes
  const double noise = rng.uniform(0.0, 0.15);
  for (int py = 0; py < kSide; ++py) {
    for (int px = 0; px < kSide; ++px) {
      // Inverse map: pixel centre -> glyph coordinates (centred on the glyph's middle).
      const double dy = (py + 0.5 - cy) / scale_y;
      const double dx = (px + 0.5 - cx) / scale_x - shear * dy;
      const double ink = glyph_ink(digit, dx + kGlyphW / 2.0, dy + kGlyphH / 2.0);
      double v = std::clamp((ink - weight) / (1 - weight) * 1.6, 0.0, 1.0);
      v += noise * (rng.uniform() - 0.5) * 2;
      out[py * kSide + px] = float(std::clamp(v, 0.0, 1.0));
    }
  }
}

}  // namespace

MnistData make_synthetic_digits(int64_t n, uint64_t seed, bool normalize) {
  ZT_CHECK(n > 0, "make_synthetic_digits: expected a positive number of images, got ", n);
  Rng rng{seed * 0x2545F4914F6CDD1Dull + 0x5851F42D4C957F2Dull};
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) labels[size_t(i)] = i % 10;
  for (int64_t i = n - 1; i > 0; --i)  // Fisher-Yates, so batches mix the classes
    std::swap(labels[size_t(i)], labels[size_t(rng.next() % uint64_t(i + 1))]);
  std::vector<float> pixels(size_t(n) * kSide * kSide);
  for (int64_t i = 0; i < n; ++i) render(int(labels[size_t(i)]), rng, pixels.data() + i * kSide * kSide);
  if (normalize)
    for (float& p : pixels) p = float((p - kMnistMean) / kMnistStd);
  MnistData d;
  d.images = from_vector(pixels, {n, 1, kSide, kSide});
  d.labels = from_vector(labels, {n});
  return d;
}

MnistSplits synthetic_train_test(bool normalize) {
  return {make_synthetic_digits(4000, 1, normalize), make_synthetic_digits(1000, 2, normalize)};
}

}  // namespace zt
