// Names of the binary/unary/reduce operator kinds, for error messages and benchmarks.
#include "core/op_kinds.h"

namespace zt {

const char* op_name(BinaryOp op) {
  static const char* const names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                      "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
  return names[int(op)];
}

const char* op_name(UnaryOp op) {
  static const char* const names[] = {"neg",   "abs",     "exp",  "log",  "sqrt",
                                      "rsqrt", "reciprocal", "square", "tanh", "sigmoid",
                                      "relu",  "gelu",    "gelu_tanh", "logical_not"};
  return names[int(op)];
}

const char* op_name(ReduceOp op) {
  static const char* const names[] = {"sum", "mean", "max", "min", "sum_squares"};
  return names[int(op)];
}

}  // namespace zt
