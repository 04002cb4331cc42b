// Normalisations over the last axis (fused kernels; statistics saved per row).
//   layer_norm: y = (x - mu) * rstd * g + b,  rstd = 1/sqrt(var + eps)
//               dx = rstd * (dy g - mean(dy g) - xhat * mean(dy g * xhat)),  dg = sum dy xhat,  db = sum dy
//   rms_norm:   y = x * rstd * g,  rstd = 1/sqrt(mean(x^2) + eps)
//               dx = rstd * (dy g - x rstd^2 mean(dy g x)),  dg = sum dy x rstd
//   l2_normalize: y = x / max(||x||, eps);  dx = (dy - y <dy, y>) / ||x||  (dy / eps where clamped)
// gain and bias are optional: an undefined Var leaves them out (bias-free, non-affine).
#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

void check_vector(const char* op, const char* what, const Tensor& v, const Tensor& x) {
  tm::check_float_same(op, {&x, &v});
  MNEMO_CHECK(v.rank() == 1 && v.dim(0) == x.dim(-1),
              "[" << op << "] " << what << " must be (" << x.dim(-1) << ",) for input " << x.shape() << ", got " << v.shape());
}

struct LayerNormOp {
  const char* name = "layer_norm";
  bool has_gain, has_bias;
  double eps;

  Tensor forward(Ctx& ctx, std::span<const Tensor> in) const {
    const Tensor& x = in[0];
    tm::check_float_same(name, {&x});
    MNEMO_CHECK(x.rank() >= 1, "[layer_norm] needs at least one dim, got a scalar");
    const Tensor gain = has_gain ? in[1] : Tensor{};
    const Tensor bias = has_bias ? in[has_gain ? 2 : 1] : Tensor{};
    if (has_gain) check_vector(name, "gain", gain, x);
    if (has_bias) check_vector(name, "bias", bias, x);
    const int64_t D = x.dim(-1), rows = x.numel() / std::max<int64_t>(D, 1);
    Tensor y = x.empty_like(), mu = Tensor::empty({rows}, x.dtype(), x.device()),
           rstd = Tensor::empty({rows}, x.dtype(), x.device());
    if (x.numel() > 0) launch(kernels::layer_norm_forward, x, y, mu, rstd, x, gain, bias, rows, D, eps);
    ctx.save("x", x), ctx.save("mean", mu), ctx.save("rstd", rstd), ctx.save("gain", gain);
    return y;
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor &x = ctx.saved("x"), &gain = ctx.saved("gain");
    const int64_t D = x.dim(-1), rows = x.numel() / std::max<int64_t>(D, 1);
    Grads g(ctx.num_inputs());
    const size_t ib = has_gain ? 2 : 1;
    if (ctx.needs_grad(0)) g[0] = x.empty_like();
    if (has_gain && ctx.needs_grad(1)) g[1] = Tensor::empty({D}, x.dtype(), x.device());
    if (has_bias && ctx.needs_grad(ib)) g[ib] = Tensor::empty({D}, x.dtype(), x.device());
    const Tensor dgain = has_gain ? g[1] : Tensor{}, dbias = has_bias ? g[ib] : Tensor{};
    launch(kernels::layer_norm_backward, x, g[0], dgain, dbias, dy, x, ctx.saved("mean"), ctx.saved("rstd"), gain, rows, D);
    return g;
  }
};

struct RmsNormOp {
  const char* name = "rms_norm";
  bool has_gain;
  double eps;

  Tensor forward(Ctx& ctx, std::span<const Tensor> in) const {
    const Tensor& x = in[0];
    tm::check_float_same(name, {&x});
    MNEMO_CHECK(x.rank() >= 1, "[rms_norm] needs at least one dim, got a scalar");
    const Tensor gain = has_gain ? in[1] : Tensor{};
    if (has_gain) check_vector(name, "gain", gain, x);
    const int64_t D = x.dim(-1), rows = x.numel() / std::max<int64_t>(D, 1);
    Tensor y = x.empty_like(), rstd = Tensor::empty({rows}, x.dtype(), x.device());
    if (x.numel() > 0) launch(kernels::rms_norm_forward, x, y, rstd, x, gain, rows, D, eps);
    ctx.save("x", x), ctx.save("rstd", rstd), ctx.save("gain", gain);
    return y;
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor& x = ctx.saved("x");
    const int64_t D = x.dim(-1), rows = x.numel() / std::max<int64_t>(D, 1);
    Grads g(ctx.num_inputs());
    if (ctx.needs_grad(0)) g[0] = x.empty_like();
    if (has_gain && ctx.needs_grad(1)) g[1] = Tensor::empty({D}, x.dtype(), x.device());
    launch(kernels::rms_norm_backward, x, g[0], has_gain ? g[1] : Tensor{}, dy, x, ctx.saved("rstd"), ctx.saved("gain"), rows, D);
    return g;
  }
};

struct L2NormalizeOp {
  const char* name = "l2_normalize";
  double eps;

  Tensor forward(Ctx& ctx, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    MNEMO_CHECK(x.rank() >= 1, "[l2_normalize] needs at least one dim, got a scalar");
    const int64_t D = x.dim(-1), rows = x.numel() / std::max<int64_t>(D, 1);
    Tensor y = x.empty_like(), norm = Tensor::empty({rows}, x.dtype(), x.device());
    if (x.numel() > 0) launch(kernels::l2_norm_forward, x, y, norm, x, rows, D, eps);
    ctx.save("y", y);
    ctx.save("norm", norm);
    return y;
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor& y = ctx.saved("y");
    const int64_t D = y.dim(-1), rows = y.numel() / std::max<int64_t>(D, 1);
    Tensor dx = dy.empty_like();
    if (dx.numel() > 0) launch(kernels::l2_norm_backward, dy, dx, dy, y, ctx.saved("norm"), rows, D, eps);
    return {dx};
  }
};

}  // namespace

Var layer_norm(Var x, Var gain, Var bias, double eps) {
  std::vector<Var> in{x};
  if (gain.defined()) in.push_back(gain);
  if (bias.defined()) in.push_back(bias);
  return apply_n(LayerNormOp{"layer_norm", gain.defined(), bias.defined(), eps}, in);
}

Var rms_norm(Var x, Var gain, double eps) {
  std::vector<Var> in{x};
  if (gain.defined()) in.push_back(gain);
  return apply_n(RmsNormOp{"rms_norm", gain.defined(), eps}, in);
}

Var l2_normalize(Var x, double eps) { return apply(L2NormalizeOp{"l2_normalize", eps}, x); }

using gradcheck::Sample;
MNEMO_GRADCHECK("layer_norm", [](Sample& s) {
  return layer_norm(s.input({2, 3, 8}), s.input({8}), s.input({8}), 1e-5);
});
MNEMO_GRADCHECK("layer_norm.no_bias", [](Sample& s) { return layer_norm(s.input({4, 6}), s.param({6}), Var{}, 1e-5); });
MNEMO_GRADCHECK("layer_norm.non_affine", [](Sample& s) { return layer_norm(s.input({3, 5}), Var{}, Var{}, 1e-5); });
MNEMO_GRADCHECK("rms_norm", [](Sample& s) { return rms_norm(s.input({2, 3, 8}), s.param({8}), 1e-6); });
MNEMO_GRADCHECK("rms_norm.no_gain", [](Sample& s) { return rms_norm(s.input({4, 5}), Var{}, 1e-6); });
MNEMO_GRADCHECK("l2_normalize", [](Sample& s) { return l2_normalize(s.input({3, 6})); });

}  // namespace mnemo
