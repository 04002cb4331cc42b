// Fixed gate with a learned EMA rate (SPEC 0.5 and 1.2: BRT's state update), elementwise:
//   s' = g ⊙ z + (1 - g) ⊙ s,   g = σ(β),   β "learned_ema_beta" (D) ~ N(logit(g0), 0.1)
// s the previous state, z the proposed one (state_out_to_gate's output). g0 = 0.5 (β near 0) is
// meliad's init (BRT PR #7); a smaller g0 starts with the state kept longer (brt.ema_gate_init).
// No input dependence: the rate is per channel, not per token.
#pragma once

#include "autograd/ops/ops.h"
#include "layers/init.h"
#include "layers/module.h"

namespace mnemo::nn {

struct EMAGate : Module {
  Param learned_ema_beta;  // (D)
  int64_t dim;

  EMAGate(Init& init, int64_t dim, double initial_gate = 0.5);
  Var operator()(Var s, Var z) const;  // old state s, update z: (..., D) each -> (..., D)

  void visit(ParamVisitor& v) override { v("learned_ema_beta", learned_ema_beta); }
};

}  // namespace mnemo::nn
