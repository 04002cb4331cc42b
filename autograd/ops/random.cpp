// Dropout. y = x * keep / (1 - p), keep ~ Bernoulli(1 - p) drawn from a counter-based
// hash of (seed, index); dx = dy * keep / (1 - p) regenerates the same mask, so nothing
// is stored. The caller owns the seed: a replayed segment passes the same seed again.
#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

struct DropoutOp {
  const char* name = "dropout";
  double p;
  uint64_t seed;

  Tensor forward(Ctx&, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    Tensor y = x.empty_like();
    launch(kernels::dropout, x, y, x, x.numel(), p, seed);
    return y;
  }

  Grads backward(Ctx&, const Tensor& dy) const {
    Tensor dx = dy.empty_like();
    launch(kernels::dropout, dy, dx, dy, dy.numel(), p, seed);
    return {dx};
  }
};

}  // namespace

Var dropout(Var x, double p, uint64_t seed, bool training) {
  MNEMO_CHECK(p >= 0.0 && p <= 1.0, "[dropout] p must be in [0, 1], got " << p);
  if (!training || p == 0.0) return x;
  return apply(DropoutOp{"dropout", p, seed}, x);
}

using gradcheck::Sample;
MNEMO_GRADCHECK("dropout", [](Sample& s) { return dropout(s.input({4, 8}), 0.3, s.seed(), true); });

}  // namespace mnemo
