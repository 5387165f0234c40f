// Communication benchmark (issue 4): all_reduce, reduce_scatter and all_gather of f32 buffers
// from 1 MiB to 1 GiB through zerotrain's NCCL communicator (parallel/device_communicator.h),
// beside NCCL called directly on its own communicator in the same run (cuda/bench_nccl.h).
// Bus bandwidth as nccl-tests counts it (S the full buffer, W ranks, t the median time):
// all_reduce 2 S (W-1)/W / t, reduce_scatter and all_gather S (W-1)/W / t; a world of one has
// no bus traffic, so the algorithm bandwidth S / t is printed instead.
//   mpirun -np 2 build-gpu/bin/bench_comm [--max-mib 1024]
// Built only with CUDA and NCCL; one GPU per rank (the local rank picks it).
#include <cstdio>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/ops.h"
#include "cuda/bench_nccl.h"
#include "cuda/cuda_api.h"
#include "parallel/device_communicator.h"
#include "parallel/mpi_runtime.h"

namespace {

namespace ref = zt::cuda::bench;

struct Row {
  std::string op;
  size_t bytes = 0;
  double zt_gbs = 0, nccl_gbs = 0;
};

double bus_factor(const std::string& op, int world) {
  if (world == 1) return 1.0;  // algorithm bandwidth
  const double w = double(world);
  return op == "all_reduce" ? 2.0 * (w - 1) / w : (w - 1) / w;
}

int run(int argc, char** argv) {
  int64_t max_mib = 1024;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--max-mib" && i + 1 < argc) {
      max_mib = std::stoll(argv[++i]);
    } else {
      std::printf("usage: bench_comm [--max-mib N]   (under mpirun -np W, one GPU per rank)\n");
      return arg == "--help" ? 0 : 2;
    }
  }
  zt::MpiRuntime mpi;
  const auto& world = mpi.world();
  if (zt::cuda::device_count() == 0) {
    std::printf("bench_comm: no CUDA device, nothing to measure\n");
    return 0;
  }
  const int device = zt::device_index_for_local_rank(mpi.launch_info(), zt::cuda::device_count());
  const int W = world->size();
  const bool lead = world->rank() == 0;
  auto comm = zt::device_communicator(world, zt::Device::cuda(device));
  const size_t max_bytes = size_t(max_mib) << 20;
  ref::RawNccl raw(*world, device, max_bytes);
  const zt::TensorOptions f32(zt::DType::f32, zt::Device::cuda(device));
  std::vector<Row> rows;
  if (lead)
    std::printf("bench_comm: %d ranks, %s, f32, %s bandwidth in GB/s (median of 10)\n", W, comm->backend_name().c_str(),
                W == 1 ? "algorithm" : "bus");
  for (const std::string op : {"all_reduce", "reduce_scatter", "all_gather"}) {
    for (size_t bytes = size_t(1) << 20; bytes <= max_bytes; bytes *= 4) {
      const int64_t count = int64_t(bytes / sizeof(float)), part = count / W;
      zt::Tensor full = zt::full({count}, 1.0, f32), piece = zt::full({part}, 1.0, f32);
      ref::TimingOptions t;
      t.iters = bytes < (size_t(64) << 20) ? 20 : 3;
      const double zt_ms = ref::time_ms(device, t, [&] {
        if (op == "all_reduce") comm->all_reduce_async(full)->wait();
        else if (op == "reduce_scatter") comm->reduce_scatter_async(full, piece)->wait();
        else comm->all_gather_async(piece, full)->wait();
      });
      const double nccl_ms = raw.time_ms(op, bytes, t);
      const double f = bus_factor(op, W) * double(bytes) / 1e9 * 1e3;
      rows.push_back({op, bytes, f / zt_ms, f / nccl_ms});
      if (lead)
        std::printf("  %-15s %8.1f MiB  zerotrain %8.1f  raw NCCL %8.1f  %6.1f%%\n", op.c_str(), double(bytes) / (1 << 20),
                    rows.back().zt_gbs, rows.back().nccl_gbs, 100 * rows.back().zt_gbs / rows.back().nccl_gbs);
    }
  }
  if (!lead) return 0;
  int below = 0, counted = 0;
  for (const Row& r : rows) {
    if (r.bytes < (size_t(64) << 20)) continue;  // the target starts at 64 MiB
    ++counted;
    below += r.zt_gbs < 0.95 * r.nccl_gbs;
  }
  std::printf("== summary: %d of %d sizes >= 64 MiB below 95%% of raw NCCL\n", below, counted);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_comm: error: %s\n", e.what());
    return 1;
  }
}
