// The stage-3 parameter shard of offload_param device nvme (ZeRO-Infinity): this rank's S
// elements of the compute dtype live in a file under nvme_path, read and written by element
// ranges through an NvmeSwapper (zero/nvme_swapper.h): fixed chunks of the file pass through a
// ring of aligned host buffers, several in flight. Gathers read one unit's slice; the step
// writes the whole shard back. Host memory: the buffers only (buffer_count chunks), counted as
// parameters on the given allocator.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "zero/nvme_swapper.h"

namespace zt {

struct NvmeParamShardOptions {
  std::string nvme_path;        // an existing, writable directory
  int rank = 0;                 // names the folder (NvmeSwapper)
  int64_t numel = 0;            // S
  DType dtype = DType::bf16;    // the compute dtype
  int64_t chunk_elements = 0;   // elements per chunk (> 0; the file moves in chunks)
  int buffer_count = 4;         // host buffers, each one chunk (>= 1)
  Allocator* host_allocator = nullptr;  // the buffers' memory; null: the CPU allocator
};

class NvmeParamShard {
 public:
  explicit NvmeParamShard(const NvmeParamShardOptions& options);

  int64_t numel() const { return options_.numel; }
  // Elements [offset, offset + dst.numel()) into dst, a contiguous host tensor of the dtype.
  void read(int64_t offset, const Tensor& dst);
  // src, a contiguous host tensor of the dtype, into elements [offset, offset + src.numel()).
  void write(int64_t offset, const Tensor& src);
  // The whole shard as a new host tensor (checkpoints, loading).
  Tensor read_all();
  const NvmeSwapper& swapper() const { return *swapper_; }

 private:
  void check_range(const char* what, int64_t offset, const Tensor& t) const;

  NvmeParamShardOptions options_;
  int64_t elem_ = 0, chunk_bytes_ = 0;
  std::unique_ptr<NvmeSwapper> swapper_;
};

}  // namespace zt
