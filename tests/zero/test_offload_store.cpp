// ZeRO-Offload's optimizer-state store (zero/offload_store.h) and NVMe swapper
// (zero/nvme_swapper.h): bit-identical to one raw::adam_step_ over the whole shard on cpu and
// nvme for any sub-group size and buffer count, range reads/writes, memory accounting, the
// per-rank folder and its removal, and the errors for bad paths, I/O failures and no memory.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "core/factory.h"
#include "core/ops.h"
#include "tests/error_of.h"
#include "tests/temp_dir.h"
#include "zero/offload_store.h"

namespace zt::test {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<uint32_t> bits(const Tensor& t) {  // the raw bits of an f32 or 16-bit tensor
  const size_t n = size_t(t.numel()), size = t.element_size();
  std::vector<uint32_t> out(n);
  for (size_t i = 0; i < n; ++i) std::memcpy(&out[i], static_cast<const char*>(t.raw_data()) + i * size, size);
  return out;
}

Tensor random_tensor(int64_t n, uint32_t seed, double scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, float(scale));
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = normal(rng);
  return from_vector<float>(v, {n});
}

Tensor read_field(const OffloadedAdamState& state, AdamStateField field) {
  Tensor out = empty({state.numel()});
  state.read(field, 0, out);
  return out;
}

// An allocator standing in for the pinned one: CPU memory, its own counters.
class CountingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, MemoryCategory category) override {
    stats_.record_alloc(int64_t(bytes), category);
    return allocator_for(Device::cpu()).allocate(bytes, category);
  }
  void deallocate(void* ptr, size_t bytes, MemoryCategory category) override {
    stats_.record_free(int64_t(bytes), category);
    allocator_for(Device::cpu()).deallocate(ptr, bytes, category);
  }
  void retag(size_t bytes, MemoryCategory from, MemoryCategory to) override { stats_.record_retag(int64_t(bytes), from, to); }
  MemoryStats stats() const override { return stats_; }
  void reset_peak() override { stats_.reset_peaks(); }

 private:
  MemoryStats stats_;
};

const AdamOptions kHyper{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};

struct DTypeCase {
  DType grad;
  DType copy;
  bool has_copy;
};

}  // namespace

TEST_CASE("OffloadedAdamState: cpu and nvme equal one raw::adam_step_ over the whole shard, bit for bit") {
  // 8 sub-groups of 9000 and a ragged last one; above the kernel's parallel threshold as a whole.
  const int64_t S = 70001, sub_group = 9000;
  const Tensor initial = random_tensor(S, 1, 1.0);
  const DTypeCase cases[] = {{DType::f32, DType::f32, false}, {DType::bf16, DType::bf16, true},
                             {DType::f16, DType::f16, true},  {DType::f32, DType::f32, true}};
  TempDir dir("zt_offload");
  struct Layout {
    OffloadDevice device;
    int buffers;
    int64_t sub_group;
  };
  const Layout layouts[] = {{OffloadDevice::cpu, 1, sub_group},  {OffloadDevice::cpu, 1, int64_t(1) << 30},
                            {OffloadDevice::nvme, 1, sub_group}, {OffloadDevice::nvme, 2, sub_group},
                            {OffloadDevice::nvme, 3, sub_group}, {OffloadDevice::nvme, 4, sub_group}};
  for (const DTypeCase& c : cases)
    for (const Layout& layout : layouts) {
      const std::string what = std::string(offload_device_name(layout.device)) + " buffers " +
                               std::to_string(layout.buffers) + " sub_group " + std::to_string(layout.sub_group) +
                               " grad " + dtype_name(c.grad) + " copy " + (c.has_copy ? dtype_name(c.copy) : "none");
      INFO(what);
      OffloadOptions options;
      options.device = layout.device;
      options.nvme_path = dir.path;
      options.buffer_count = layout.buffers;
      options.sub_group_size = layout.sub_group;
      options.io_threads = 2;
      OffloadedAdamState state(initial, options);
      Tensor p = raw::clone(initial), m = zeros({S}), v = zeros({S});
      Tensor copy = c.has_copy ? empty({S}, c.copy) : Tensor();
      Tensor want_copy = c.has_copy ? empty({S}, c.copy) : Tensor();
      for (int64_t step = 1; step <= 4; ++step) {
        const Tensor grad = raw::to(random_tensor(S, uint32_t(100 + step), 0.1), c.grad);
        state.step(grad, kHyper, /*decoupled=*/step % 2 == 0, step, copy);
        raw::adam_step_(p, grad, m, v, kHyper.lr, kHyper.beta1, kHyper.beta2, kHyper.eps, kHyper.weight_decay,
                        step % 2 == 0, step, c.copy == DType::f32 ? Tensor() : want_copy);
      }
      CHECK(bits(read_field(state, AdamStateField::master)) == bits(p));
      CHECK(bits(read_field(state, AdamStateField::exp_avg)) == bits(m));
      CHECK(bits(read_field(state, AdamStateField::exp_avg_sq)) == bits(v));
      if (c.has_copy) CHECK(bits(copy) == bits(c.copy == DType::f32 ? p : want_copy));
      CHECK(raw::max_abs_diff(p, initial) > 1e-3);  // the state moved
    }
}

