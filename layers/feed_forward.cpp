// FeedForward: w2(drop(gelu(w1 x))), or w2(drop(gelu(h) v)) with [h, v] = w1 x (glu).
// GegluFeedForward: proj_out(drop(a gelu(g))), [a, g] = proj_in(norm(x)), I = int(D mult 2/3).
#include "layers/feed_forward.h"

#include "layers/testing.h"

namespace mnemo::nn {

FeedForward::FeedForward(Init& init, int64_t dim, int64_t mult, double dropout, bool with_glu)
    : w1(init, dim, dim * mult * (with_glu ? 2 : 1)), w2(init, dim * mult, dim), drop(dropout), glu(with_glu) {
  MNEMO_CHECK(dim >= 1 && mult >= 1, "[feed_forward] expected dim, mult >= 1, got " << dim << ", " << mult);
}

Var FeedForward::operator()(Var x) const {
  MNEMO_CHECK(x.rank() >= 1 && x.dim(-1) == w1.d_in,
              "[feed_forward] expected (..., " << w1.d_in << "), got " << x.shape());
  Var h = w1(x);                                  // (..., mult D) or (..., 2 mult D)
  Var a = glu ? geglu(h, /*activate_first=*/true) : gelu(h);  // (..., mult D)
  return w2(drop(a));
}

int64_t geglu_inner_dim(int64_t dim, double mult) {
  // The references write int(dim * mult * 2 / 3): the product first, then the division.
  return int64_t(double(dim) * mult * 2 / 3);
}

GegluFeedForward::GegluFeedForward(Init& init, int64_t dim, double mult, Norm norm, double dropout)
    : proj_in(init, dim, 2 * geglu_inner_dim(dim, mult), false),
      proj_out(init, geglu_inner_dim(dim, mult), dim, false),
      drop(dropout),
      inner(geglu_inner_dim(dim, mult)) {
  MNEMO_CHECK(inner >= 1, "[geglu_ff] inner width int(" << dim << " * " << mult << " * 2/3) must be >= 1");
  if (norm == Norm::layer_norm) layer_norm.emplace(init, dim, LayerNorm::Affine::gain_only);
  if (norm == Norm::rms_norm) rms_norm.emplace(init, dim, RMSNorm::Style::torch);
}

Var GegluFeedForward::operator()(Var x) const {
  MNEMO_CHECK(x.rank() >= 1 && x.dim(-1) == proj_in.d_in,
              "[geglu_ff] expected (..., " << proj_in.d_in << "), got " << x.shape());
  Var xn = layer_norm ? (*layer_norm)(x) : rms_norm ? (*rms_norm)(x) : x;  // (..., D)
  Var a = geglu(proj_in(xn), /*activate_first=*/false);                   // (..., I)
  return proj_out(drop(a));
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.feed_forward", [](Sample& s) {
  return checked_layer<FeedForward>(s, 3, 2)(s.input({2, 4, 3}));
});
MNEMO_GRADCHECK("layers.feed_forward.glu", [](Sample& s) {
  return checked_layer<FeedForward>(s, 3, 2, 0.0, true)(s.input({2, 4, 3}));
});
MNEMO_GRADCHECK("layers.geglu_ff", [](Sample& s) {
  return checked_layer<GegluFeedForward>(s, 6, 2.0, GegluFeedForward::Norm::layer_norm)(s.input({2, 3, 6}));
});
MNEMO_GRADCHECK("layers.geglu_ff.rms_norm", [](Sample& s) {
  return checked_layer<GegluFeedForward>(s, 6, 2.0, GegluFeedForward::Norm::rms_norm)(s.input({2, 3, 6}));
});

}  // namespace mnemo::nn
