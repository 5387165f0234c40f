// Tensor handle: construction, metadata and host read-back.
#include "core/tensor.h"

#include <sstream>

#include "core/ops.h"

namespace zt {

Tensor Tensor::empty(const Shape& shape, TensorOptions options) {
  for (int64_t s : shape) ZT_CHECK(s >= 0, "negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  const size_t bytes = size_t(shape_numel(shape)) * dtype_size(options.dtype);
  impl->storage = std::make_shared<StorageImpl>(bytes, options.device, current_memory_category());
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::view_of(Storage storage, Shape shape, Shape strides, int64_t offset, DType dtype) {
  ZT_CHECK(shape.size() == strides.size(), "view_of: shape ", shape_str(shape), " and strides ",
           shape_str(strides), " differ in rank");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int64_t d) const { return shape()[size_t(normalize_dim(d, dim()))]; }
int64_t Tensor::stride(int64_t d) const { return strides()[size_t(normalize_dim(d, dim()))]; }

bool Tensor::is_contiguous() const {
  const auto& sh = shape();
  const auto& st = strides();
  int64_t expected = 1;
  for (size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;  // the stride of a size-1 dim never matters
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  const StorageImpl& storage = *impl().storage;
  // Note [Released storage] in core/storage.h: the memory is gone until materialized again.
  ZT_CHECK(!storage.released(), "storage released (ZeRO-3 partitioned parameter not gathered): ", str(),
           " views ", storage.bytes(), " bytes of ", memory_category_name(storage.category()),
           " memory that were freed; ZeRO stage 3 gathers a module's parameters only inside its forward "
           "and backward (read them through the module, or gather them first)");
  auto* base = static_cast<char*>(storage.data());
  return base ? base + offset() * int64_t(element_size()) : nullptr;
}

bool Tensor::shares_storage(const Tensor& other) const {
  return defined() && other.defined() && storage() == other.storage();
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype())
     << ", device=" << device().str() << ")";
  return os.str();
}

double Tensor::item() const {
  ZT_CHECK(numel() == 1, "item(): expected a tensor of one element, got shape ", shape_str(shape()));
  return to_vector<double>()[0];
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  if (!defined()) return {};
  const Tensor host = device().is_cpu() ? *this : raw::to(*this, Device::cpu());
  std::vector<T> out(size_t(host.numel()));
  if (out.empty()) return out;
  const auto& sh = host.shape();
  const auto& st = host.strides();
  const int nd = int(sh.size());
  ZT_DISPATCH_ALL(host.dtype(), "to_vector", [&]<typename S>() {
    const S* base = static_cast<const S*>(host.raw_data());
    std::vector<int64_t> idx(size_t(nd), 0);
    for (size_t n = 0; n < out.size(); ++n) {
      int64_t off = 0;
      for (int d = 0; d < nd; ++d) off += idx[size_t(d)] * st[size_t(d)];
      out[n] = static_cast<T>(static_cast<compute_t<S>>(base[off]));
      for (int d = nd - 1; d >= 0; --d) {  // odometer increment over the logical index
        if (++idx[size_t(d)] < sh[size_t(d)]) break;
        idx[size_t(d)] = 0;
      }
    }
  });
  return out;
}

template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;

}  // namespace zt