// Parameter groups: each range is stepped with its own hyperparameters and step count, across
// sub-group boundaries; elements in no range keep their state and their model copy.
TEST_CASE("OffloadedAdamState: ranges with their own hyperparameters equal one raw::adam_step_ per range") {
  const int64_t S = 1000;
  const Tensor initial = random_tensor(S, 3, 1.0);
  TempDir dir("zt_offload");
  AdamOptions other = kHyper;
  other.lr = 3e-2;
  other.weight_decay = 0.0;
  other.beta2 = 0.99;
  for (const OffloadDevice device : {OffloadDevice::cpu, OffloadDevice::nvme}) {
    INFO(offload_device_name(device));
    OffloadOptions options;
    options.device = device;
    options.nvme_path = dir.path;
    options.buffer_count = 2;
    options.sub_group_size = 96;  // ranges cut sub-groups
    OffloadedAdamState state(initial, options);
    // [0, 400) AdamW at step 5, [400, 950) Adam with other hyperparameters at step 2; [950, 1000) left.
    const std::vector<AdamRange> ranges = {AdamRange{400, 550, other, false, 2}, AdamRange{0, 400, kHyper, true, 5}};
    const Tensor grad = random_tensor(S, 4, 0.1);
    Tensor copy = full({S}, 7.0, DType::bf16);
    state.step(grad, ranges, copy);
    const Tensor master = read_field(state, AdamStateField::master);
    Tensor want_copy = full({S}, 7.0, DType::bf16);
    for (const AdamRange& r : ranges) {
      Tensor p = raw::clone(raw::narrow(initial, 0, r.begin, r.length)), m = zeros({r.length}), v = zeros({r.length});
      raw::adam_step_(p, raw::contiguous(raw::narrow(grad, 0, r.begin, r.length)), m, v, r.hyper.lr, r.hyper.beta1,
                      r.hyper.beta2, r.hyper.eps, r.hyper.weight_decay, r.decoupled, r.step);
      CHECK(bits(raw::contiguous(raw::narrow(master, 0, r.begin, r.length))) == bits(p));
      raw::copy_(raw::narrow(want_copy, 0, r.begin, r.length), p);
    }
    CHECK(bits(raw::contiguous(raw::narrow(master, 0, 950, 50))) == bits(raw::narrow(initial, 0, 950, 50)));
    CHECK(bits(copy) == bits(want_copy));  // the tail keeps its 7s
    const std::string overlap = error_of([&] {
      state.step(grad, {AdamRange{0, 500, kHyper, true, 1}, AdamRange{499, 10, kHyper, true, 1}});
    });
    CHECK(contains(overlap, "range [499, 509) overlaps the one ending at 500"));
    CHECK(contains(error_of([&] { state.step(grad, {AdamRange{990, 20, kHyper, true, 1}}); }),
                   "range [990, 1010) is outside the shard's 1000 elements"));
  }
}

