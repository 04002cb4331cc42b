// Gradient boundaries. Their whole point is a gradient that differs from the forward
// map's derivative, so finite differences cannot check them: tests/autograd/test_tape.cpp does.
//   stop_gradient(x):     y = x, dx = 0          (a constant sharing x's storage)
//   scale_gradient(x, a): y = x, dx = a dy       (e.g. CogView's embedding gradient fraction)
#include "autograd/apply.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

struct ScaleGradientOp {
  const char* name = "scale_gradient";
  double alpha;
  Tensor forward(Ctx&, const Tensor& x) const { return x; }
  Grads backward(Ctx&, const Tensor& dy) const { return {tm::scale(dy, alpha)}; }
};

}  // namespace

Var stop_gradient(Var x) { return x.tape().constant(x.value()); }

Var scale_gradient(Var x, double alpha) { return apply(ScaleGradientOp{"scale_gradient", alpha}, x); }

}  // namespace mnemo
