// Feed-forward branches (SPEC 0.2). x (..., D) -> (..., D) for all of them.
//   FeedForward (CT, MemXL):   w2(drop(gelu(w1 x)))                       w1 D -> mult D, biased
//     with glu:                w1 x = [h, v] (D -> 2 mult D);  w2(drop(gelu(h) * v))  (first half activated)
//   GegluFeedForward (BRT, RMT): proj_out(drop(a * gelu(g))),  [a, g] = proj_in(norm(x)),
//     no biases, I = floor(D mult 2/3) (D = 512, mult 4 -> 1365), norm: none, bias-free LayerNorm
//     (BRT) or torch RMSNorm (RMT HEAD). Names: "norm.weight", "proj_in.weight", "proj_out.weight".
#pragma once

#include <optional>

#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/norm.h"

namespace mnemo::nn {

// Classic FF. Names "w1.weight", "w1.bias", "w2.weight", "w2.bias": the reference's own names
// (FeedForward.w1 / .w2), so CT and MemXL weights import as they are.
struct FeedForward : Module {
  Linear w1, w2;
  Dropout drop;
  bool glu;

  FeedForward(Init& init, int64_t dim, int64_t mult = 4, double dropout = 0, bool glu = false);
  Var operator()(Var x) const;  // (..., D) -> (..., D)

  void visit(ParamVisitor& v) override {
    v.sub("w1", w1);
    v.sub("drop", drop);
    v.sub("w2", w2);
  }
};

// The GEGLU width rule: int(D * mult * 2 / 3) as the references compute it.
int64_t geglu_inner_dim(int64_t dim, double mult = 4);

struct GegluFeedForward : Module {
  enum class Norm : uint8_t { none, layer_norm, rms_norm };  // layer_norm: gain only (BRT)
  std::optional<LayerNorm> layer_norm;
  std::optional<RMSNorm> rms_norm;
  Linear proj_in, proj_out;
  Dropout drop;
  int64_t inner;

  GegluFeedForward(Init& init, int64_t dim, double mult = 4, Norm norm = Norm::none, double dropout = 0);
  Var operator()(Var x) const;  // (..., D) -> (..., D)

  void visit(ParamVisitor& v) override {
    if (layer_norm) v.sub("norm", *layer_norm);
    if (rms_norm) v.sub("norm", *rms_norm);
    v.sub("proj_in", proj_in);
    v.sub("drop", drop);
    v.sub("proj_out", proj_out);
  }
};

}  // namespace mnemo::nn