TEST_CASE("OffloadedAdamState: NVMe chunks of several I/O blocks on four I/O threads stay bit-identical") {
  // 12 MB chunks split into blocks that run concurrently: a read issued into a buffer before its
  // previous write finished would land in the file.
  const int64_t S = 3'500'001;
  const Tensor initial = random_tensor(S, 2, 1.0);
  TempDir dir("zt_offload");
  for (int buffers : {2, 3}) {
    INFO("buffers ", buffers);
    OffloadOptions options;
    options.device = OffloadDevice::nvme;
    options.nvme_path = dir.path;
    options.sub_group_size = 1'000'000;
    options.buffer_count = buffers;
    options.io_threads = 4;
    OffloadedAdamState state(initial, options);
    Tensor p = raw::clone(initial), m = zeros({S}), v = zeros({S});
    Tensor copy = empty({S}, DType::bf16), want_copy = empty({S}, DType::bf16);
    for (int64_t step = 1; step <= 2; ++step) {
      const Tensor grad = raw::to(random_tensor(S, uint32_t(200 + step), 0.1), DType::bf16);
      state.step(grad, kHyper, true, step, copy);
      raw::adam_step_(p, grad, m, v, kHyper.lr, kHyper.beta1, kHyper.beta2, kHyper.eps, kHyper.weight_decay, true,
                      step, want_copy);
    }
    CHECK(bits(read_field(state, AdamStateField::master)) == bits(p));
    CHECK(bits(read_field(state, AdamStateField::exp_avg_sq)) == bits(v));
    CHECK(bits(copy) == bits(want_copy));
  }
}

TEST_CASE("OffloadedAdamState: read and write move ranges across sub-groups, then the step uses them") {
  const int64_t S = 1000;
  TempDir dir("zt_offload");
  for (OffloadDevice device : {OffloadDevice::cpu, OffloadDevice::nvme}) {
    INFO(std::string(offload_device_name(device)));
    OffloadOptions options;
    options.device = device;
    options.nvme_path = dir.path;
    options.sub_group_size = 300;
    options.buffer_count = 2;
    const Tensor initial = random_tensor(S, 3, 1.0);
    OffloadedAdamState state(initial, options);
    // Moments restored from a "checkpoint" over [250, 950): three sub-groups, partly.
    const Tensor m_part = random_tensor(700, 4, 0.01), v_part = raw::unary(UnaryOp::abs, random_tensor(700, 5, 1e-4));
    state.write(AdamStateField::exp_avg, 250, m_part);
    state.write(AdamStateField::exp_avg_sq, 250, v_part);
    Tensor got = empty({700});
    state.read(AdamStateField::exp_avg, 250, got);
    CHECK(bits(got) == bits(m_part));
    Tensor m = zeros({S}), v = zeros({S});
    raw::copy_(raw::narrow(m, 0, 250, 700), m_part);
    raw::copy_(raw::narrow(v, 0, 250, 700), v_part);
    CHECK(bits(read_field(state, AdamStateField::exp_avg_sq)) == bits(v));  // the rest still zero
    Tensor p = raw::clone(initial);
    const Tensor grad = random_tensor(S, 6, 0.1);
    state.step(grad, kHyper, true, 5);
    raw::adam_step_(p, grad, m, v, kHyper.lr, kHyper.beta1, kHyper.beta2, kHyper.eps, kHyper.weight_decay, true, 5);
    CHECK(bits(read_field(state, AdamStateField::master)) == bits(p));
    CHECK(bits(read_field(state, AdamStateField::exp_avg)) == bits(m));
    CHECK(contains(error_of([&] { state.read(AdamStateField::master, 990, empty({20})); }),
                   "range [990, 1010) is outside the shard's 1000 elements"));
    CHECK(contains(error_of([&] { state.step(random_tensor(999, 1, 1.0), kHyper, true, 6); }),
                   "grad must be a contiguous host tensor of 1000 elements"));
  }
}

