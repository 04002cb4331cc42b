// Losses.
//   cross_entropy: l_r = lse(z_r) - z_r[t_r] for rows whose target is not ignore_index;
//                  mean = sum / (number of such rows), 0 when there are none.
//                  dz_r = g_r * (softmax(z_r) - onehot(t_r)), g_r the row's share of dy.
//   mse_loss: mean((a - b)^2), a composite.
#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

struct CrossEntropyOp {
  const char* name = "cross_entropy";
  Tensor targets;
  int32_t ignore_index;
  Reduction reduction;

  Tensor forward(Ctx& ctx, const Tensor& logits) const {
    tm::check_float_same(name, {&logits});
    MNEMO_CHECK(logits.rank() >= 1, "[cross_entropy] logits need a class axis, got a scalar");
    MNEMO_CHECK(targets.dtype() == DType::i32 && targets.shape() == logits.shape().without(-1),
                "[cross_entropy] targets must be i32 of shape " << logits.shape().without(-1) << ", got "
                                                                 << targets.dtype() << " " << targets.shape());
    const int64_t V = logits.dim(-1), rows = targets.numel();
    const tm::IndexOperand target = tm::index_operand(targets, logits.device());
    const int32_t* t = target.host.data<int32_t>();
    int64_t valid = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (t[r] == ignore_index) continue;
      MNEMO_CHECK(t[r] >= 0 && t[r] < V, "[cross_entropy] target " << t[r] << " at flat position " << r
                                                                    << " is outside [0, " << V << ")");
      ++valid;
    }
    Tensor loss = Tensor::empty(targets.shape(), logits.dtype(), logits.device());
    Tensor lse = Tensor::empty(targets.shape(), logits.dtype(), logits.device());
    if (rows > 0)
      launch(kernels::cross_entropy_forward, logits, loss, lse, logits,
             kernel_ptr<int32_t>(target.on_device, logits, name), rows, V, ignore_index);
    ctx.save("logits", logits);
    ctx.save("lse", lse);
    ctx.save("targets", target.on_device);
    ctx.save("valid_rows", Tensor::scalar(double(valid), DType::f64));  // a host number, never a kernel operand
    if (reduction == Reduction::none) return loss;
    // Summed on the logits' device (in double, ignored rows are 0): the host waits for the
    // device only when it reads a step's figures, not once per loss.
    Tensor total = Tensor::zeros(Shape{}, logits.dtype(), logits.device());
    if (rows > 0) launch(kernels::reduce, loss, kernels::Reduce::sum, total, loss, int64_t(1), rows, int64_t(1));
    if (reduction == Reduction::mean && valid > 1)
      total = tm::binary(kernels::Binary::div, total, count_of(valid, logits));
    return total;
  }

  // The number of counted rows as a scalar on `like`'s device, the divisor of the mean.
  static Tensor count_of(double valid, const Tensor& like) {
    return Tensor::full(Shape{}, valid, like.dtype(), like.device());
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor& logits = ctx.saved("logits");
    const int64_t V = logits.dim(-1), rows = targets.numel();
    Tensor row_grad = dy;  // (rows) share of the upstream gradient
    if (reduction != Reduction::none) {  // every counted row's share of dy, made where dy is
      const double valid = ctx.saved("valid_rows").item();  // a host scalar: no wait
      const Tensor g = reduction == Reduction::mean && valid > 1
                           ? tm::binary(kernels::Binary::div, dy, count_of(valid, dy))
                           : dy;
      row_grad = tm::expand(g, targets.shape());  // ignored rows' values are never read
    }
    Tensor dlogits = logits.empty_like();
    if (rows > 0)
      launch(kernels::cross_entropy_backward, logits, dlogits, row_grad, logits, ctx.saved("lse"),
             kernel_ptr<int32_t>(ctx.saved("targets"), logits, name), rows, V, ignore_index);
    return {dlogits};
  }
};

}  // namespace

Var cross_entropy(Var logits, const Tensor& targets, int32_t ignore_index, Reduction r) {
  return apply(CrossEntropyOp{"cross_entropy", targets, ignore_index, r}, logits);
}

Var mse_loss(Var a, Var b) {
  MNEMO_CHECK(a.shape() == b.shape(), "[mse_loss] shapes differ: " << a.shape() << " and " << b.shape());
  return mean(square(a - b));
}

using gradcheck::Range;
using gradcheck::Sample;
MNEMO_GRADCHECK("cross_entropy", [](Sample& s) {
  return cross_entropy(s.input({2, 3, 7}, Range{-2, 2}), s.indices({2, 3}, 7));
});
MNEMO_GRADCHECK("cross_entropy.ignore_index", [](Sample& s) {
  return cross_entropy(s.input({5, 4}, Range{-2, 2}), Tensor::from_ints({5}, {1, -100, 3, -100, 0}));
});
MNEMO_GRADCHECK("cross_entropy.sum", [](Sample& s) {
  return cross_entropy(s.input({4, 6}, Range{-2, 2}), Tensor::from_ints({4}, {5, 0, -1, 2}), -1, Reduction::sum);
});
MNEMO_GRADCHECK("cross_entropy.none", [](Sample& s) {
  return cross_entropy(s.input({3, 5}, Range{-2, 2}), Tensor::from_ints({3}, {4, 1, -100}), -100, Reduction::none);
});
MNEMO_GRADCHECK("mse_loss", [](Sample& s) { return mse_loss(s.input({3, 4}), s.input({3, 4})); });

}  // namespace mnemo
