// NvmeParamShard (zero/nvme_param_shard.h): element ranges written and read back through chunks
// smaller than the ranges and fewer buffers than chunks, partial chunks kept, clear errors, and
// nothing left on disk.
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/factory.h"
#include "core/ops.h"
#include "tests/temp_dir.h"
#include "zero/nvme_param_shard.h"

using namespace zt;

namespace {

NvmeParamShardOptions shard_options(const std::string& path, int64_t numel, int64_t chunk, int buffers) {
  NvmeParamShardOptions o;
  o.nvme_path = path;
  o.numel = numel;
  o.dtype = DType::bf16;
  o.chunk_elements = chunk;
  o.buffer_count = buffers;
  return o;
}

std::vector<double> values(const Tensor& t) { return raw::to(t, DType::f64).to_vector<double>(); }

Tensor ramp(int64_t n, double start) {
  return raw::to(raw::add(raw::mul(arange(0, double(n), 1, DType::f32), 0.5), start), DType::bf16);
}

}  // namespace

TEST_CASE("NvmeParamShard: ranges across chunks round-trip, partial chunks keep their other elements") {
  zt::test::TempDir dir("zt_nvme_param");
  {
    NvmeParamShard shard(shard_options(dir.path, 101, 7, 3));  // 15 chunks, the last one short
    const Tensor all = ramp(101, 1.0);
    shard.write(0, all);
    CHECK(values(shard.read_all()) == values(all));
    // A write inside chunks 1-4 (elements 10..29) leaves the rest of those chunks alone.
    const Tensor part = ramp(20, -40.0);
    shard.write(10, part);
    std::vector<double> want = values(all);
    const std::vector<double> p = values(part);
    for (size_t i = 0; i < p.size(); ++i) want[10 + i] = p[i];
    CHECK(values(shard.read_all()) == want);
    // Reads of every length at several offsets.
    for (int64_t offset : {0, 6, 7, 50, 100})
      for (int64_t n : {1, 7, 8, 30}) {
        if (offset + n > 101) continue;
        Tensor got = empty({n}, DType::bf16);
        shard.read(offset, got);
        CHECK(values(got) == std::vector<double>(want.begin() + offset, want.begin() + offset + n));
      }
    CHECK_THROWS_WITH_AS(shard.read(95, empty({10}, DType::bf16)), doctest::Contains("outside the shard of 101"), Error);
    CHECK_THROWS_WITH_AS(shard.write(0, empty({4}, DType::f32)), doctest::Contains("contiguous host tensor of bf16"),
                         Error);
    CHECK(!std::filesystem::is_empty(dir.path));  // the swap folder exists while the shard does
  }
  CHECK(std::filesystem::is_empty(dir.path));  // and is removed with it
  CHECK_THROWS_WITH_AS(NvmeParamShard(shard_options(dir.path + "/missing", 10, 4, 2)),
                       doctest::Contains("does not exist"), Error);
}
