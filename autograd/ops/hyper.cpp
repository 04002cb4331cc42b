// Fused hyper-connection mixing (layers/hyper_connections.h): the width op computes every
// token's mixing coefficients and branch input from its streams in one pass, the depth op
// the streams' update; kernels.h states the arithmetic.
#include "autograd/apply.h"
#include "autograd/dispatch.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

// An uninitialised gradient for every input that needs one (the kernels overwrite them).
Grads wanted_grads(const Ctx& ctx, const Tensor& like) {
  Grads g(ctx.num_inputs());
  for (size_t i = 0; i < g.size(); ++i)
    if (ctx.needs_grad(i)) g[i] = Tensor::empty(ctx.input_shape(i), like.dtype(), like.device());
  return g;
}

struct HyperWidthOp {
  const char* name = "hyper_width";
  double eps;

  Tensor forward(Ctx& ctx, std::span<const Tensor> in) const {
    const Tensor &H = in[0], &G = in[1], &base = in[2], &scale = in[3];
    tm::check_float_same(name, {&H, &G, &base, &scale});
    MNEMO_CHECK(H.rank() == 3 && H.dim(1) >= 1, "[hyper_width] expected streams (R, S, D), got " << H.shape());
    const int64_t R = H.dim(0), S = H.dim(1), D = H.dim(2), C = S + 2;
    MNEMO_CHECK(G.shape() == Shape({D, C}) && base.shape() == Shape({S, C}) && scale.shape() == Shape({C}),
                "[hyper_width] for streams " << H.shape() << " expected G (" << D << ", " << C << "), base (" << S
                                             << ", " << C << ") and scale (" << C << "), got " << G.shape() << ", "
                                             << base.shape() << " and " << scale.shape());
    Tensor out = Tensor::empty({R, D + S * C}, H.dtype(), H.device()), z = Tensor::empty({R, S, C}, H.dtype(), H.device()),
           norm = Tensor::empty({R, S}, H.dtype(), H.device());
    if (R > 0) launch(kernels::hyper_width_forward, H, out, z, norm, H, G, base, scale, R, S, D, eps);
    ctx.save("H", H), ctx.save("G", G), ctx.save("scale", scale), ctx.save("out", out), ctx.save("z", z);
    ctx.save("norm", norm);
    return out;
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor &H = ctx.saved("H"), &G = ctx.saved("G"), &scale = ctx.saved("scale");
    const int64_t R = H.dim(0), S = H.dim(1), D = H.dim(2);
    Grads g = wanted_grads(ctx, H);
    // R = 0 runs too: the parameter gradients are then the kernel's empty sums, zeros.
    launch(kernels::hyper_width_backward, H, g[0], g[1], g[2], g[3], dy, H, G, scale, ctx.saved("out"), ctx.saved("z"),
           ctx.saved("norm"), R, S, D, eps);
    return g;
  }
};

struct HyperDepthOp {
  const char* name = "hyper_depth";
  bool mix;

  Tensor forward(Ctx& ctx, std::span<const Tensor> in) const {
    const Tensor &H = in[0], &coef = in[1], &b = in[2];
    tm::check_float_same(name, {&H, &coef, &b});
    MNEMO_CHECK(H.rank() == 3 && H.dim(1) >= 1, "[hyper_depth] expected streams (R, S, D), got " << H.shape());
    const int64_t R = H.dim(0), S = H.dim(1), D = H.dim(2);
    MNEMO_CHECK(coef.shape() == Shape({R, S, S + 2}) && b.shape() == Shape({R, D}),
                "[hyper_depth] for streams " << H.shape() << " expected coef (" << R << ", " << S << ", " << S + 2
                                             << ") and branch output (" << R << ", " << D << "), got "
                                             << coef.shape() << " and " << b.shape());
    Tensor out = H.empty_like();
    if (R > 0) launch(kernels::hyper_depth_forward, H, out, H, coef, b, R, S, D, mix);
    ctx.save("H", H), ctx.save("coef", coef), ctx.save("b", b);
    return out;
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor &H = ctx.saved("H"), &coef = ctx.saved("coef"), &b = ctx.saved("b");
    const int64_t R = H.dim(0), S = H.dim(1), D = H.dim(2);
    Grads g = wanted_grads(ctx, H);
    if (R > 0) launch(kernels::hyper_depth_backward, H, g[0], g[1], g[2], dy, H, coef, b, R, S, D, mix);
    return g;
  }
};

}  // namespace

Var hyper_width(Var H, Var G, Var base, Var scale, double eps) {
  const Var in[] = {H, G, base, scale};
  return apply_n(HyperWidthOp{"hyper_width", eps}, in);
}

Var hyper_depth(Var H, Var coef, Var b, bool mix) {
  const Var in[] = {H, coef, b};
  return apply_n(HyperDepthOp{"hyper_depth", mix}, in);
}

using gradcheck::Range;
using gradcheck::Sample;
// Scales and projections large enough that tanh bends and every coefficient matters.
constexpr Range kWeights{-1.5, 1.5};
MNEMO_GRADCHECK("hyper_width", [](Sample& s) {
  return hyper_width(s.input({4, 3, 5}), s.param({5, 5}, kWeights), s.param({3, 5}), s.param({5}, kWeights));
});
MNEMO_GRADCHECK("hyper_width.one_stream", [](Sample& s) {
  return hyper_width(s.input({3, 1, 4}), s.param({4, 3}, kWeights), s.param({1, 3}), s.param({3}, kWeights));
});
MNEMO_GRADCHECK("hyper_depth", [](Sample& s) {
  return hyper_depth(s.input({4, 3, 5}), s.input({4, 3, 5}), s.input({4, 5}), true);
});
MNEMO_GRADCHECK("hyper_depth.unmixed", [](Sample& s) {
  return hyper_depth(s.input({4, 3, 5}), s.input({4, 3, 5}), s.input({4, 5}), false);
});

}  // namespace mnemo
