// Reductions over one axis, viewed as (outer, n, inner).
//   sum:  y = sum_i x_i        dx_i = dy
//   max:  y = max_i x_i        dx_i = dy at the first maximum, 0 elsewhere
//   mean is sum / n (a composite).
#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

Shape reduced_shape(const Shape& s, int axis, bool keepdim) { return keepdim ? s.with(axis, 1) : s.without(axis); }

struct ReduceOp {
  const char* name;
  kernels::Reduce kind;
  int axis;
  bool keepdim;

  Tensor forward(Ctx& ctx, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    MNEMO_CHECK(x.rank() > 0, "[" << name << "] needs at least one dim, got a scalar");
    const Shape& s = x.shape();
    const int a = tm::axis(name, s, axis);
    MNEMO_CHECK(kind == kernels::Reduce::sum || s[a] > 0, "[" << name << "] over an empty axis of " << s);
    Tensor y = Tensor::empty(reduced_shape(s, a, keepdim), x.dtype(), x.device());
    launch(kernels::reduce, x, kind, y, x, s.outer(a), s[a], s.inner(a));
    if (kind == kernels::Reduce::max) {
      ctx.save("x", x);
      ctx.save("max", y);
    }
    return y;
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Shape& s = ctx.input_shape(0);
    const int a = s.axis(axis);
    if (kind == kernels::Reduce::sum) return {tm::expand(dy.reshape(s.with(a, 1)), s)};
    Tensor dx = Tensor::empty(s, dy.dtype(), dy.device());
    launch(kernels::reduce_max_backward, dy, dx, dy, ctx.saved("x"), ctx.saved("max"), s.outer(a), s[a], s.inner(a));
    return {dx};
  }
};

}  // namespace

Var sum(Var x, int axis, bool keepdim) { return apply(ReduceOp{"sum", kernels::Reduce::sum, axis, keepdim}, x); }
Var max(Var x, int axis, bool keepdim) { return apply(ReduceOp{"max", kernels::Reduce::max, axis, keepdim}, x); }

Var mean(Var x, int axis, bool keepdim) {
  const int64_t n = x.shape()[tm::axis("mean", x.shape(), axis)];
  MNEMO_CHECK(n > 0, "[mean] over an empty axis of " << x.shape());
  return sum(x, axis, keepdim) * (1.0 / double(n));
}

Var sum(Var x) { return sum(reshape(x, Shape{x.value().numel()}), 0); }
Var mean(Var x) { return mean(reshape(x, Shape{x.value().numel()}), 0); }

using gradcheck::Sample;
MNEMO_GRADCHECK("sum.axis0", [](Sample& s) { return sum(s.input({3, 4}), 0); });
MNEMO_GRADCHECK("sum.middle_keepdim", [](Sample& s) { return sum(s.input({2, 3, 4}), 1, true); });
MNEMO_GRADCHECK("sum.all", [](Sample& s) { return sum(s.input({2, 3})); });
MNEMO_GRADCHECK("mean.last", [](Sample& s) { return mean(s.input({2, 3, 4}), -1); });
MNEMO_GRADCHECK("mean.all", [](Sample& s) { return mean(s.input({5, 2})); });
MNEMO_GRADCHECK("max.last", [](Sample& s) { return max(s.input({3, 5}), -1); });
MNEMO_GRADCHECK("max.middle_keepdim", [](Sample& s) { return max(s.input({2, 4, 3}), 1, true); });

}  // namespace mnemo
