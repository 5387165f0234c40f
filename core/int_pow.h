// Exact integer power shared by the CPU and CUDA kernels: going through double pow() is not
// exact on every device (CUDA's pow(3.0, 1.0) truncates to 2 after a cast).
#pragma once
#include <type_traits>

#include "core/dtype.h"  // ZT_HOST_DEVICE

namespace zt {

// x^y for integers by squaring; negative exponents follow integer division (1/x^|y|):
// 1 for x == 1, +-1 for x == -1, 0 otherwise.
template <typename C>
ZT_HOST_DEVICE inline C int_pow(C x, C y) {
  if constexpr (std::is_signed_v<C>) {
    if (y < 0) {
      if (x == 1) return C(1);
      if (x == -1) return (y % 2 == 0) ? C(1) : C(-1);
      return C(0);
    }
  }
  C result = 1;
  while (y > 0) {
    if (y & 1) result = C(result * x);
    x = C(x * x);
    y = C(y >> 1);
  }
  return result;
}

}  // namespace zt
