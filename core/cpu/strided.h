// Strided iteration shared by the CPU kernels: walks K operands of one shape (each with its own
// element strides, 0 for broadcast dims) as a list of 1-D segments, merging dims that are
// contiguous for every operand so that contiguous tensors become a single long segment, and
// splitting the work across OpenMP threads for large sizes.
#pragma once
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace zt::cpu {

// Below this many elements a loop runs on one thread: thread start-up costs more than it saves.
inline constexpr int64_t kParallelThreshold = 32768;
// Segments are cut to at most this length so a few long rows still spread over the threads.
inline constexpr int64_t kSegmentLength = 16384;

// Converts between storage and compute types (Half/BFloat16 go through float).
template <typename To, typename From>
inline To cast_to(From v) {
  if constexpr (std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_same_v<From, Half> || std::is_same_v<From, BFloat16>) {
    return static_cast<To>(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

// Converts a value to an element type; bool takes "nonzero" (NaN included), as C++ and numpy.
template <typename D, typename S>
inline D convert_element(S v) {
  if constexpr (std::is_same_v<S, D>) {
    return v;
  } else if constexpr (std::is_same_v<D, bool>) {
    return cast_to<double>(v) != 0.0;
  } else {
    return cast_to<D>(v);
  }
}

// A shape with size-1 dims dropped and mergeable neighbours merged, and each operand's strides.
template <size_t K>
struct CollapsedLayout {
  std::vector<int64_t> shape;
  std::array<std::vector<int64_t>, K> strides;
};

template <size_t K>
CollapsedLayout<K> collapse_dims(const Shape& shape, const std::array<const Shape*, K>& strides) {
  CollapsedLayout<K> out;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !out.shape.empty();
    for (size_t k = 0; k < K && merge; ++k)
      merge = out.strides[k].back() == (*strides[k])[d] * shape[d];
    if (merge) {
      out.shape.back() *= shape[d];
      for (size_t k = 0; k < K; ++k) out.strides[k].back() = (*strides[k])[d];
    } else {
      out.shape.push_back(shape[d]);
      for (size_t k = 0; k < K; ++k) out.strides[k].push_back((*strides[k])[d]);
    }
  }
  return out;
}

// Calls seg(offsets, n, inner_strides) for every 1-D segment: operand k's elements are at
// offsets[k] + j * inner_strides[k] for j in [0, n). Offsets and strides are in elements.
// Segments are disjoint in the iteration space, so writes to a non-overlapping output are safe
// from several threads.
template <size_t K, typename SegmentFn>
void for_each_segment(const Shape& shape, const std::array<const Shape*, K>& strides,
                      SegmentFn&& seg) {
  const int64_t numel = shape_numel(shape);
  if (numel == 0) return;
  CollapsedLayout<K> layout = collapse_dims<K>(shape, strides);
  std::array<int64_t, K> inner_strides{};
  if (layout.shape.empty()) {  // a single element
    std::array<int64_t, K> offsets{};
    seg(offsets, int64_t(1), inner_strides);
    return;
  }
  const int nd = int(layout.shape.size());
  const int64_t inner = layout.shape[nd - 1];
  for (size_t k = 0; k < K; ++k) inner_strides[k] = layout.strides[k][nd - 1];
  const int64_t block = kSegmentLength;
  const int64_t blocks_per_row = (inner + block - 1) / block;
  const int64_t rows = numel / inner;
  const int64_t items = rows * blocks_per_row;

  // Runs work items [i0, i1): item i is block (i % blocks_per_row) of row (i / blocks_per_row).
  auto run_range = [&](int64_t i0, int64_t i1) {
    if (i0 >= i1) return;
    std::vector<int64_t> index(size_t(nd > 1 ? nd - 1 : 1), 0);
    std::array<int64_t, K> row_offsets{};
    int64_t row = i0 / blocks_per_row, blk = i0 % blocks_per_row;
    for (int d = nd - 2; d >= 0; --d) {
      index[size_t(d)] = row % layout.shape[size_t(d)];
      row /= layout.shape[size_t(d)];
      for (size_t k = 0; k < K; ++k) row_offsets[k] += index[size_t(d)] * layout.strides[k][size_t(d)];
    }
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t start = blk * block, n = std::min(block, inner - start);
      std::array<int64_t, K> offsets;
      for (size_t k = 0; k < K; ++k) offsets[k] = row_offsets[k] + start * inner_strides[k];
      seg(offsets, n, inner_strides);
      if (++blk == blocks_per_row) {  // next row: odometer increment over the outer dims
        blk = 0;
        for (int d = nd - 2; d >= 0; --d) {
          for (size_t k = 0; k < K; ++k) row_offsets[k] += layout.strides[k][size_t(d)];
          if (++index[size_t(d)] < layout.shape[size_t(d)]) break;
          for (size_t k = 0; k < K; ++k)
            row_offsets[k] -= index[size_t(d)] * layout.strides[k][size_t(d)];
          index[size_t(d)] = 0;
        }
      }
    }
  };

  if (numel < kParallelThreshold || items == 1) {
    run_range(0, items);
    return;
  }
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t per = (items + threads - 1) / threads;
    run_range(std::min(items, tid * per), std::min(items, (tid + 1) * per));
  }
}

// Runs fn(i) for i in [0, n), in parallel when n * cost_per_item is large.
template <typename Fn>
void parallel_for(int64_t n, int64_t cost_per_item, Fn&& fn) {
#pragma omp parallel for schedule(static) if (n * cost_per_item >= kParallelThreshold && n > 1)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

// Typed base pointer of a tensor (storage + offset).
template <typename T>
inline T* typed_data(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

}  // namespace zt::cpu
