// Broadcasting arithmetic. Shapes align on the right (NumPy rules); each gradient is
// summed back over the dims its input was broadcast along.
//
//   y = a + b    da = dy              db = dy
//   y = a - b    da = dy              db = -dy
//   y = a * b    da = dy * b          db = dy * a
//   y = a / b    da = dy / b          db = -dy * y / b
#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

using kernels::Binary;

struct BinaryOp {
  const char* name;
  Binary kind;

  Tensor forward(Ctx& ctx, const Tensor& a, const Tensor& b) const {
    tm::check_float_same(name, {&a, &b});
    Tensor y = tm::binary(kind, a, b, name);
    if (kind == Binary::mul) {
      ctx.save("a", a);
      ctx.save("b", b);
    } else if (kind == Binary::div) {
      ctx.save("b", b);
      ctx.save("y", y);
    }
    return y;
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Shape& sa = ctx.input_shape(0);
    const Shape& sb = ctx.input_shape(1);
    Grads g(2);
    switch (kind) {
      case Binary::add:
        if (ctx.needs_grad(0)) g[0] = tm::sum_to(dy, sa);
        if (ctx.needs_grad(1)) g[1] = tm::sum_to(dy, sb);
        break;
      case Binary::sub:
        if (ctx.needs_grad(0)) g[0] = tm::sum_to(dy, sa);
        if (ctx.needs_grad(1)) g[1] = tm::sum_to(tm::scale(dy, -1.0), sb);
        break;
      case Binary::mul:
        if (ctx.needs_grad(0)) g[0] = tm::sum_to(tm::binary(Binary::mul, dy, ctx.saved("b")), sa);
        if (ctx.needs_grad(1)) g[1] = tm::sum_to(tm::binary(Binary::mul, dy, ctx.saved("a")), sb);
        break;
      case Binary::div: {
        const Tensor dy_b = tm::binary(Binary::div, dy, ctx.saved("b"));
        if (ctx.needs_grad(0)) g[0] = tm::sum_to(dy_b, sa);
        if (ctx.needs_grad(1)) g[1] = tm::sum_to(tm::scale(tm::binary(Binary::mul, dy_b, ctx.saved("y")), -1.0), sb);
        break;
      }
    }
    return g;
  }
};

}  // namespace

Var add(Var a, Var b) { return apply(BinaryOp{"add", Binary::add}, a, b); }
Var sub(Var a, Var b) { return apply(BinaryOp{"sub", Binary::sub}, a, b); }
Var mul(Var a, Var b) { return apply(BinaryOp{"mul", Binary::mul}, a, b); }
Var div(Var a, Var b) { return apply(BinaryOp{"div", Binary::div}, a, b); }

using gradcheck::Sample;
MNEMO_GRADCHECK("add", [](Sample& s) { return add(s.input({3, 4}), s.input({3, 4})); });
MNEMO_GRADCHECK("add.broadcast_row", [](Sample& s) { return add(s.input({2, 3, 4}), s.input({4})); });
MNEMO_GRADCHECK("add.broadcast_both", [](Sample& s) { return add(s.input({2, 1, 4}), s.input({3, 1})); });
MNEMO_GRADCHECK("sub.broadcast", [](Sample& s) { return sub(s.input({3, 1}), s.input({2, 3, 5})); });
MNEMO_GRADCHECK("mul", [](Sample& s) { return mul(s.input({5, 3}), s.input({5, 3})); });
MNEMO_GRADCHECK("mul.broadcast", [](Sample& s) { return mul(s.input({2, 3, 4}), s.input({2, 1, 4})); });
MNEMO_GRADCHECK("mul.same_var", [](Sample& s) {
  Var x = s.input({4, 3});
  return mul(x, x);  // a Var used twice: both gradients must accumulate
});
MNEMO_GRADCHECK("div", [](Sample& s) { return div(s.input({3, 4}), s.input({3, 4}, {0.5, 2.0})); });
MNEMO_GRADCHECK("div.broadcast", [](Sample& s) { return div(s.input({2, 4}), s.input({3, 1, 1}, {0.5, 2.0})); });

}  // namespace mnemo
