// Unary maps, scalar ops included. Each derivative is in the unary_backward kernels
// (plainest in kernels/reference/unary.cpp); this file decides what the backward needs
// saved: the input x, the output y, or nothing (the kernels read only what is saved).
//
//   exp: y' = y      log: 1/x       sqrt: 1/(2y)        rsqrt: -y^3/2
//   tanh: 1 - y^2    sigmoid: y(1-y)  relu: [x > 0]
//   gelu: Phi(x) + x phi(x)          gelu_tanh: d/dx of x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
//   silu: s (1 + x (1 - s)), s = sigmoid(x)     softplus: sigmoid(x)
//   geglu: y = a gelu(g) for x = [a, g] on the last axis (or gelu(a) g): da = dy gelu(g), dg = dy a gelu'(g)
//   nbrc: the nBRC cell from its gate pre-activations; kernels/reference/unary.cpp has its gradients
//   affine a x + b: a      pow x^p: p x^(p-1)   rdiv c/x: -c/x^2   square: 2x   abs: sign(x)
#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

using kernels::Unary;

bool needs_x(Unary k) {
  switch (k) {
    case Unary::log: case Unary::relu: case Unary::gelu_erf: case Unary::gelu_tanh: case Unary::silu:
    case Unary::softplus: case Unary::pow: case Unary::rdiv: case Unary::square: case Unary::abs:
      return true;
    default:
      return false;
  }
}

bool needs_y(Unary k) {
  switch (k) {
    case Unary::exp: case Unary::sqrt: case Unary::rsqrt: case Unary::tanh: case Unary::sigmoid:
      return true;
    default:
      return false;
  }
}

struct UnaryOp {
  const char* name;
  Unary kind;
  double alpha = 0, beta = 0;

  Tensor forward(Ctx& ctx, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    Tensor y = tm::unary(kind, x, alpha, beta);
    ctx.save("x", needs_x(kind) ? x : Tensor{});
    ctx.save("y", needs_y(kind) ? y : Tensor{});
    return y;
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    Tensor dx = dy.empty_like();
    launch(kernels::unary_backward, dy, kind, dx, dy, ctx.saved("x"), ctx.saved("y"), dy.numel(), alpha, beta);
    return {dx};
  }
};

Var unary(Var x, Unary k, double alpha = 0, double beta = 0) {
  return apply(UnaryOp{kernels::unary_name(k), k, alpha, beta}, x);
}

// Gated GELU in one kernel: the two halves of the last axis, never split into copies.
struct GegluOp {
  const char* name = "geglu";
  bool activate_first;
  Tensor forward(Ctx& ctx, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    MNEMO_CHECK(x.rank() >= 1 && x.dim(-1) % 2 == 0, "[geglu] last axis must have an even size, got " << x.shape());
    const int64_t I = x.dim(-1) / 2, rows = I ? x.numel() / (2 * I) : 0;
    Tensor y = Tensor::empty(x.shape().with(-1, I), x.dtype(), x.device());
    if (y.numel() > 0) launch(kernels::geglu_forward, x, y, x, rows, I, activate_first);
    ctx.save("x", x);
    return y;
  }
  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor& x = ctx.saved("x");
    const int64_t I = x.dim(-1) / 2, rows = I ? x.numel() / (2 * I) : 0;
    Tensor dx = x.empty_like();
    if (dx.numel() > 0) launch(kernels::geglu_backward, x, dx, dy, x, rows, I, activate_first);
    return {dx};
  }
};

// The nBRC cell (Ua, Wa, Uc, Wc, U products done): one pass forward, one backward, where
// the composite cell made nine elementwise passes each way. Saves its inputs only; the
// backward recomputes the gates.
struct NbrcOp {
  const char* name = "nbrc";
  Tensor forward(Ctx& ctx, const Tensor& ga, const Tensor& gc, const Tensor& gu, const Tensor& h) const {
    tm::check_float_same(name, {&ga, &gc, &gu, &h});
    MNEMO_CHECK(ga.shape() == h.shape() && gc.shape() == h.shape() && gu.shape() == h.shape(),
                "[nbrc] expected four tensors of one shape, got " << ga.shape() << ", " << gc.shape() << ", "
                                                                  << gu.shape() << " and " << h.shape());
    Tensor out = h.empty_like();
    if (out.numel() > 0) launch(kernels::nbrc_forward, h, out, ga, gc, gu, h, h.numel());
    ctx.save("ga", ga), ctx.save("gc", gc), ctx.save("gu", gu), ctx.save("h", h);
    return out;
  }
  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor &ga = ctx.saved("ga"), &gc = ctx.saved("gc"), &gu = ctx.saved("gu"), &h = ctx.saved("h");
    Grads g{ga.empty_like(), gc.empty_like(), gu.empty_like(), h.empty_like()};  // the kernel writes all four
    if (h.numel() > 0) launch(kernels::nbrc_backward, h, g[0], g[1], g[2], g[3], dy, ga, gc, gu, h, h.numel());
    for (size_t i = 0; i < g.size(); ++i)
      if (!ctx.needs_grad(i)) g[i] = Tensor();
    return g;
  }
};

}  // namespace

