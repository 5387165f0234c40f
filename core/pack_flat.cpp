// pack_flat's argument checks and its plan: the pieces (sources and zero gaps) covering dst.
#include "core/pack_flat.h"

#include <algorithm>

#include "core/ops_util.h"

namespace zt {

std::vector<PackPiece> plan_pack_flat(const Tensor& dst, const std::vector<Tensor>& srcs,
                                      const std::vector<int64_t>& offsets, int64_t max_piece_numel) {
  ZT_CHECK(dst.defined(), "pack_flat: dst is an undefined tensor");
  ZT_CHECK(dst.dim() == 1 && dst.is_contiguous(), "pack_flat: expected a 1-D contiguous dst, found ", dst.str(),
           " with strides ", shape_str(dst.strides()));
  ZT_CHECK(srcs.size() == offsets.size(), "pack_flat: expected one offset per source, found ", srcs.size(),
           " sources and ", offsets.size(), " offsets");
  ZT_CHECK(max_piece_numel > 0, "pack_flat: max_piece_numel must be positive, found ", max_piece_numel);
  const int64_t n = dst.numel();
  std::vector<size_t> order;  // the non-empty sources
  for (size_t i = 0; i < srcs.size(); ++i) {
    const Tensor& s = srcs[i];
    ZT_CHECK(s.defined(), "pack_flat: source ", i, " is an undefined tensor");
    ZT_CHECK(s.device() == dst.device(), "pack_flat: source ", i, " is on ", s.device().str(), " but dst is on ",
             dst.device().str(), " (expected every source on dst's device)");
    ZT_CHECK(s.dtype() == dst.dtype(), "pack_flat: source ", i, " has dtype ", dtype_name(s.dtype()),
             " but dst has dtype ", dtype_name(dst.dtype()), " (expected dst's dtype: pack_flat does not cast)");
    ZT_CHECK(s.is_contiguous(), "pack_flat: source ", i, " ", s.str(), " has strides ", shape_str(s.strides()),
             "; expected a contiguous tensor (make it contiguous first)");
    const int64_t at = offsets[i], len = s.numel();
    ZT_CHECK(at >= 0 && at <= n && len <= n - at, "pack_flat: source ", i, " of ", len, " elements at offset ", at,
             " does not fit in dst of ", n, " elements (expected 0 <= offset and offset + numel <= ", n, ")");
    if (len == 0) continue;
    ZT_CHECK(!raw::detail::may_overlap(s, dst), "pack_flat: source ", i,
             " shares memory with dst (expected sources apart from dst)");
    order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return offsets[a] < offsets[b]; });

  std::vector<PackPiece> pieces;
  auto add = [&](int64_t at, int64_t len, int64_t src) {
    for (int64_t done = 0; done < len; done += max_piece_numel)
      pieces.push_back(PackPiece{at + done, std::min(max_piece_numel, len - done), src, src < 0 ? 0 : done});
  };
  int64_t covered = 0;  // dst [0, covered) is planned
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    const int64_t at = offsets[i], len = srcs[i].numel();
    if (k > 0) {
      const size_t prev = order[k - 1];
      ZT_CHECK(at >= covered, "pack_flat: sources ", prev, " (dst range [", offsets[prev], ", ", covered, ")) and ",
               i, " ([", at, ", ", at + len, ")) overlap (expected disjoint ranges)");
    }
    add(covered, at - covered, -1);
    add(at, len, int64_t(i));
    covered = at + len;
  }
  add(covered, n - covered, -1);
  return pieces;
}

}  // namespace zt
