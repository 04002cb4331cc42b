// Cumulative sum along an axis: y_t = sum_{s <= t} x_s;  dx_s = sum_{t >= s} dy_t (a reverse cumsum).
#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

Tensor cumsum_tensor(const Tensor& x, int axis, bool reverse) {
  const Shape& s = x.shape();
  const int a = s.axis(axis);
  Tensor y = x.empty_like();
  if (y.numel() > 0) launch(kernels::cumsum, x, y, x, s.outer(a), s[a], s.inner(a), reverse);
  return y;
}

struct CumsumOp {
  const char* name = "cumsum";
  int axis;
  Tensor forward(Ctx&, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    MNEMO_CHECK(x.rank() >= 1, "[cumsum] needs at least one dim, got a scalar");
    tm::axis(name, x.shape(), axis);
    return cumsum_tensor(x, axis, false);
  }
  Grads backward(Ctx&, const Tensor& dy) const { return {cumsum_tensor(dy, axis, true)}; }
};

}  // namespace

Var cumsum(Var x, int axis) { return apply(CumsumOp{"cumsum", axis}, x); }

using gradcheck::Sample;
MNEMO_GRADCHECK("cumsum.time", [](Sample& s) { return cumsum(s.input({2, 5, 3}), 1); });
MNEMO_GRADCHECK("cumsum.last", [](Sample& s) { return cumsum(s.input({3, 4}), -1); });

}  // namespace mnemo
