// Raw NCCL for the communication benchmark (bench/bench_comm.cpp): NCCL called directly on a
// communicator, buffers and stream of its own, timed with CUDA events, as nccl-tests would. No
// CUDA header here (DESIGN.md §1); it links when the CUDA backend is built with NCCL.
#pragma once
#include <memory>
#include <string>

#include "cuda/bench_reference.h"
#include "parallel/communicator.h"

namespace zt::cuda::bench {

class RawNccl {
 public:
  // Collective over `bootstrap` (which broadcasts NCCL's unique id); buffers for collectives of
  // up to max_bytes (the full, gathered size) of f32.
  RawNccl(Communicator& bootstrap, int device, size_t max_bytes);
  ~RawNccl();
  RawNccl(const RawNccl&) = delete;
  RawNccl& operator=(const RawNccl&) = delete;
  // Milliseconds per call (median) of "all_reduce", "reduce_scatter" or "all_gather" over a
  // full buffer of `bytes` (reduce_scatter's input and all_gather's output are that size).
  double time_ms(const std::string& op, size_t bytes, const TimingOptions& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zt::cuda::bench
