// Differentiable shape ops: views (backward = the inverse view of the gradient), copies
// (contiguous, to), and cat/split/index_select.
#include <algorithm>

#include "autograd/ops_common.h"

namespace zt {

using autograd::Grads;
using autograd::make_node;
using autograd::needs_graph;
using autograd::Needs;

namespace {

Tensor zeros_for(const Shape& shape, const Tensor& like) {
  return zeros(shape, TensorOptions(like.dtype(), like.device()));
}

// Backward of ops whose output is the input's data in another shape.
Tensor reshaped(const char* name, Tensor out, const Tensor& a) {
  return make_node(name, std::move(out), {&a}, [shape = a.shape()](const Tensor& g, Needs) -> Grads {
    return {raw::reshape(g, shape)};
  });
}

// Backward of ops whose output is a part of the input: g written into that part of zeros.
template <typename PartOf>
Tensor part_of(const char* name, Tensor out, const Tensor& a, PartOf part) {
  return make_node(name, std::move(out), {&a}, [shape = a.shape(), part](const Tensor& g, Needs) -> Grads {
    Tensor grad = zeros_for(shape, g);
    raw::copy_(part(grad), g);
    return {grad};
  });
}

}  // namespace

Tensor reshape(const Tensor& a, Shape shape) {
  Tensor out = raw::reshape(a, std::move(shape));
  return needs_graph(a) ? reshaped("reshape", std::move(out), a) : out;
}

Tensor unsqueeze(const Tensor& a, int64_t dim) {
  Tensor out = raw::unsqueeze(a, dim);
  return needs_graph(a) ? reshaped("unsqueeze", std::move(out), a) : out;
}

Tensor squeeze(const Tensor& a, int64_t dim) {
  Tensor out = raw::squeeze(a, dim);
  return needs_graph(a) ? reshaped("squeeze", std::move(out), a) : out;
}

Tensor flatten(const Tensor& a, int64_t start_dim, int64_t end_dim) {
  Tensor out = raw::flatten(a, start_dim, end_dim);
  return needs_graph(a) ? reshaped("flatten", std::move(out), a) : out;
}

Tensor transpose(const Tensor& a, int64_t dim0, int64_t dim1) {
  Tensor out = raw::transpose(a, dim0, dim1);
  if (!needs_graph(a)) return out;
  return make_node("transpose", std::move(out), {&a}, [dim0, dim1](const Tensor& g, Needs) -> Grads {
    return {raw::transpose(g, dim0, dim1)};
  });
}

Tensor permute(const Tensor& a, const std::vector<int64_t>& dims) {
  Tensor out = raw::permute(a, dims);
  if (!needs_graph(a)) return out;
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inverse[size_t(normalize_dim(dims[i], a.dim()))] = int64_t(i);
  return make_node("permute", std::move(out), {&a}, [inverse](const Tensor& g, Needs) -> Grads {
    return {raw::permute(g, inverse)};
  });
}

Tensor narrow(const Tensor& a, int64_t dim, int64_t start, int64_t length) {
  Tensor out = raw::narrow(a, dim, start, length);
  if (!needs_graph(a)) return out;
  return part_of("narrow", std::move(out), a,
                 [=](const Tensor& t) { return raw::narrow(t, dim, start, length); });
}

Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end, int64_t step) {
  Tensor out = raw::slice(a, dim, start, end, step);
  if (!needs_graph(a)) return out;
  return part_of("slice", std::move(out), a,
                 [=](const Tensor& t) { return raw::slice(t, dim, start, end, step); });
}

Tensor select(const Tensor& a, int64_t dim, int64_t index) {
  Tensor out = raw::select(a, dim, index);
  if (!needs_graph(a)) return out;
  return part_of("select", std::move(out), a, [=](const Tensor& t) { return raw::select(t, dim, index); });
}

Tensor expand(const Tensor& a, const Shape& shape) {
  Tensor out = raw::expand(a, shape);
  if (!needs_graph(a)) return out;
  return make_node("expand", std::move(out), {&a}, [shape = a.shape()](const Tensor& g, Needs) -> Grads {
    return {autograd::reduce_grad(g, shape)};
  });
}

Tensor contiguous(const Tensor& a) {
  Tensor out = raw::contiguous(a);
  if (!needs_graph(a)) return out;
  return make_node("contiguous", std::move(out), {&a}, [](const Tensor& g, Needs) -> Grads { return {g}; });
}

Tensor to(const Tensor& a, DType dtype) {
  Tensor out = raw::to(a, dtype);
  if (!needs_graph(a)) return out;
  return make_node("to_dtype", std::move(out), {&a}, [from = a.dtype()](const Tensor& g, Needs) -> Grads {
    return {raw::to(g, from)};
  });
}

Tensor to(const Tensor& a, Device device) {
  Tensor out = raw::to(a, device);
  if (!needs_graph(a)) return out;
  return make_node("to_device", std::move(out), {&a}, [from = a.device()](const Tensor& g, Needs) -> Grads {
    return {raw::to(g, from)};
  });
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = raw::cat(tensors, dim);
  if (!autograd::needs_graph_list(tensors)) return out;
  std::vector<int64_t> sizes(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) sizes[i] = tensors[i].size(dim);
  return make_node("cat", {std::move(out)}, tensors,
                   [sizes, dim](const Tensor& g, Needs need) -> Grads {
                     Grads grads(sizes.size());
                     int64_t start = 0;
                     for (size_t i = 0; i < sizes.size(); ++i) {
                       if (need[i]) grads[i] = raw::narrow(g, dim, start, sizes[i]);
                       start += sizes[i];
                     }
                     return grads;
                   })[0];
}

namespace {

// The pieces of a split share one node; pieces that received no gradient contribute zeros.
std::vector<Tensor> record_split(std::vector<Tensor> pieces, const Tensor& a, int64_t dim) {
  if (!needs_graph(a)) return pieces;
  std::vector<int64_t> sizes(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) sizes[i] = pieces[i].size(dim);
  return make_node("split", std::move(pieces), {a},
                   [sizes, dim, shape = a.shape()](const Grads& grads, Needs) -> Grads {
                     const Tensor& any = *std::find_if(grads.begin(), grads.end(),
                                                       [](const Tensor& g) { return g.defined(); });
                     // The pieces tile the input: when each has a gradient, all of it is written below.
                     const bool all = std::all_of(grads.begin(), grads.end(),
                                                  [](const Tensor& g) { return g.defined(); });
                     Tensor grad = all ? Tensor::empty(shape, TensorOptions(any.dtype(), any.device()))
                                       : zeros_for(shape, any);
                     int64_t start = 0;
                     for (size_t i = 0; i < sizes.size(); ++i) {
                       if (grads[i].defined()) raw::copy_(raw::narrow(grad, dim, start, sizes[i]), grads[i]);
                       start += sizes[i];
                     }
                     return {grad};
                   });
}

}  // namespace

std::vector<Tensor> split(const Tensor& a, int64_t split_size, int64_t dim) {
  return record_split(raw::split(a, split_size, dim), a, dim);
}

std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim) {
  return record_split(raw::split(a, sizes, dim), a, dim);
}

Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index) {
  Tensor out = raw::index_select(a, dim, index);
  if (!needs_graph(a)) return out;
  return make_node("index_select", std::move(out), {&a},
                   [shape = a.shape(), dim, idx = index](const Tensor& g, Needs) -> Grads {
                     Tensor grad = zeros_for(shape, g);
                     raw::index_add_(grad, dim, idx, g);
                     return {grad};
                   });
}

}  // namespace zt
