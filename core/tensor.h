// Tensor: a cheap handle over a shared TensorImpl (storage, shape, strides, offset, dtype,
// device, and an opaque autograd slot). Views share storage (DESIGN.md §2).
//
// Note [Raw vs differentiable ops]
// core/ knows nothing of autograd. Compute ops here live in namespace zt::raw and never record
// a graph; the differentiable ops users call (zt::add, zt::matmul, operators) live in
// autograd/ops.h and call these. Creation functions (zt::zeros, zt::randn, ...) are not
// differentiable and live in namespace zt directly (core/factory.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/storage.h"

namespace zt {

// The autograd layer hangs its per-tensor state here; core only holds the pointer.
struct AutogradSlot {
  virtual ~AutogradSlot() = default;
};

struct TensorOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  TensorOptions() = default;
  TensorOptions(DType t) : dtype(t) {}                   // NOLINT: allow zt::zeros(s, DType::f64)
  TensorOptions(DType t, Device d) : dtype(t), device(d) {}
  TensorOptions(Device d) : device(d) {}                 // NOLINT
};

struct TensorImpl {
  Storage storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  std::shared_ptr<AutogradSlot> autograd;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: used for "absent" optional tensors
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // A new contiguous tensor with uninitialised memory, tagged with the current category.
  static Tensor empty(const Shape& shape, TensorOptions options = {});
  // A view over existing storage.
  static Tensor view_of(Storage storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t dim() const { return int64_t(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  size_t element_size() const { return dtype_size(dtype()); }
  size_t nbytes() const { return size_t(numel()) * element_size(); }
  bool is_contiguous() const;
  const Storage& storage() const { return impl().storage; }
  std::string str() const;  // "Tensor(shape=(2, 3), dtype=f32, device=cpu)"

  // Pointer to the first element (storage + offset).
  void* raw_data() const;
  template <typename T>
  T* data() const {
    ZT_CHECK(DTypeOf<T>::value == dtype(), "data<T>(): tensor has dtype ", dtype_name(dtype()),
             " but T is ", dtype_name(DTypeOf<T>::value));
    return static_cast<T*>(raw_data());
  }
  // The single element as double (copies from the device when needed).
  double item() const;
  // All elements in logical (row-major) order, converted to T, on the host.
  template <typename T>
  std::vector<T> to_vector() const;

  // Same data, another handle: shares storage and autograd slot.
  bool same_impl(const Tensor& other) const { return impl_ == other.impl_; }
  bool shares_storage(const Tensor& other) const;
  TensorImpl& impl() const {
    ZT_CHECK(impl_, "operation on an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // Moves this tensor's memory accounting to another category (parameters, gradients...).
  void set_memory_category(MemoryCategory c) const { impl().storage->set_category(c); }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

extern template std::vector<float> Tensor::to_vector<float>() const;
extern template std::vector<double> Tensor::to_vector<double>() const;
extern template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
extern template std::vector<int32_t> Tensor::to_vector<int32_t>() const;

}  // namespace zt
