// Pooling argument checks (core/pool_checks.h).
#include "core/pool_checks.h"

namespace zt {

PoolDims pool_dims(const Tensor& x, const Tensor& out, const Pool2dGeometry& g, const char* op) {
  for (const Tensor* t : {&x, &out})
    ZT_CHECK(t->dim() == 4 && t->is_contiguous(), op, ": expected contiguous 4-D tensors, found ",
             t->str());
  ZT_CHECK(x.dtype() == out.dtype(), op, ": input and output must share a dtype, found ",
           dtype_name(x.dtype()), " and ", dtype_name(out.dtype()));
  const PoolDims d{x.size(0) * x.size(1), x.size(2), x.size(3), out.size(2), out.size(3)};
  ZT_CHECK(out.size(0) == x.size(0) && out.size(1) == x.size(1) &&
               d.oh == conv_output_size(d.h, g.kernel_h, g.stride_h, g.pad_h, g.dil_h) &&
               d.ow == conv_output_size(d.w, g.kernel_w, g.stride_w, g.pad_w, g.dil_w),
           op, ": output ", shape_str(out.shape()), " does not match input ", shape_str(x.shape()),
           " for kernel (", g.kernel_h, ", ", g.kernel_w, ")");
  return d;
}

void check_pool_indices(const Tensor& indices, const Tensor& out, const char* op) {
  ZT_CHECK(indices.dtype() == DType::i64 && indices.shape() == out.shape() && indices.is_contiguous(), op,
           ": indices must be contiguous i64 of shape ", shape_str(out.shape()), ", found ", indices.str());
}

void check_avg_pool_geometry(const Pool2dGeometry& g, const char* op) {
  ZT_CHECK(g.dil_h == 1 && g.dil_w == 1, op, ": average pooling has no dilation, found (", g.dil_h,
           ", ", g.dil_w, ")");
}

}  // namespace zt
