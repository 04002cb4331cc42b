// Selection by a u8 condition, broadcast NumPy-style.
//   y = cond ? a : b          da = cond ? dy : 0       db = cond ? 0 : dy   (summed to shape)
//   masked_fill(x, m, v) = where(m, v, x): the gradient reaches x only where m is 0.
#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

struct WhereOp {
  const char* name = "where";
  Tensor cond;

  Tensor forward(Ctx&, const Tensor& a, const Tensor& b) const {
    tm::check_float_same(name, {&a, &b});
    MNEMO_CHECK(cond.dtype() == DType::u8, "[where] condition must be u8, got " << cond.dtype() << " " << cond.shape());
    return tm::where(cond, a, b);
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor zero = Tensor::scalar(0.0, dy.dtype(), dy.device());
    Grads g(2);
    if (ctx.needs_grad(0)) g[0] = tm::sum_to(tm::where(cond, dy, zero), ctx.input_shape(0));
    if (ctx.needs_grad(1)) g[1] = tm::sum_to(tm::where(cond, zero, dy), ctx.input_shape(1));
    return g;
  }
};

}  // namespace

Var where(const Tensor& cond, Var a, Var b) { return apply(WhereOp{"where", cond}, a, b); }

Var masked_fill(Var x, const Tensor& mask, double value) {
  tm::check_mask("masked_fill", mask, x.shape());
  return where(mask, x.tape().constant(Tensor::scalar(value, x.dtype(), x.value().device())), x);
}

using gradcheck::Sample;
MNEMO_GRADCHECK("where", [](Sample& s) { return where(s.mask({3, 4}, 0.5), s.input({3, 4}), s.input({3, 4})); });
MNEMO_GRADCHECK("where.broadcast", [](Sample& s) {
  return where(s.mask({2, 1, 4}, 0.5), s.input({3, 1}), s.input({2, 3, 4}));
});
MNEMO_GRADCHECK("masked_fill", [](Sample& s) { return masked_fill(s.input({2, 3, 4}), s.mask({3, 4}, 0.4), -2.0); });

}  // namespace mnemo
