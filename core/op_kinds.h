// The operator kinds that share one kernel entry (binary, unary, reduce): one enum each.
#pragma once
#include <cstdint>

namespace zt {

enum class BinaryOp : uint8_t { add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge };
enum class UnaryOp : uint8_t {
  neg, abs, exp, log, sqrt, rsqrt, reciprocal, square, tanh, sigmoid, relu,
  gelu,       // exact: x * Phi(x), as torch.nn.GELU()
  gelu_tanh,  // tanh approximation, as GPT-2 and torch.nn.GELU(approximate="tanh")
  logical_not
};
// sum_squares: the sum of x * x with each square and the sum in the accumulation type (double for
// floating inputs), the result rounded once to the input's dtype (or a wider float one asked for:
// raw::reduce); floating dtypes only.
enum class ReduceOp : uint8_t { sum, mean, max, min, sum_squares };
enum class ArgReduceOp : uint8_t { argmax, argmin };

const char* op_name(BinaryOp op);
const char* op_name(UnaryOp op);
const char* op_name(ReduceOp op);
inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::eq; }

}  // namespace zt
