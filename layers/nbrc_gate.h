// nBRC gate (SPEC 0.5; MemXL's residual gate and memory-writer update: a "neuromodulated bistable
// recurrent cell" with full matrices), token-wise, y the input (branch output), x the hidden (residual):
//   a = 1 + tanh(Ua y + Wa x)    c = σ(Uc y + Wc x)    x' = c ⊙ x + (1 - c) ⊙ tanh(U y + a ⊙ x)
// Five Linear D -> D with bias, named as MemXL's nBRC ("Ua", "Wa", "Uc", "Wc", "U") and drawn in that
// order. NBRCGate adds an optional Mogrifier that rewrites (x, y) first (MemXL mogrify_gru).
#pragma once

#include <optional>

#include "layers/mogrifier.h"

namespace mnemo::nn {

// The bare cell: MemXL's memory writer owns one as "gate" ("memory_network.gate.Ua.weight").
struct NBRCCell : Module {
  Linear Ua, Wa, Uc, Wc, U;
  int64_t dim;

  // keep_init: the keep gate c starts near it (Uc's bias shifted by logit(keep_init); 0.5
  // leaves the reference's init as it is).
  NBRCCell(Init& init, int64_t dim, double keep_init = 0.5);
  Var operator()(Var input, Var hidden) const;  // (..., D), (..., D) -> (..., D), argument order as MemXL's

  void visit(ParamVisitor& v) override {
    v.sub("Ua", Ua);
    v.sub("Wa", Wa);
    v.sub("Uc", Uc);
    v.sub("Wc", Wc);
    v.sub("U", U);
  }
};

struct NBRCGateOptions {
  bool mogrify = false;
  MogrifierOptions mogrifier = {};
};

// The residual gate, laid out as GRUGate: names "gru.Ua.weight", "mogrify.Q.0.weight" as MemXL's
// GRUGating, so the residual wrapper that owns the branch ("fn") calls gate.visit(v) directly.
struct NBRCGate : Module {
  NBRCCell gru;
  std::optional<Mogrifier> mogrify;

  NBRCGate(Init& init, int64_t dim, NBRCGateOptions opts = {});
  Var operator()(Var x, Var y) const;  // residual x, branch output y: (..., D) each -> (..., D)

  void visit(ParamVisitor& v) override {
    v.sub("gru", gru);
    if (mogrify) v.sub("mogrify", *mogrify);
  }
};

}  // namespace mnemo::nn