Var geglu(Var x, bool activate_first) { return apply(GegluOp{"geglu", activate_first}, x); }
Var nbrc(Var ga, Var gc, Var gu, Var h) { return apply(NbrcOp{}, ga, gc, gu, h); }

Var affine(Var x, double alpha, double beta) { return unary(x, Unary::affine, alpha, beta); }
Var pow(Var x, double p) { return unary(x, Unary::pow, p); }
Var rdiv(double c, Var x) { return unary(x, Unary::rdiv, c); }
Var neg(Var x) { return unary(x, Unary::neg); }
Var exp(Var x) { return unary(x, Unary::exp); }
Var log(Var x) { return unary(x, Unary::log); }
Var sqrt(Var x) { return unary(x, Unary::sqrt); }
Var rsqrt(Var x) { return unary(x, Unary::rsqrt); }
Var tanh(Var x) { return unary(x, Unary::tanh); }
Var sigmoid(Var x) { return unary(x, Unary::sigmoid); }
Var relu(Var x) { return unary(x, Unary::relu); }
Var gelu(Var x) { return unary(x, Unary::gelu_erf); }
Var gelu_tanh(Var x) { return unary(x, Unary::gelu_tanh); }
Var silu(Var x) { return unary(x, Unary::silu); }
Var softplus(Var x) { return unary(x, Unary::softplus); }
Var square(Var x) { return unary(x, Unary::square); }
Var abs(Var x) { return unary(x, Unary::abs); }

using gradcheck::Range;
using gradcheck::Sample;
constexpr Range kPositive{0.5, 2.0};
constexpr Range kWide{-3.0, 3.0};

MNEMO_GRADCHECK("affine", [](Sample& s) { return affine(s.input({3, 5}), -1.5, 0.25); });
MNEMO_GRADCHECK("pow", [](Sample& s) { return pow(s.input({3, 5}, kPositive), 1.7); });
MNEMO_GRADCHECK("rdiv", [](Sample& s) { return rdiv(2.5, s.input({3, 5}, kPositive)); });
MNEMO_GRADCHECK("neg", [](Sample& s) { return neg(s.input({3, 5})); });
MNEMO_GRADCHECK("exp", [](Sample& s) { return exp(s.input({3, 5})); });
MNEMO_GRADCHECK("log", [](Sample& s) { return log(s.input({3, 5}, kPositive)); });
MNEMO_GRADCHECK("sqrt", [](Sample& s) { return sqrt(s.input({3, 5}, kPositive)); });
MNEMO_GRADCHECK("rsqrt", [](Sample& s) { return rsqrt(s.input({3, 5}, kPositive)); });
MNEMO_GRADCHECK("tanh", [](Sample& s) { return tanh(s.input({3, 5}, kWide)); });
MNEMO_GRADCHECK("sigmoid", [](Sample& s) { return sigmoid(s.input({3, 5}, kWide)); });
MNEMO_GRADCHECK("relu", [](Sample& s) { return relu(s.input({3, 5})); });
MNEMO_GRADCHECK("gelu", [](Sample& s) { return gelu(s.input({3, 5}, kWide)); });
MNEMO_GRADCHECK("gelu_tanh", [](Sample& s) { return gelu_tanh(s.input({3, 5}, kWide)); });
MNEMO_GRADCHECK("silu", [](Sample& s) { return silu(s.input({3, 5}, kWide)); });
MNEMO_GRADCHECK("softplus", [](Sample& s) { return softplus(s.input({3, 5}, kWide)); });
MNEMO_GRADCHECK("square", [](Sample& s) { return square(s.input({3, 5})); });
MNEMO_GRADCHECK("geglu", [](Sample& s) { return geglu(s.input({2, 3, 8}, kWide)); });
MNEMO_GRADCHECK("geglu.activate_first", [](Sample& s) { return geglu(s.input({3, 6}, kWide), true); });
MNEMO_GRADCHECK("nbrc", [](Sample& s) {
  return nbrc(s.input({2, 3, 4}, kWide), s.input({2, 3, 4}, kWide), s.input({2, 3, 4}, kWide), s.input({2, 3, 4}, kWide));
});
MNEMO_GRADCHECK("abs", [](Sample& s) { return abs(s.input({3, 5})); });

}  // namespace mnemo
