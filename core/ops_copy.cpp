// Raw copy ops: contiguous, clone, dtype and device conversion, copy_, fill_, cat, pack_flat_.
#include "core/ops.h"
#include "core/ops_util.h"
#include "core/pack_flat.h"

namespace zt::raw {
namespace {

bool same_view(const Tensor& a, const Tensor& b) {
  return a.storage() == b.storage() && a.offset() == b.offset() && a.shape() == b.shape() &&
         a.strides() == b.strides() && a.dtype() == b.dtype();
}

// The backend that moves bytes between a host tensor and an accelerator tensor.
Backend& transfer_backend(Device a, Device b) {
  const Device accel = a.is_cpu() ? b : a;
  ZT_CHECK(has_backend(accel.type), "copy between ", a.str(), " and ", b.str(), ": no backend for ",
           accel.str(), " is registered (built without CUDA, or no GPU present)");
  return backend_for(accel);
}

}  // namespace

Tensor contiguous(const Tensor& a) {
  detail::check_defined("contiguous", {&a});
  if (a.is_contiguous()) return a;
  return clone(a);
}

Tensor clone(const Tensor& a) {
  detail::check_defined("clone", {&a});
  Tensor out = Tensor::empty(a.shape(), {a.dtype(), a.device()});
  if (out.numel() > 0) backend_for(a.device()).copy(out, a);
  return out;
}

Tensor to(const Tensor& a, DType dtype) {
  detail::check_defined("to", {&a});
  if (a.dtype() == dtype) return a;
  Tensor out = Tensor::empty(a.shape(), {dtype, a.device()});
  if (out.numel() > 0) backend_for(a.device()).copy(out, a);
  return out;
}

Tensor to(const Tensor& a, Device device) {
  detail::check_defined("to", {&a});
  if (a.device() == device) return a;
  ZT_CHECK(has_backend(device.type), "to(", device.str(), "): no backend for ", device.str(),
           " is registered (built without CUDA, or no GPU present)");
  Tensor out = Tensor::empty(a.shape(), {a.dtype(), device});
  copy_(out, a);
  return out;
}

// Same-device copies go to that device's kernel (strided, casting). Host <-> accelerator copies
// go to the accelerator's kernel with both sides contiguous and of one dtype: casts and
// re-striding happen on one side first.
void copy_(const Tensor& dst, const Tensor& src) {
  detail::check_defined("copy_", {&dst, &src});
  if (same_view(dst, src)) return;
  Tensor s = detail::broadcast_operand(src, dst.shape());
  if (dst.numel() == 0) return;
  if (detail::may_overlap(s, dst)) s = clone(s);  // overlapping views: read everything before writing
  if (dst.device() == s.device()) {
    backend_for(dst.device()).copy(dst, s);
    return;
  }
  Backend& backend = transfer_backend(dst.device(), s.device());
  s = contiguous(to(s, dst.dtype()));
  if (dst.is_contiguous()) {
    backend.copy(dst, s);
    return;
  }
  Tensor staging = Tensor::empty(dst.shape(), {dst.dtype(), dst.device()});
  backend.copy(staging, s);
  backend_for(dst.device()).copy(dst, staging);
}

TransferHandle copy_async(const Tensor& dst, const Tensor& src) {
  detail::check_defined("copy_async", {&dst, &src});
  ZT_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous(),
           "copy_async: expected contiguous tensors of one shape and dtype, found dst ", dst.str(), " and src ",
           src.str());
  const Device d = dst.device(), s = src.device();
  ZT_CHECK(d.is_cpu() || s.is_cpu() || d == s, "copy_async: expected a copy between the host and one device, found ",
           s.str(), " to ", d.str());
  return backend_for(d.is_cpu() ? s : d).copy_async(dst, src);
}

void fill_(const Tensor& dst, double value) {
  detail::check_defined("fill_", {&dst});
  if (dst.numel() == 0) return;
  if (dst.is_contiguous()) {
    backend_for(dst.device()).fill(dst, value);
    return;
  }
  // Kernels write contiguous outputs only: fill one element and broadcast-copy it.
  Tensor one = Tensor::empty({}, {dst.dtype(), dst.device()});
  backend_for(dst.device()).fill(one, value);
  copy_(dst, one);
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  ZT_CHECK(!tensors.empty(), "cat: expected at least one tensor");
  const Tensor& first = tensors[0];
  detail::check_defined("cat", {&first});
  ZT_CHECK(first.dim() > 0, "cat: cannot concatenate 0-dim tensors");
  const int d = normalize_dim(dim, first.dim());
  Shape out_shape = first.shape();
  out_shape[size_t(d)] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    detail::check_same_device("cat", {&first, &t});
    detail::check_same_dtype("cat", first, t);
    bool ok = t.dim() == first.dim();
    for (int64_t k = 0; ok && k < t.dim(); ++k) ok = k == d || t.size(k) == first.size(k);
    ZT_CHECK(ok, "cat: tensor ", i, " has shape ", shape_str(t.shape()), " but tensor 0 has ",
             shape_str(first.shape()), " (all dims but ", d, " must match)");
    out_shape[size_t(d)] += t.size(d);
  }
  Tensor out = Tensor::empty(out_shape, {first.dtype(), first.device()});
  int64_t start = 0;
  for (const Tensor& t : tensors) {
    copy_(narrow(out, d, start, t.size(d)), t);
    start += t.size(d);
  }
  return out;
}

void pack_flat_(const Tensor& dst, const std::vector<Tensor>& srcs, const std::vector<int64_t>& offsets) {
  plan_pack_flat(dst, srcs, offsets);  // the errors, before dispatch; the kernel plans its own pieces
  if (dst.numel() > 0) backend_for(dst.device()).pack_flat(dst, srcs, offsets);
}

}  // namespace zt::raw
