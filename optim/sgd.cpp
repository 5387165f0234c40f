// SGD update: a fused loop for contiguous f32/f64 CPU tensors, raw in-place ops otherwise
// (Note [Optimizer updates] in optim/optimizer.h).
#include "optim/sgd.h"

#include "core/ops.h"

namespace zt {

namespace {

struct SGDStep {
  double lr, weight_decay, momentum, dampening;
  bool nesterov, first;
};

template <typename T>
void sgd_fused(T* p, const T* g, T* buf, int64_t n, const SGDStep& s) {  // all (n)
  const T lr = T(s.lr), wd = T(s.weight_decay), mom = T(s.momentum), keep = T(1 - s.dampening);
#pragma omp parallel for if (n > 65536)
  for (int64_t j = 0; j < n; ++j) {
    T d = g[j];
    if (s.weight_decay != 0) d += wd * p[j];
    if (buf) {
      T b = s.first ? d : mom * buf[j] + keep * d;
      buf[j] = b;
      d = s.nesterov ? d + mom * b : b;
    }
    p[j] -= lr * d;
  }
}

}  // namespace

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& options)
    : Optimizer(std::move(groups)), options_(options) {
  ZT_CHECK(options.momentum >= 0, "SGD: expected momentum >= 0, found ", options.momentum);
  ZT_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
           "SGD: nesterov needs momentum > 0 and dampening 0, found momentum=", options.momentum,
           " dampening=", options.dampening);
  fill_group_defaults(options.lr, options.weight_decay);
}

SGD::SGD(const std::vector<Tensor>& params, const SGDOptions& options)
    : SGD(std::vector<ParamGroup>{ParamGroup{params}}, options) {}

void SGD::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                 ParamState& state) {
  const bool use_momentum = options_.momentum != 0;
  const bool first = !state.buffers.contains("momentum_buffer");
  if (use_momentum && first) state.buffers.set("momentum_buffer", make_state_like(param));
  Tensor buf = use_momentum ? state.buffers.at("momentum_buffer") : Tensor();
  SGDStep s{group.lr, group.weight_decay, options_.momentum, options_.dampening,
            options_.nesterov, first};

  if (fused_eligible(param, grad)) {
    ZT_DISPATCH_FLOATING(param.dtype(), "SGD", [&]<typename T>() {
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
        sgd_fused<T>(param.data<T>(), grad.data<T>(), buf.defined() ? buf.data<T>() : nullptr,
                     param.numel(), s);
    });
    return;
  }
  Tensor d = grad;
  if (s.weight_decay != 0) d = raw::add(d, raw::mul(param, s.weight_decay));
  if (use_momentum) {
    if (first) {
      raw::copy_(buf, d);
    } else {
      raw::binary_(BinaryOp::mul, buf, s.momentum);
      raw::binary_(BinaryOp::add, buf, raw::mul(d, 1.0 - s.dampening));
    }
    d = s.nesterov ? raw::add(d, raw::mul(buf, s.momentum)) : buf;
  }
  raw::binary_(BinaryOp::sub, param, raw::mul(d, s.lr));
}

}  // namespace zt
