// Dropout as a layer: probability p, active only while training; its seed comes from the
// tape (Tape::next_seed), so a replayed segment with the same tape seed drops the same units.
#pragma once

#include "autograd/ops/ops.h"
#include "layers/module.h"

namespace mnemo::nn {

struct Dropout : Module {
  double p = 0;
  explicit Dropout(double prob = 0) : p(prob) {
    MNEMO_CHECK(p >= 0 && p < 1, "[dropout] p must be in [0, 1), got " << p);
  }
  Var operator()(Var x) const {
    if (!training || p == 0) return x;
    return dropout(x, p, x.tape().next_seed(), true);
  }
  void visit(ParamVisitor&) override {}
};

}  // namespace mnemo::nn
