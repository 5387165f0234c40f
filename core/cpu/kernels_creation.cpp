// CPU kernels that create or copy values: fill, arange, Philox random draws, strided copy/cast,
// pack_flat.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"
#include "core/pack_flat.h"
#include "core/philox.h"

namespace zt::cpu {

void CpuBackend::fill(const Tensor& out, double value) {
  ZT_DISPATCH_ALL(out.dtype(), "fill", ([&]<typename T>() {
    const T v = cast_to<T>(value);
    T* base = typed_data<T>(out);
    for_each_segment<1>(out.shape(), {&out.strides()},
                        [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
                          T* p = base + off[0];
                          if (st[0] == 1) {
                            for (int64_t j = 0; j < n; ++j) p[j] = v;
                          } else {
                            for (int64_t j = 0; j < n; ++j) p[j * st[0]] = v;
                          }
                        });
  }));
}

void CpuBackend::arange(const Tensor& out, double start, double step) {
  ZT_CHECK(out.dim() == 1, "arange: out must be 1-D, found shape ", shape_str(out.shape()));
  ZT_DISPATCH_ALL(out.dtype(), "arange", ([&]<typename T>() {
    T* p = typed_data<T>(out);
    const int64_t s = out.stride(0);
    parallel_for(out.numel(), 1, [&](int64_t i) { p[i * s] = cast_to<T>(start + double(i) * step); });
  }));
}

namespace {

// Runs fn(group, words) for each Philox counter group of an n-element draw: elements
// 4 * group + lane (lane < 4, element < n) use words.lane, exactly as philox::uniform/normal
// do per element, with one Philox evaluation per four elements.
template <typename Fn>
void for_each_philox_group(int64_t n, uint64_t seed, uint64_t offset, Fn&& fn) {
  const int64_t groups = int64_t(philox::counters_for(uint64_t(n)));
  parallel_for(groups, 64, [&](int64_t g) { fn(g, philox::philox4x32(seed, offset + uint64_t(g))); });
}

}  // namespace

// Element i is low + (high - low) * u_i, u_i = philox::uniform(seed, offset, i) in (0, 1],
// evaluated in the output's compute type (float for f16/bf16/f32, double for f64), as the
// CUDA kernel does.
void CpuBackend::random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double low,
                                double high) {
  ZT_CHECK(out.is_contiguous(), "random_uniform: out must be contiguous, found strides ",
           shape_str(out.strides()));
  ZT_DISPATCH_FLOATING(out.dtype(), "random_uniform", ([&]<typename T>() {
    using C = compute_t<T>;
    T* p = typed_data<T>(out);
    const int64_t n = out.numel();
    const C lo = C(low), range = C(high - low);
    for_each_philox_group(n, seed, offset, [&](int64_t g, const philox::Uint4& r) {
      for (unsigned l = 0; l < 4 && 4 * g + l < n; ++l)
        p[4 * g + l] = cast_to<T>(lo + range * C(philox::to_uniform(philox::lane(r, l))));
    });
  }));
}

// Element i is mean + stddev * z_i, z_i = philox::normal(seed, offset, i): Box-Muller over
// lane pairs (0, 1) and (2, 3), cosine for the even element and sine for the odd one.
void CpuBackend::random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean,
                               double stddev) {
  ZT_CHECK(out.is_contiguous(), "random_normal: out must be contiguous, found strides ",
           shape_str(out.strides()));
  ZT_DISPATCH_FLOATING(out.dtype(), "random_normal", ([&]<typename T>() {
    using C = compute_t<T>;
    T* p = typed_data<T>(out);
    const int64_t n = out.numel();
    const C mu = C(mean), sigma = C(stddev);
    for_each_philox_group(n, seed, offset, [&](int64_t g, const philox::Uint4& r) {
      for (unsigned pair = 0; pair < 4; pair += 2) {
        const int64_t i = 4 * g + pair;
        if (i >= n) break;
        const float u1 = philox::to_uniform(philox::lane(r, pair));
        const float u2 = philox::to_uniform(philox::lane(r, pair + 1));
        const float radius = sqrtf(-2.0f * logf(u1));
        const float angle = 6.2831853071795864f * u2;
        p[i] = cast_to<T>(mu + sigma * C(radius * cosf(angle)));
        if (i + 1 < n) p[i + 1] = cast_to<T>(mu + sigma * C(radius * sinf(angle)));
      }
    });
  }));
}

