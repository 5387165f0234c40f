// OffloadedAdamState: the shard's fp32 state in host memory or NVMe chunks, stepped sub-group by
// sub-group with the CPU fused Adam, NVMe transfers pipelined around each step (Note [Offloaded
// Adam state] in zero/offload_store.h).
#include "zero/offload_store.h"

#include <algorithm>
#include <cstring>

#include "core/ops.h"

namespace zt {

const char* offload_device_name(OffloadDevice device) {
  return device == OffloadDevice::nvme ? "nvme" : "cpu";
}

OffloadDevice parse_offload_device(const std::string& name) {
  if (name == "cpu") return OffloadDevice::cpu;
  if (name == "nvme") return OffloadDevice::nvme;
  ZT_FAIL("unknown offload device '", name, "' (expected cpu or nvme)");
}

namespace {

constexpr int64_t kF32 = 4;  // bytes per state element

// Elements [begin, begin + length) of a contiguous host tensor, as a 1-D view.
Tensor flat_range(const Tensor& t, int64_t begin, int64_t length) {
  return Tensor::view_of(t.storage(), {length}, {1}, t.offset() + begin, t.dtype());
}

// A 1-D f32 view of `length` elements at element `offset` of host memory owned elsewhere.
Tensor f32_view(void* base, int64_t offset, int64_t length) {
  auto storage = std::make_shared<StorageImpl>(static_cast<float*>(base) + offset, size_t(length * kF32),
                                               Device::cpu());
  return Tensor::view_of(std::move(storage), {length}, {1}, 0, DType::f32);
}

const Tensor& field_of(const auto& views, AdamStateField field) {
  if (field == AdamStateField::master) return views.master;
  return field == AdamStateField::exp_avg ? views.exp_avg : views.exp_avg_sq;
}

void check_host_shard(const char* what, const Tensor& t, int64_t numel, std::initializer_list<DType> dtypes) {
  ZT_CHECK(t.defined() && t.device().is_cpu() && t.is_contiguous() && t.numel() == numel, "OffloadedAdamState: ",
           what, " must be a contiguous host tensor of ", numel, " elements, found ",
           t.defined() ? t.str() : std::string("an undefined tensor"));
  ZT_CHECK(std::find(dtypes.begin(), dtypes.end(), t.dtype()) != dtypes.end(), "OffloadedAdamState: ", what,
           " has unsupported dtype ", dtype_name(t.dtype()));
}

}  // namespace

OffloadedAdamState::OffloadedAdamState(const Tensor& initial_master, const OffloadOptions& options)
    : numel_(initial_master.numel()), options_(options) {
  ZT_CHECK(initial_master.device().is_cpu() && is_floating(initial_master.dtype()),
           "OffloadedAdamState: the initial master must be a floating host tensor, found ", initial_master.str());
  ZT_CHECK(options.sub_group_size > 0, "OffloadedAdamState: expected sub_group_size > 0, found ",
           options.sub_group_size);
  ZT_CHECK(numel_ <= INT64_MAX / (4 * kF32), "OffloadedAdamState: ", numel_, " elements overflow a byte count");
  ZT_CHECK(options.device == OffloadDevice::cpu || options.buffer_count >= 1,
           "OffloadedAdamState: expected buffer_count >= 1, found ", options.buffer_count);
  sub_group_size_ = std::min(options.sub_group_size, std::max<int64_t>(numel_, 1));
  if (numel_ == 0) return;
  const bool pin = options.pin_memory && options.pinned_allocator;
  Allocator& host = pin ? *options.pinned_allocator : allocator_for(Device::cpu());
  pinned_ = pin;
  if (options.device == OffloadDevice::cpu) {
    const char* names[] = {"fp32 master weights", "exp_avg", "exp_avg_sq"};
    for (const char* name : names)
      host_state_.emplace_back(host, numel_ * kF32, 64,
                               std::string("the offloaded ") + name + " of " + std::to_string(numel_) +
                                   " elements (offload device cpu, 12 bytes per element in all)",
                               "set the offload device to nvme with an nvme_path to keep the optimizer state on disk");
    raw::copy_(f32_view(host_state_[0].data(), 0, numel_), raw::reshape(initial_master, {numel_}));
    std::memset(host_state_[1].data(), 0, size_t(numel_ * kF32));
    std::memset(host_state_[2].data(), 0, size_t(numel_ * kF32));
    return;
  }
  NvmeSwapperOptions io;
  io.nvme_path = options.nvme_path;
  io.rank = options.rank;
  io.chunk_bytes = 3 * sub_group_size_ * kF32;
  io.chunk_count = sub_group_count();
  io.buffer_count = int(std::min<int64_t>(options.buffer_count, io.chunk_count));
  io.io_threads = options.io_threads;
  io.host_allocator = &host;
  swapper_ = std::make_unique<NvmeSwapper>(io);
  initialise_nvme(raw::contiguous(raw::reshape(initial_master, {numel_})));
}

OffloadedAdamState::~OffloadedAdamState() = default;

OffloadedAdamState::SubGroup OffloadedAdamState::sub_group(int64_t k) const {
  const int64_t begin = k * sub_group_size_;
  return {begin, std::min(sub_group_size_, numel_ - begin)};
}

OffloadedAdamState::StateViews OffloadedAdamState::host_views(int64_t k) const {
  const SubGroup g = sub_group(k);
  return {f32_view(host_state_[0].data(), g.begin, g.length), f32_view(host_state_[1].data(), g.begin, g.length),
          f32_view(host_state_[2].data(), g.begin, g.length)};
}

OffloadedAdamState::StateViews OffloadedAdamState::buffer_views(int64_t k, int buffer) const {
  const int64_t length = sub_group(k).length;
  void* base = swapper_->buffer(buffer);
  return {f32_view(base, 0, length), f32_view(base, sub_group_size_, length),
          f32_view(base, 2 * sub_group_size_, length)};
}

void OffloadedAdamState::initialise_nvme(const Tensor& initial_master) {
  const int64_t chunks = sub_group_count();
  const int buffers = swapper_->buffer_count();
  std::vector<IoRequest> writes(static_cast<size_t>(chunks));
  try {
    for (int64_t k = 0; k < chunks; ++k) {
      const int b = int(k % buffers);
      if (k >= buffers) writes[size_t(k - buffers)].wait();
      std::memset(swapper_->buffer(b), 0, size_t(swapper_->chunk_bytes()));
      const SubGroup g = sub_group(k);
      raw::copy_(buffer_views(k, b).master, flat_range(initial_master, g.begin, g.length));
      writes[size_t(k)] = swapper_->write_async(k, b);
    }
    for (const IoRequest& w : writes) w.wait();
  } catch (...) {
    for (const IoRequest& w : writes) w.drain();
    throw;
  }
}

void OffloadedAdamState::step(const Tensor& grad, const AdamOptions& hyper, bool decoupled, int64_t step,
                              const Tensor& model_copy_out, const GradientScale& grad_scale) {
  this->step(grad, {AdamRange{0, numel_, hyper, decoupled, step}}, model_copy_out, grad_scale);
}

void OffloadedAdamState::step(const Tensor& grad, const std::vector<AdamRange>& ranges,
                              const Tensor& model_copy_out, const GradientScale& grad_scale) {
  check_host_shard("grad", grad, numel_, {DType::f32, DType::bf16, DType::f16});
  if (model_copy_out.defined())
    check_host_shard("model_copy_out", model_copy_out, numel_, {DType::bf16, DType::f16, DType::f32});
  std::vector<AdamRange> sorted = ranges;
  std::sort(sorted.begin(), sorted.end(), [](const AdamRange& a, const AdamRange& b) { return a.begin < b.begin; });
  int64_t end = 0;
  for (const AdamRange& r : sorted) {
    ZT_CHECK(r.begin >= 0 && r.length >= 0 && r.begin + r.length <= numel_, "OffloadedAdamState: range [",
             r.begin, ", ", r.begin + r.length, ") is outside the shard's ", numel_, " elements");
    ZT_CHECK(r.length == 0 || r.begin >= end, "OffloadedAdamState: range [", r.begin, ", ", r.begin + r.length,
             ") overlaps the one ending at ", end);
    ZT_CHECK(r.step >= 1, "OffloadedAdamState: expected step >= 1, found ", r.step);
    end = std::max(end, r.begin + r.length);
  }
  if (numel_ == 0) return;
  auto step_one = [&](const StateViews& state, int64_t k) {
    step_sub_group(state, k, grad, sorted, model_copy_out, grad_scale);
  };
  if (!swapper_) {
    // Only the sub-groups a range touches: the offload pipeline (Note [ZeRO-Offload pipeline])
    // steps one chunk per call, and visiting every sub-group each time would be quadratic.
    int64_t lo = numel_, hi = 0;
    for (const AdamRange& r : sorted) {
      if (r.length == 0) continue;
      lo = std::min(lo, r.begin);
      hi = std::max(hi, r.begin + r.length);
    }
    for (int64_t k = lo / sub_group_size_; lo < hi && k * sub_group_size_ < hi; ++k) step_one(host_views(k), k);
    return;
  }
  step_nvme(step_one);
}

// Each range's part of sub-group k is one fused step over contiguous views.
void OffloadedAdamState::step_sub_group(const StateViews& state, int64_t k, const Tensor& grad,
                                        const std::vector<AdamRange>& ranges, const Tensor& model_copy_out,
                                        const GradientScale& grad_scale) const {
  const SubGroup g = sub_group(k);
  for (const AdamRange& r : ranges) {
    const int64_t lo = std::max(g.begin, r.begin), hi = std::min(g.begin + g.length, r.begin + r.length);
    if (lo >= hi) continue;
    auto part = [&](const Tensor& t) { return raw::narrow(t, 0, lo - g.begin, hi - lo); };
    const Tensor copy = model_copy_out.defined() ? flat_range(model_copy_out, lo, hi - lo) : Tensor();
    const bool copy_in_pass = copy.defined() && copy.dtype() != DType::f32;  // the kernel writes 16-bit copies
    const Tensor master = part(state.master);
    raw::adam_step_(master, flat_range(grad, lo, hi - lo), part(state.exp_avg), part(state.exp_avg_sq), r.hyper.lr,
                    r.hyper.beta1, r.hyper.beta2, r.hyper.eps, r.hyper.weight_decay, r.decoupled, r.step,
                    copy_in_pass ? copy : Tensor(), grad_scale);
    if (copy.defined() && !copy_in_pass) raw::copy_(copy, master);  // still in cache
  }
}

// Sub-group k uses buffer k % B. Reads run up to max(1, B - 2) sub-groups ahead, so with B >= 3
// the write of k - 1 and the reads ahead overlap the step of k; a read into a buffer first waits
// for that buffer's previous write. With one buffer everything is serial.
void OffloadedAdamState::step_nvme(const std::function<void(const StateViews&, int64_t)>& step_one) {
  const int64_t chunks = sub_group_count();
  const int buffers = swapper_->buffer_count();
  std::vector<IoRequest> reads(static_cast<size_t>(chunks)), writes(static_cast<size_t>(chunks));
  auto issue_read = [&](int64_t j) {
    if (j >= buffers) writes[size_t(j - buffers)].wait();
    reads[size_t(j)] = swapper_->read_async(j, int(j % buffers));
  };
  try {
    issue_read(0);
    int64_t next_read = 1;
    const int64_t ahead = buffers == 1 ? 0 : std::max(1, buffers - 2);
    for (int64_t k = 0; k < chunks; ++k) {
      reads[size_t(k)].wait();
      for (; next_read < chunks && next_read <= k + ahead; ++next_read) issue_read(next_read);
      step_one(buffer_views(k, int(k % buffers)), k);
      writes[size_t(k)] = swapper_->write_async(k, int(k % buffers));
      if (buffers == 1 && next_read < chunks) issue_read(next_read++);
    }
    for (const IoRequest& w : writes) w.wait();
  } catch (...) {  // no transfer may outlive the step into buffers the next call reuses
    for (const IoRequest& r : reads) r.drain();
    for (const IoRequest& w : writes) w.drain();
    throw;
  }
}

void OffloadedAdamState::for_each_range(AdamStateField field, int64_t begin, int64_t n, bool modify,
                                        const std::function<void(const Tensor& state, int64_t at)>& move) const {
  ZT_CHECK(begin >= 0 && n >= 0 && begin + n <= numel_, "OffloadedAdamState: range [", begin, ", ", begin + n,
           ") is outside the shard's ", numel_, " elements");
  if (n == 0) return;
  for (int64_t k = begin / sub_group_size_; k * sub_group_size_ < begin + n; ++k) {
    const SubGroup g = sub_group(k);
    const int64_t lo = std::max(begin, g.begin), hi = std::min(begin + n, g.begin + g.length);
    if (!swapper_) {
      move(raw::narrow(field_of(host_views(k), field), 0, lo - g.begin, hi - lo), lo - begin);
      continue;
    }
    swapper_->read_async(k, 0).wait();
    move(raw::narrow(field_of(buffer_views(k, 0), field), 0, lo - g.begin, hi - lo), lo - begin);
    if (modify) swapper_->write_async(k, 0).wait();
  }
}

void OffloadedAdamState::read(AdamStateField field, int64_t begin, const Tensor& out) const {
  check_host_shard("read's out", out, out.defined() ? out.numel() : 0, {DType::f32});
  for_each_range(field, begin, out.numel(), false, [&](const Tensor& state, int64_t at) {
    raw::copy_(flat_range(out, at, state.numel()), state);
  });
}

void OffloadedAdamState::write(AdamStateField field, int64_t begin, const Tensor& values) {
  check_host_shard("write's values", values, values.defined() ? values.numel() : 0, {DType::f32});
  for_each_range(field, begin, values.numel(), true, [&](const Tensor& state, int64_t at) {
    raw::copy_(state, flat_range(values, at, state.numel()));
  });
}

Tensor OffloadedAdamState::host_master() const {
  if (swapper_ || numel_ == 0) return Tensor();
  return f32_view(host_state_[0].data(), 0, numel_);
}

int64_t OffloadedAdamState::host_bytes() const {
  if (swapper_) return swapper_->host_bytes();
  int64_t total = 0;
  for (const HostBuffer& b : host_state_) total += b.held_bytes();
  return total;
}

int64_t OffloadedAdamState::disk_bytes() const { return swapper_ ? swapper_->disk_bytes() : 0; }

}  // namespace zt
