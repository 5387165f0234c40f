// NvmeParamShard (zero/nvme_param_shard.h): element ranges of a file moved through the
// swapper's chunk buffers.
#include "zero/nvme_param_shard.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/factory.h"

namespace zt {

NvmeParamShard::NvmeParamShard(const NvmeParamShardOptions& options) : options_(options) {
  ZT_CHECK(options.numel > 0 && options.chunk_elements > 0, "NvmeParamShard: expected numel > 0 and chunk_elements > 0, "
           "found ", options.numel, " and ", options.chunk_elements);
  elem_ = int64_t(dtype_size(options.dtype));
  chunk_bytes_ = std::min(options.chunk_elements, options.numel) * elem_;
  NvmeSwapperOptions so;
  so.nvme_path = options.nvme_path;
  so.rank = options.rank;
  so.chunk_bytes = chunk_bytes_;
  so.chunk_count = (options.numel * elem_ + chunk_bytes_ - 1) / chunk_bytes_;
  so.buffer_count = options.buffer_count;
  so.host_allocator = options.host_allocator;
  so.category = MemoryCategory::parameters;
  so.advice = "lower zero_optimization.offload_param.buffer_count or buffer_size";
  swapper_ = std::make_unique<NvmeSwapper>(so);
}

void NvmeParamShard::check_range(const char* what, int64_t offset, const Tensor& t) const {
  ZT_CHECK(t.device().is_cpu() && t.is_contiguous() && t.dtype() == options_.dtype, "NvmeParamShard::", what,
           ": expected a contiguous host tensor of ", dtype_name(options_.dtype), ", found ", t.str());
  ZT_CHECK(offset >= 0 && offset + t.numel() <= options_.numel, "NvmeParamShard::", what, ": elements [", offset,
           ", ", offset + t.numel(), ") are outside the shard of ", options_.numel);
}

void NvmeParamShard::read(int64_t offset, const Tensor& dst) {
  check_range("read", offset, dst);
  if (dst.numel() == 0) return;
  const int64_t b0 = offset * elem_, b1 = (offset + dst.numel()) * elem_;
  const int64_t first = b0 / chunk_bytes_, last = (b1 - 1) / chunk_bytes_;
  const int nbuf = swapper_->buffer_count();
  auto* out = static_cast<unsigned char*>(dst.raw_data());
  std::vector<IoRequest> pending(static_cast<size_t>(nbuf));
  // Reads run up to nbuf chunks ahead of the copies out of the buffers.
  int64_t issued = first;
  auto issue_until = [&](int64_t limit) {
    for (; issued <= std::min(limit, last); ++issued)
      pending[size_t(issued % nbuf)] = swapper_->read_async(issued, int(issued % nbuf));
  };
  try {
    issue_until(first + nbuf - 1);
    for (int64_t k = first; k <= last; ++k) {
      const int buf = int(k % nbuf);
      pending[size_t(buf)].wait();
      const int64_t c0 = k * chunk_bytes_, lo = std::max(b0, c0), hi = std::min(b1, c0 + chunk_bytes_);
      std::memcpy(out + (lo - b0), static_cast<const unsigned char*>(swapper_->buffer(buf)) + (lo - c0), size_t(hi - lo));
      issue_until(k + nbuf);  // the buffer just emptied takes chunk k + nbuf
    }
  } catch (...) {
    for (const IoRequest& r : pending) r.drain();
    throw;
  }
}

void NvmeParamShard::write(int64_t offset, const Tensor& src) {
  check_range("write", offset, src);
  if (src.numel() == 0) return;
  const int64_t b0 = offset * elem_, b1 = (offset + src.numel()) * elem_;
  const int64_t first = b0 / chunk_bytes_, last = (b1 - 1) / chunk_bytes_;
  const int nbuf = swapper_->buffer_count();
  const auto* in = static_cast<const unsigned char*>(src.raw_data());
  std::vector<IoRequest> pending(static_cast<size_t>(nbuf));
  try {
    for (int64_t k = first; k <= last; ++k) {
      const int buf = int(k % nbuf);
      pending[size_t(buf)].wait();  // the buffer's previous write is done
      const int64_t c0 = k * chunk_bytes_, lo = std::max(b0, c0), hi = std::min(b1, c0 + chunk_bytes_);
      // A chunk the range covers only in part keeps its other bytes: read it first.
      if (lo > c0 || hi < std::min(c0 + chunk_bytes_, options_.numel * elem_)) swapper_->read_async(k, buf).wait();
      std::memcpy(static_cast<unsigned char*>(swapper_->buffer(buf)) + (lo - c0), in + (lo - b0), size_t(hi - lo));
      pending[size_t(buf)] = swapper_->write_async(k, buf);
    }
    for (const IoRequest& r : pending) r.wait();
  } catch (...) {
    for (const IoRequest& r : pending) r.drain();
    throw;
  }
}

Tensor NvmeParamShard::read_all() {
  Tensor out = empty({options_.numel}, TensorOptions(options_.dtype, Device::cpu()));
  read(0, out);
  return out;
}

}  // namespace zt
