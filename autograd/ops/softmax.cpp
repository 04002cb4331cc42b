// Softmax and log-softmax over the last axis, with an optional u8 mask (1 = may attend)
// broadcast to x. Masked logits become -inf inside the op, so no -inf is ever recorded.
//   softmax:      y = exp(x - lse(x))        dx = y * (dy - sum(dy * y))
//   log_softmax:  y = x - lse(x)             dx = dy - softmax(x) * sum(dy)
// A row with nothing allowed gives zeros (softmax) or -inf (log_softmax), and zero gradient.
#include <limits>

#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

struct SoftmaxOp {
  const char* name;
  bool log;
  Tensor mask;

  Tensor forward(Ctx& ctx, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    MNEMO_CHECK(x.rank() >= 1, "[" << name << "] needs at least one dim, got a scalar");
    Tensor in = x;
    if (mask.defined()) {
      tm::check_mask(name, mask, x.shape());
      in = tm::where(mask, x, Tensor::scalar(-std::numeric_limits<double>::infinity(), x.dtype(), x.device()));
    }
    Tensor y = x.empty_like();
    const int64_t n = x.dim(-1);
    if (y.numel() > 0) launch(kernels::softmax_forward, x, y, in, x.numel() / n, n, log);
    ctx.save("y", y);
    return y;
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor& y = ctx.saved("y");
    Tensor dx = dy.empty_like();
    const int64_t n = dy.dim(-1);
    if (dx.numel() > 0) launch(kernels::softmax_backward, dy, dx, dy, y, dy.numel() / n, n, log);
    if (mask.defined() && log) dx = tm::where(mask, dx, Tensor::scalar(0.0, dx.dtype(), dx.device()));
    return {dx};
  }
};

}  // namespace

Var softmax(Var x, const Tensor& mask) { return apply(SoftmaxOp{"softmax", false, mask}, x); }
Var log_softmax(Var x, const Tensor& mask) { return apply(SoftmaxOp{"log_softmax", true, mask}, x); }

using gradcheck::Range;
using gradcheck::Sample;
MNEMO_GRADCHECK("softmax", [](Sample& s) { return softmax(s.input({3, 5}, Range{-2, 2})); });
MNEMO_GRADCHECK("softmax.masked", [](Sample& s) {
  Var x = s.input({2, 3, 5}, Range{-2, 2});
  return softmax(x, s.mask({3, 5}));
});
MNEMO_GRADCHECK("log_softmax", [](Sample& s) { return log_softmax(s.input({3, 5}, Range{-2, 2})); });
MNEMO_GRADCHECK("log_softmax.masked", [](Sample& s) {
  Var x = s.input({4, 6}, Range{-2, 2});
  const Tensor m = s.mask({4, 6});
  // masked entries are -inf: read them only through a where that drops them
  return where(m, log_softmax(x, m), s.tape().constant(Tensor::scalar(0.0, x.dtype(), x.value().device())));
});

}  // namespace mnemo
