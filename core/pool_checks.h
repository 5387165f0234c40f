// Argument checks shared by every backend's pooling kernels (the kernels may be called
// directly, as the parity tests do, so each validates its tensors; one copy of the rules).
#pragma once
#include <cstdint>

#include "core/conv_geometry.h"
#include "core/tensor.h"

namespace zt {

struct PoolDims {
  int64_t planes, h, w, oh, ow;  // planes = N * C
};

// x (N, C, H, W) and out (N, C, OH, OW): contiguous, one dtype, sizes matching the geometry.
PoolDims pool_dims(const Tensor& x, const Tensor& out, const Pool2dGeometry& g, const char* op);
// Max-pooling indices: contiguous i64 of out's shape.
void check_pool_indices(const Tensor& indices, const Tensor& out, const char* op);
// Average pooling has no dilation.
void check_avg_pool_geometry(const Pool2dGeometry& g, const char* op);

}  // namespace zt
