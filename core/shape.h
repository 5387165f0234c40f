// Shape and stride helpers shared by every layer.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace zt {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "(2, 3, 4)"
// Normalises a possibly negative dim against ndim, with a clear error when out of range.
int normalize_dim(int64_t dim, int64_t ndim);
// The broadcast of two shapes (numpy rules), or an error naming both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b);

}  // namespace zt