TEST_CASE("OffloadedAdamState: host memory is counted under optimizer_state, NVMe holds only buffers") {
  const int64_t S = 10000;
  TempDir dir("zt_offload");
  CountingAllocator pinned;
  OffloadOptions options;
  options.pinned_allocator = &pinned;
  {
    OffloadedAdamState state(random_tensor(S, 1, 1.0), options);
    CHECK(state.pinned());
    CHECK(state.disk_bytes() == 0);
    CHECK(state.host_bytes() >= 12 * S);
    CHECK(pinned.stats().of(MemoryCategory::optimizer_state).in_use == state.host_bytes());
  }
  CHECK(pinned.stats().of(MemoryCategory::optimizer_state).in_use == 0);
  options.pin_memory = false;
  options.device = OffloadDevice::nvme;
  options.nvme_path = dir.path;
  options.sub_group_size = 3000;  // 4 chunks of 36000 bytes, 36864 on disk each
  options.buffer_count = 2;
  const int64_t before = allocator_for(Device::cpu()).stats().of(MemoryCategory::optimizer_state).in_use;
  OffloadedAdamState state(random_tensor(S, 1, 1.0), options);
  CHECK_FALSE(state.pinned());
  CHECK(state.disk_bytes() == 4 * 36864);
  CHECK(state.host_bytes() < 3 * 36864);  // two buffers (plus alignment), not the state
  CHECK(allocator_for(Device::cpu()).stats().of(MemoryCategory::optimizer_state).in_use - before ==
        state.host_bytes());
  CHECK(pinned.stats().of(MemoryCategory::optimizer_state).in_use == 0);
}

TEST_CASE("NvmeSwapper: files live in a per-rank folder under nvme_path and are removed afterwards") {
  TempDir dir("zt_offload");
  std::string folder, file;
  {
    OffloadOptions options;
    options.device = OffloadDevice::nvme;
    options.nvme_path = dir.path;
    options.rank = 3;
    OffloadedAdamState state(random_tensor(100, 1, 1.0), options);
    folder = state.swapper()->folder();
    file = state.swapper()->file_path();
    CHECK(std::filesystem::path(folder).parent_path() == std::filesystem::path(dir.path));
    CHECK(std::filesystem::path(folder).filename().string().rfind("zt_offload_rank3_", 0) == 0);
    CHECK(std::filesystem::file_size(file) == uint64_t(state.disk_bytes()));
    const std::string note =
        "NVMe I/O on " + dir.path + ": " + (state.swapper()->direct_io() ? "O_DIRECT" : state.swapper()->io_note());
    MESSAGE(note);
  }
  CHECK_FALSE(std::filesystem::exists(folder));
  CHECK(std::filesystem::is_empty(dir.path));
}

TEST_CASE("NvmeSwapper: chunks larger than one I/O block round-trip through the thread pool") {
  TempDir dir("zt_offload");
  for (bool direct : {true, false}) {
    INFO("direct_io requested ", direct);
    NvmeSwapperOptions options;
    options.nvme_path = dir.path;
    options.chunk_bytes = NvmeSwapper::kIoBlockBytes * 2 + 12;  // three blocks, the last one short
    options.chunk_count = 2;
    options.buffer_count = 2;
    options.io_threads = 3;
    options.direct_io = direct;
    NvmeSwapper swapper(options);
    CHECK(swapper.direct_io() == swapper.io_note().empty());
    if (!direct) CHECK(contains(swapper.io_note(), "O_DIRECT disabled by the caller"));
    auto* a = static_cast<uint8_t*>(swapper.buffer(0));
    auto* b = static_cast<uint8_t*>(swapper.buffer(1));
    for (int64_t i = 0; i < options.chunk_bytes; ++i) a[i] = uint8_t(i * 7 + 1);
    for (int64_t i = 0; i < options.chunk_bytes; ++i) b[i] = uint8_t(i * 3 + 2);
    swapper.write_async(1, 0).wait();
    swapper.write_async(0, 1).wait();
    std::memset(a, 0, size_t(options.chunk_bytes));
    std::memset(b, 0, size_t(options.chunk_bytes));
    IoRequest r0 = swapper.read_async(0, 0), r1 = swapper.read_async(1, 1);
    r0.wait();
    r1.wait();
    int64_t bad = 0;
    for (int64_t i = 0; i < options.chunk_bytes; ++i) bad += a[i] != uint8_t(i * 3 + 2) || b[i] != uint8_t(i * 7 + 1);
    CHECK(bad == 0);
  }
}

