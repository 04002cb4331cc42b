// Mogrifier (SPEC 0.5; CT/MemXL mogrify_gru, "Mogrifier LSTM"): before a gate, the residual x and
// the branch output y modulate each other for `iters` rounds (round 0 first):
//   even rounds  y <- 2 σ(Q(x)) ⊙ y        odd rounds  x <- 2 σ(R(y)) ⊙ x
// Q, R: low-rank D -> r -> D (r = D/4), "Q.0", "Q.1" as the package's nn.Sequential; no biases in
// the 2020 package (what CT and MemXL use), biases in the 2024 rewrite. R exists only if iters > 1.
#pragma once

#include <optional>

#include "layers/linear.h"

namespace mnemo::nn {

struct MogrifierOptions {
  int iters = 5;
  int64_t rank = 0;   // 0: D / 4
  bool bias = false;  // 2020 package: none
};

struct Mogrified {
  Var x, y;  // the modulated residual and branch output, shapes unchanged
};

struct Mogrifier : Module {
  // D -> r -> D, visited as "0" and "1" so names match nn.Sequential's.
  struct Factor : Module {
    Linear down, up;
    Factor(Init& init, int64_t dim, int64_t rank, bool bias) : down(init, dim, rank, bias), up(init, rank, dim, bias) {}
    Var operator()(Var x) const { return up(down(x)); }
    void visit(ParamVisitor& v) override {
      v.sub("0", down);
      v.sub("1", up);
    }
  };

  Factor Q;
  std::optional<Factor> R;
  int64_t dim, rank;
  int iters;

  Mogrifier(Init& init, int64_t dim, MogrifierOptions opts = {});
  Mogrified operator()(Var x, Var y) const;  // x residual, y branch output: both (..., D)

  void visit(ParamVisitor& v) override {
    v.sub("Q", Q);
    if (R) v.sub("R", *R);
  }
};

// What a gated residual feeds its cell: (x, y) through the Mogrifier when there is one,
// else unchanged. Checks x (residual) and y (branch output) are (..., dim) and alike.
Mogrified gate_inputs(const char* gate, int64_t dim, const std::optional<Mogrifier>& mogrify, Var x, Var y);

}  // namespace mnemo::nn
