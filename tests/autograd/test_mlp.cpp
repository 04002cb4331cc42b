// End to end: a two-layer MLP, built from ops and trained with AdamW, fits small
// nonlinear problems to near-zero loss. Exercises forward, backward, accumulation into
// Param::grad, clipping and the optimizer together, in f32 as training runs.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "autograd/ops/ops.h"
#include "autograd/optim/adamw.h"

using namespace mnemo;

namespace {

struct Mlp {
  Param W1, b1, W2, b2;  // (H, D_in) (H) (D_out, H) (D_out): PyTorch Linear layout
  Mlp(Rng& rng, int64_t d_in, int64_t hidden, int64_t d_out)
      : W1(Tensor::uniform({hidden, d_in}, rng, -1 / std::sqrt(double(d_in)), 1 / std::sqrt(double(d_in)))),
        b1(Tensor::zeros({hidden})),
        W2(Tensor::uniform({d_out, hidden}, rng, -1 / std::sqrt(double(hidden)), 1 / std::sqrt(double(hidden)))),
        b2(Tensor::zeros({d_out})) {}

  Var operator()(Tape& tape, Var x) {                                                   // x: (N, D_in)
    Var h = tanh(matmul(x, tape.param(W1), {.trans_b = true}) + tape.param(b1));       // (N, H)
    return matmul(h, tape.param(W2), {.trans_b = true}) + tape.param(b2);              // (N, D_out)
  }
  NamedParams named() { return {{"l1.W", &W1}, {"l1.b", &b1}, {"l2.W", &W2}, {"l2.b", &b2}}; }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(mlp)

BOOST_AUTO_TEST_CASE(fits_a_nonlinear_regression) {
  Rng rng(3);
  const int64_t N = 64;
  std::vector<double> xs, ys;
  for (int64_t i = 0; i < N; ++i) {
    const double a = rng.uniform(-1, 1), b = rng.uniform(-1, 1);
    xs.push_back(a);
    xs.push_back(b);
    ys.push_back(std::sin(3 * a) * b);  // not representable by a linear model
  }
  const Tensor X = Tensor::from({N, 2}, xs), Y = Tensor::from({N, 1}, ys);
  Mlp net(rng, 2, 32, 1);
  AdamW opt(net.named(), {.lr = 1e-2, .weight_decay = 0.0});
  const auto params = opt.params();
  double first = 0, last = 0;
  for (int step = 0; step < 1500; ++step) {
    Tape tape;
    Var loss = mse_loss(net(tape, tape.constant(X)), tape.constant(Y));
    tape.backward(loss);
    clip_grad_norm(params, 1.0);
    opt.step();
    opt.zero_grad();
    (step == 0 ? first : last) = loss.value().item();
  }
  BOOST_TEST_MESSAGE("regression mse: " << first << " -> " << last);
  BOOST_TEST(last < 1e-3);
  BOOST_TEST(last < first * 1e-2);
}

BOOST_AUTO_TEST_CASE(fits_xor_with_cross_entropy) {
  Rng rng(5);
  const Tensor X = Tensor::from({4, 2}, {0, 0, 0, 1, 1, 0, 1, 1});
  const Tensor labels = Tensor::from_ints({4}, {0, 1, 1, 0});
  Mlp net(rng, 2, 8, 2);
  AdamW opt(net.named(), {.lr = 5e-2, .weight_decay = 0.0});
  double last = 0;
  for (int step = 0; step < 400; ++step) {
    Tape tape;
    Var loss = cross_entropy(net(tape, tape.constant(X)), labels);
    tape.backward(loss);
    opt.step();
    opt.zero_grad();
    last = loss.value().item();
  }
  BOOST_TEST(last < 1e-2);
  Tape tape;
  const Tensor logits = net(tape, tape.constant(X)).value();
  for (int64_t i = 0; i < 4; ++i) {
    const int predicted = logits.at({i, 1}) > logits.at({i, 0}) ? 1 : 0;
    BOOST_TEST(predicted == int(labels.at({i})));
  }
}

BOOST_AUTO_TEST_SUITE_END()