namespace {

// A copy whose destination has unit stride in its last (collapsed) dim and whose source has unit
// stride in the second-to-last: a transpose. Walking either side in order strides through the
// other, so 32 x 32 tiles keep both in cache. Returns false for other layouts.
template <typename D, typename S>
bool copy_transposed(const Tensor& dst, const Tensor& src) {
  const CollapsedLayout<2> layout = collapse_dims<2>(dst.shape(), {&dst.strides(), &src.strides()});
  const int nd = int(layout.shape.size());
  if (nd < 2) return false;
  const Shape& ds = layout.strides[0];
  const Shape& ss = layout.strides[1];
  const int64_t rows = layout.shape[size_t(nd - 2)], cols = layout.shape[size_t(nd - 1)];
  if (ds[size_t(nd - 1)] != 1 || ss[size_t(nd - 2)] != 1 || rows < 16 || cols < 16) return false;
  constexpr int64_t kTile = 32;
  const int64_t tiles_r = (rows + kTile - 1) / kTile, tiles_c = (cols + kTile - 1) / kTile;
  const int64_t outer = shape_numel(dst.shape()) / (rows * cols);
  const int64_t d_row = ds[size_t(nd - 2)], s_col = ss[size_t(nd - 1)];
  D* d = typed_data<D>(dst);
  const S* s = typed_data<S>(src);
  parallel_for(outer * tiles_r * tiles_c, kTile * kTile, [&](int64_t t) {
    int64_t rest = t / (tiles_r * tiles_c), d_off = 0, s_off = 0;
    const int64_t tile = t % (tiles_r * tiles_c);
    for (int k = nd - 3; k >= 0; --k) {  // the outer (batch) position of this tile
      const int64_t i = rest % layout.shape[size_t(k)];
      rest /= layout.shape[size_t(k)];
      d_off += i * ds[size_t(k)];
      s_off += i * ss[size_t(k)];
    }
    const int64_t r0 = (tile / tiles_c) * kTile, c0 = (tile % tiles_c) * kTile;
    const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
    for (int64_t r = r0; r < r1; ++r) {
      D* dr = d + d_off + r * d_row;
      const S* sr = s + s_off + r;
      for (int64_t c = c0; c < c1; ++c) dr[c] = convert_element<D>(sr[c * s_col]);
    }
  });
  return true;
}

}  // namespace

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  ZT_CHECK(dst.shape() == src.shape(), "copy: dst shape ", shape_str(dst.shape()),
           " differs from src shape ", shape_str(src.shape()));
  ZT_CHECK(dst.device().is_cpu() && src.device().is_cpu(), "copy: the CPU backend copies CPU tensors only, found dst on ",
           dst.device().str(), " and src on ", src.device().str());
  ZT_DISPATCH_ALL(dst.dtype(), "copy", ([&]<typename D>() {
    ZT_DISPATCH_ALL(src.dtype(), "copy", ([&]<typename S>() {
      if (copy_transposed<D, S>(dst, src)) return;
      D* d = typed_data<D>(dst);
      const S* s = typed_data<S>(src);
      for_each_segment<2>(dst.shape(), {&dst.strides(), &src.strides()},
                          [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                            D* dp = d + off[0];
                            const S* sp = s + off[1];
                            if constexpr (std::is_same_v<D, S>) {
                              if (st[0] == 1 && st[1] == 1) {
                                std::memcpy(dp, sp, size_t(n) * sizeof(D));
                                return;
                              }
                            }
                            if (st[0] == 1 && st[1] == 1) {
                              for (int64_t j = 0; j < n; ++j) dp[j] = convert_element<D>(sp[j]);
                            } else {
                              for (int64_t j = 0; j < n; ++j)
                                dp[j * st[0]] = convert_element<D>(sp[j * st[1]]);
                            }
                          });
    }));
  }));
}

// Bytes, whatever the dtype (all-zero bytes are zero in every dtype): a memcpy per piece of a
// source, a memset per gap, pieces of at most 1 MiB spread over the threads.
void CpuBackend::pack_flat(const Tensor& dst, const std::vector<Tensor>& srcs, const std::vector<int64_t>& offsets) {
  constexpr int64_t kPieceBytes = int64_t(1) << 20;
  const int64_t es = int64_t(dst.element_size());
  ZT_CHECK(dst.device().is_cpu(), "pack_flat: the CPU backend packs CPU tensors only, found dst on ",
           dst.device().str());
  const std::vector<PackPiece> pieces = plan_pack_flat(dst, srcs, offsets, kPieceBytes / es);
  if (pieces.empty()) return;
  char* base = static_cast<char*>(dst.raw_data());
  std::vector<const char*> from(srcs.size(), nullptr);  // raw_data may throw: not inside the threads
  for (size_t i = 0; i < srcs.size(); ++i)
    if (srcs[i].numel() > 0) from[i] = static_cast<const char*>(srcs[i].raw_data());
  parallel_for(int64_t(pieces.size()), std::max<int64_t>(1, dst.numel() / int64_t(pieces.size())), [&](int64_t k) {
    const PackPiece& p = pieces[size_t(k)];
    char* d = base + p.dst_offset * es;
    if (p.src < 0) {
      std::memset(d, 0, size_t(p.numel * es));
    } else {
      std::memcpy(d, from[size_t(p.src)] + p.src_offset * es, size_t(p.numel * es));
    }
  });
}

}  // namespace zt::cpu
