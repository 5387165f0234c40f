// CUDA pack_flat (core/ops.def; contract and plan in core/pack_flat.h): many sources and the zero
// gaps between them written into one flat buffer by one launch (a few for thousands of pieces)
// instead of a fill and a copy kernel per source. Dtype-agnostic: it moves bytes.
//
// The host turns the plan's pieces (ranges cut at kPieceBytes, so one huge source does not leave
// a single block working alone) into a table of work items, one block each, and passes the table
// as the kernel's parameter: Hopper with CUDA 12.1+ takes up to 32,764 parameter bytes, so there is
// no device allocation, no host-to-device copy and no host wait; the launch is queued on the
// current stream like any kernel. A block moves its item in the widest words (16, 8, 4, 2 or 1
// bytes) that dst and src are equally aligned for, bytes before dst's first aligned address and
// after the last whole word one by one.
#include <algorithm>
#include <vector>

#include "core/pack_flat.h"
#include "cuda/cuda_backend.h"
#include "cuda/device.h"
#include "cuda/kernel_utils.cuh"

namespace zt::cuda {
namespace {

// One block's work: `bytes` bytes at dst copied from src, or zeroed when src is null.
struct PackItem {
  char* dst;
  const char* src;
  int64_t bytes;
};

constexpr int64_t kPieceBytes = int64_t(256) << 10;
constexpr int kMaxParamBytes = 32764;  // CUDA 12.1+, Volta and later
constexpr int kLargeTable = int(kMaxParamBytes / sizeof(PackItem));  // 1365 items
// Small packs (a ZeRO-3 unit's few gradients) pass a small table: the launch copies the whole
// parameter block, 768 bytes instead of 32 KiB.
constexpr int kSmallTable = 32;
constexpr int kPackThreads = 256;
constexpr int kWordsInFlight = 4;  // loads a thread issues before its stores

template <int N>
struct PackTable {
  PackItem items[N];
};
static_assert(sizeof(PackTable<kLargeTable>) <= size_t(kMaxParamBytes), "pack_flat's table exceeds the parameter limit");

// words W from src to dst, kWordsInFlight loads in flight a thread (the pointers never alias: the
// plan refuses sources that share memory with dst).
template <typename W>
__device__ __forceinline__ void copy_words(char* __restrict__ dst, const char* __restrict__ src, int64_t words) {
  W* d = reinterpret_cast<W*>(dst);
  const W* s = reinterpret_cast<const W*>(src);
  const int64_t step = int64_t(blockDim.x);
  for (int64_t base = threadIdx.x; base < words; base += kWordsInFlight * step) {
    W v[kWordsInFlight];
#pragma unroll
    for (int k = 0; k < kWordsInFlight; ++k)
      if (base + k * step < words) v[k] = s[base + k * step];
#pragma unroll
    for (int k = 0; k < kWordsInFlight; ++k)
      if (base + k * step < words) d[base + k * step] = v[k];
  }
}

template <int N>
__global__ void __launch_bounds__(kPackThreads) pack_flat_kernel(const __grid_constant__ PackTable<N> table) {
  const PackItem item = table.items[blockIdx.x];
  char* dst = item.dst;
  const char* src = item.src;
  const int64_t n = item.bytes;
  // The widest word size that dst and src share their alignment for (16 for a zero gap).
  const uintptr_t d = reinterpret_cast<uintptr_t>(dst);
  const uintptr_t differ = src ? d ^ reinterpret_cast<uintptr_t>(src) : 0;
  const int w = differ % 16 == 0 ? 16 : differ % 8 == 0 ? 8 : differ % 4 == 0 ? 4 : differ % 2 == 0 ? 2 : 1;
  const int64_t to_aligned = int64_t((w - d % w) % w);
  const int64_t head = to_aligned < n ? to_aligned : n;
  const int64_t words = (n - head) / w;
  const int64_t tail = head + words * w;
  // head and tail are under 16 bytes each: one byte a thread.
  if (threadIdx.x < head) dst[threadIdx.x] = src ? src[threadIdx.x] : 0;
  if (tail + threadIdx.x < n) dst[tail + threadIdx.x] = src ? src[tail + threadIdx.x] : 0;
  if (!src) {
    uint4* out = reinterpret_cast<uint4*>(dst + head);
    for (int64_t i = threadIdx.x; i < words; i += blockDim.x) out[i] = make_uint4(0, 0, 0, 0);
    return;
  }
  switch (w) {
    case 16: copy_words<uint4>(dst + head, src + head, words); break;
    case 8: copy_words<uint2>(dst + head, src + head, words); break;
    case 4: copy_words<uint32_t>(dst + head, src + head, words); break;
    case 2: copy_words<uint16_t>(dst + head, src + head, words); break;
    default: copy_words<uint8_t>(dst + head, src + head, words); break;
  }
}

template <int N>
void launch_pack(const PackItem* items, int count, cudaStream_t stream) {
  PackTable<N> table;  // entries past count are never read
  std::copy(items, items + count, table.items);
  pack_flat_kernel<N><<<unsigned(count), kPackThreads, 0, stream>>>(table);
  ZT_CUDA_LAUNCH_CHECK("pack_flat_kernel");
}

}  // namespace

void CudaBackend::pack_flat(const Tensor& dst, const std::vector<Tensor>& srcs, const std::vector<int64_t>& offsets) {
  const int device = common_device("pack_flat", {&dst});  // the plan puts every source on dst's device
  const int64_t es = int64_t(dst.element_size());
  const std::vector<PackPiece> pieces = plan_pack_flat(dst, srcs, offsets, kPieceBytes / es);
  if (pieces.empty()) return;
  DeviceGuard guard(device);
  char* base = static_cast<char*>(dst.raw_data());
  std::vector<const char*> from(srcs.size(), nullptr);
  for (size_t i = 0; i < srcs.size(); ++i)
    if (srcs[i].numel() > 0) from[i] = static_cast<const char*>(srcs[i].raw_data());
  std::vector<PackItem> items;
  items.reserve(pieces.size());
  for (const PackPiece& p : pieces)
    items.push_back(PackItem{base + p.dst_offset * es, p.src < 0 ? nullptr : from[size_t(p.src)] + p.src_offset * es,
                             p.numel * es});
  cudaStream_t stream = current_stream(device);
  for (size_t at = 0; at < items.size(); at += kLargeTable) {
    const int count = int(std::min<size_t>(kLargeTable, items.size() - at));
    if (count <= kSmallTable) {
      launch_pack<kSmallTable>(items.data() + at, count, stream);
    } else {
      launch_pack<kLargeTable>(items.data() + at, count, stream);
    }
  }
}

}  // namespace zt::cuda
