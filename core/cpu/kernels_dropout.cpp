// CPU dropout: mask[i] = philox::uniform(seed, offset, i) > p (as floats), out = x * mask / (1 - p).
// Element i is the logical (row-major) position, so any backend computing the same rule draws
// the same mask for the same (seed, offset), whatever the strides of x.
#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"
#include "core/philox.h"

namespace zt::cpu {

void CpuBackend::dropout(const Tensor& out, const Tensor& mask, const Tensor& x, double p,
                         uint64_t seed, uint64_t offset) {
  ZT_CHECK(p >= 0.0 && p <= 1.0, "dropout: p must be in [0, 1], found ", p);
  ZT_CHECK(out.shape() == x.shape() && out.dtype() == x.dtype() && out.is_contiguous(),
           "dropout: out must be contiguous like x ", x.str(), ", found ", out.str());
  ZT_CHECK(mask.shape() == x.shape() && mask.dtype() == DType::u8 && mask.is_contiguous(),
           "dropout: mask must be a contiguous u8 tensor of shape ", shape_str(x.shape()),
           ", found ", mask.str());
  const float threshold = float(p);
  ZT_DISPATCH_FLOATING(x.dtype(), "dropout", [&]<typename T>() {
    using A = compute_t<T>;
    const A scale = p < 1.0 ? A(1.0 / (1.0 - p)) : A(0);
    T* o = typed_data<T>(out);
    uint8_t* m = typed_data<uint8_t>(mask);
    const T* xp = typed_data<T>(x);
    // out is contiguous, so its element offset is the logical position i of the element and
    // its inner segment stride is 1.
    // One Philox block gives the uniforms of four consecutive positions.
    for_each_segment<3>(x.shape(), {&out.strides(), &mask.strides(), &x.strides()},
                        [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
                          const int64_t begin = off[0], end = off[0] + n;
                          for (int64_t i = begin; i < end;) {
                            const philox::Uint4 r = philox::philox4x32(seed, offset + uint64_t(i) / 4);
                            for (unsigned l = unsigned(i % 4); l < 4 && i < end; ++l, ++i) {
                              const int64_t j = i - begin;
                              const bool keep = philox::to_uniform(philox::lane(r, l)) > threshold;
                              m[off[1] + j * st[1]] = keep ? 1 : 0;
                              o[i] = keep ? T(A(xp[off[2] + j * st[2]]) * scale) : T(A(0));
                            }
                          }
                        });
  });
}

}  // namespace zt::cpu
