// The second half of the row kernels that also sum columns (the layer-norm backward's weight and
// bias gradients, the GELU backward's bias gradient): each block of the first kernel writes one
// row of partial column sums, (chunks, C) in the compute type, and this kernel adds them.
#pragma once
#include <cstdint>

#include "cuda/kernel_utils.cuh"

namespace zt::cuda {

// Threads of a finish block: kFinishThreads / tile row groups of `tile` columns.
constexpr int kFinishThreads = 512;

// out_a[c] = sum over chunks k of part_a[k, c] (likewise out_b from part_b, when not null).
// Block x owns blockDim.x columns (a tile); its blockDim.y row groups each sum every
// blockDim.y-th chunk, then meet in shared memory in group order: a fixed order, so the result
// does not depend on timing. A thread per column with every chunk in one loop read (528, 4096)
// partials at a fraction of the bandwidth (0.1 ms); (256, 3072) took 31 us.
template <typename T, typename A>
__global__ void __launch_bounds__(kFinishThreads)
    column_partials_finish_kernel(T* out_a, T* out_b, const A* part_a, const A* part_b, int64_t chunks,
                                  int64_t cols) {
  __shared__ A sum_a[kFinishThreads];
  __shared__ A sum_b[kFinishThreads];
  const int tile = int(blockDim.x), groups = int(blockDim.y);
  const int64_t c = int64_t(blockIdx.x) * tile + threadIdx.x;
  A sa = 0, sb = 0;
  if (c < cols) {
    for (int64_t k = threadIdx.y; k < chunks; k += groups) {
      sa += part_a[k * cols + c];
      if (part_b) sb += part_b[k * cols + c];
    }
  }
  sum_a[threadIdx.y * tile + threadIdx.x] = sa;
  sum_b[threadIdx.y * tile + threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < groups; ++k) {
      sa += sum_a[k * tile + threadIdx.x];
      sb += sum_b[k * tile + threadIdx.x];
    }
    if (out_a) out_a[c] = to_element<T>(sa);
    if (out_b) out_b[c] = to_element<T>(sb);
  }
}

// Queues column_partials_finish_kernel; part_b and out_b may be null (one sum). Tiles of 32
// columns (a 128-byte line a row group) where that gives a few hundred blocks; narrower rows take
// tiles of 8 (a 32-byte sector): 768 columns in tiles of 32 were 24 blocks on 132 SMs (7 us for
// (512, 768) partials of the layer-norm backward).
template <typename T, typename A>
void launch_column_partials_finish(T* out_a, T* out_b, const A* part_a, const A* part_b, int64_t chunks,
                                   int64_t cols, cudaStream_t stream) {
  const int tile = cols >= 32 * 256 ? 32 : (cols >= 16 * 256 ? 16 : 8);
  const dim3 block{unsigned(tile), unsigned(kFinishThreads / tile), 1};
  const dim3 grid{unsigned((cols + tile - 1) / tile), 1, 1};
  column_partials_finish_kernel<T, A><<<grid, block, 0, stream>>>(out_a, out_b, part_a, part_b, chunks, cols);
  ZT_CUDA_LAUNCH_CHECK("column_partials_finish_kernel");
}

}  // namespace zt::cuda
