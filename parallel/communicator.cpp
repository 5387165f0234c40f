// The backend-independent parts of Communicator: allocating forms and the shape checks every
// implementation shares.
#include "parallel/communicator.h"

#include "core/factory.h"

namespace zt {

const char* comm_reduce_op_name(CommReduceOp op) {
  switch (op) {
    case CommReduceOp::sum: return "sum";
    case CommReduceOp::avg: return "avg";
    case CommReduceOp::max: return "max";
  }
  return "?";
}

Shape reduce_scatter_output_shape(const Tensor& input, int world) {
  ZT_CHECK(input.dim() >= 1, "reduce_scatter: expected an input with at least one dimension "
           "(it is split along dim 0), found a 0-d tensor");
  Shape out = input.shape();
  ZT_CHECK(out[0] % world == 0, "reduce_scatter: input dim 0 of size ", out[0],
           " (shape ", shape_str(out), ") is not divisible by the communicator size ", world,
           "; pad it to a multiple of ", world);
  out[0] /= world;
  return out;
}

Shape all_gather_output_shape(const Tensor& input, int world) {
  ZT_CHECK(input.dim() >= 1, "all_gather: expected an input with at least one dimension "
           "(outputs are concatenated along dim 0), found a 0-d tensor");
  Shape out = input.shape();
  out[0] *= world;
  return out;
}

void check_collective_output(const char* op, const Tensor& input, const Tensor& output,
                             const Shape& expected) {
  ZT_CHECK(output.defined(), op, ": the output tensor is undefined");
  ZT_CHECK(output.shape() == expected, op, ": expected an output of shape ", shape_str(expected),
           " for an input of shape ", shape_str(input.shape()), ", found ", shape_str(output.shape()),
           expected.empty() || output.shape().empty() || expected[0] == output.shape()[0] ? ""
               : " (dim 0 must be the input's dim 0 times/divided by the communicator size)");
  ZT_CHECK(output.dtype() == input.dtype(), op, ": input is ", dtype_name(input.dtype()),
           " but output is ", dtype_name(output.dtype()));
  ZT_CHECK(output.device() == input.device(), op, ": input is on ", input.device().str(),
           " but output is on ", output.device().str());
}

Tensor Communicator::reduce_scatter(const Tensor& input, CommReduceOp op) {
  Tensor out = empty(reduce_scatter_output_shape(input, size()), TensorOptions(input.dtype(), input.device()));
  reduce_scatter(input, out, op);
  return out;
}

Tensor Communicator::all_gather(const Tensor& input) {
  Tensor out = empty(all_gather_output_shape(input, size()), TensorOptions(input.dtype(), input.device()));
  all_gather(input, out);
  return out;
}

double mean_over_ranks(Communicator* comm, double local) {
  if (!comm || comm->size() == 1) return local;
  Tensor v = full({1}, local, TensorOptions(DType::f64, Device::cpu()));
  comm->all_reduce(v, CommReduceOp::avg);
  return v.item();
}

}  // namespace zt