TEST_CASE("NvmeSwapper: a short read in an I/O thread surfaces on wait() with the file and byte counts") {
  TempDir dir("zt_offload");
  NvmeSwapperOptions options;
  options.nvme_path = dir.path;
  options.chunk_bytes = 10000;
  options.chunk_count = 3;
  NvmeSwapper swapper(options);
  REQUIRE(::truncate(swapper.file_path().c_str(), 12288 + 100) == 0);  // chunk 1 cut short
  swapper.read_async(0, 0).wait();
  const std::string message = error_of([&] { swapper.read_async(1, 1).wait(); });
  CHECK(contains(message, "reading chunk 1 of '" + swapper.file_path() + "'"));
  CHECK(contains(message, "the file is shorter than expected"));
}

TEST_CASE("NvmeSwapper: a reservation the disk cannot hold fails up front, naming the file") {
  // RLIMIT_FSIZE stands in for a full disk: posix_fallocate past it fails with EFBIG.
  TempDir dir("zt_offload");
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 1 << 20;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  NvmeSwapperOptions options;
  options.nvme_path = dir.path;
  options.chunk_bytes = 1 << 20;
  options.chunk_count = 4;
  const std::string message = error_of([&] { NvmeSwapper swapper(options); });
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  CHECK(contains(message, "cannot reserve 4194304 bytes (4 chunks of 1048576 bytes) in '" + dir.path));
  CHECK(std::filesystem::is_empty(dir.path));  // the half-made folder is gone
}

TEST_CASE("OffloadedAdamState: a missing or unwritable nvme_path is an error naming it") {
  TempDir dir("zt_offload");
  const std::string file = dir.path + "/file";
  { std::ofstream(file) << "x"; }
  OffloadOptions options;
  options.device = OffloadDevice::nvme;
  const Tensor initial = zeros({10});
  auto message_for = [&](const std::string& path) {
    options.nvme_path = path;
    return error_of([&] { OffloadedAdamState state(initial, options); });
  };
  CHECK(contains(message_for(dir.path + "/missing"), "nvme_path '" + dir.path + "/missing' does not exist"));
  // Root ignores permission bits, so a path through a regular file is what cannot be written.
  CHECK(contains(message_for(file + "/sub"), "nvme_path '" + file + "/sub' cannot be used: Not a directory"));
  CHECK(contains(message_for(file), "nvme_path '" + file + "' is not a directory"));
  CHECK(contains(message_for(""), "nvme_path is empty"));
  CHECK(contains(error_of([] { parse_offload_device("disk"); }), "expected cpu or nvme"));
}

TEST_CASE("OffloadedAdamState: running out of host memory names the bytes and suggests nvme") {
  const int64_t S = int64_t(1) << 50;  // 4 PiB per state array: no allocator can give it
  const Tensor initial = raw::expand(zeros({1}), {S});
  const std::string message = error_of([&] { OffloadedAdamState state(initial, OffloadOptions{}); });
  CHECK(contains(message, "out of host memory: cannot allocate 4503599627370496 bytes"));
  CHECK(contains(message, "fp32 master weights of 1125899906842624 elements"));
  CHECK(contains(message, "set the offload device to nvme"));
}

}  // namespace zt::test
