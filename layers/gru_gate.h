// GRU gating of residuals (SPEC 0.5; CT, from "Stabilizing Transformers for RL"): token-wise
// x' = GRUCell(input = y, hidden = x), y the branch output, x the residual stream. PyTorch's GRUCell
// (rows of the 3D-high weights in gate order r, z, n):
//   r = σ(W_ir y + b_ir + W_hr x + b_hr)     z = σ(W_iz y + b_iz + W_hz x + b_hz)
//   n = tanh(W_in y + b_in + r ⊙ (W_hn x + b_hn))     x' = (1 - z) ⊙ n + z ⊙ x
// An optional Mogrifier rewrites (x, y) first (CT/MemXL mogrify_gru).
#pragma once

#include <optional>

#include "layers/mogrifier.h"

namespace mnemo::nn {

// nn.GRUCell(D, D): "weight_ih", "weight_hh" (3D, D), "bias_ih", "bias_hh" (3D), all U(+-1/sqrt(D)).
struct GRUCell : Module {
  Param weight_ih, weight_hh, bias_ih, bias_hh;
  int64_t dim;

  GRUCell(Init& init, int64_t dim);
  Var operator()(Var input, Var hidden) const;  // (..., D), (..., D) -> (..., D)

  void visit(ParamVisitor& v) override {
    v("weight_ih", weight_ih);
    v("weight_hh", weight_hh);
    v("bias_ih", bias_ih);
    v("bias_hh", bias_hh);
  }
};

struct GRUGateOptions {
  // Added to the z rows of bias_hh at init: GTrXL's identity-favouring positive update-gate bias
  // (z -> 1 keeps x). 0 is PyTorch's init, what CT uses (CT P7) and what parity needs.
  double gate_bias_init = 0.0;
  bool mogrify = false;
  MogrifierOptions mogrifier = {};
};

// Names as CT's GRUGating ("gru.weight_ih", "mogrify.Q.0.weight"): the residual wrapper that also
// owns the branch ("fn") should call gate.visit(v) directly, not v.sub(...), so these sit beside "fn".
struct GRUGate : Module {
  GRUCell gru;
  std::optional<Mogrifier> mogrify;

  GRUGate(Init& init, int64_t dim, GRUGateOptions opts = {});
  Var operator()(Var x, Var y) const;  // residual x, branch output y: (..., D) each -> (..., D)

  void visit(ParamVisitor& v) override {
    v.sub("gru", gru);
    if (mogrify) v.sub("mogrify", *mogrify);
  }
};

}  // namespace mnemo::nn
