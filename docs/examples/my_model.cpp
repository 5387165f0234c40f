// A complete zerotrain program: a custom module, AdamW, gradient clipping, a training loop.
#include <cstdio>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "optim/adam.h"
#include "optim/clip.h"

// A residual MLP block: x + W2 gelu(W1 layer_norm(x)).
class ResidualMlp : public zt::Module {
 public:
  explicit ResidualMlp(int64_t width) {
    norm_ = register_module("norm", std::make_shared<zt::LayerNorm>(width));
    up_ = register_module("up", std::make_shared<zt::Linear>(width, 4 * width));
    down_ = register_module("down", std::make_shared<zt::Linear>(4 * width, width));
  }
  zt::Tensor forward(const zt::Tensor& x) override {  // (B, width) -> (B, width)
    return x + (*down_)(zt::gelu((*up_)((*norm_)(x))));
  }

 private:
  std::shared_ptr<zt::LayerNorm> norm_;
  std::shared_ptr<zt::Linear> up_, down_;
};

int main() {
  zt::manual_seed(0);
  auto model = std::make_shared<ResidualMlp>(16);
  zt::AdamW optimizer(model->parameters(), zt::AdamWOptions{});
  zt::Tensor x = zt::randn({64, 16});
  zt::Tensor target = zt::tanh(x);  // learn a smooth function of the input
  double first = 0, last = 0;
  for (int step = 1; step <= 200; ++step) {
    zt::Tensor loss = zt::mse_loss((*model)(x), target);
    optimizer.zero_grad();
    zt::backward(loss);
    zt::clip_grad_norm_(model->parameters(), 1.0);
    optimizer.step();
    last = loss.item();
    if (step == 1) first = last;
    if (step % 50 == 0) std::printf("step %d loss %.5f\n", step, last);
  }
  std::printf("loss %.5f -> %.5f\n", first, last);
  return last < first / 10 ? 0 : 1;
}
