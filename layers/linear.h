// Linear: y = x W^T + b.   x (..., D_in)   W "weight" (D_out, D_in)   b "bias" (D_out)
// PyTorch layout and init (U(+-1/sqrt(D_in)) for both), so reference weights import as is.
#pragma once

#include "autograd/ops/ops.h"
#include "layers/init.h"
#include "layers/module.h"

namespace mnemo::nn {

struct Linear : Module {
  Param weight, bias;
  int64_t d_in = 0, d_out = 0;

  Linear(Init& init, int64_t d_in, int64_t d_out, bool with_bias = true);
  Var operator()(Var x, ParamUse use = ParamUse::train) const;  // (..., D_in) -> (..., D_out)
  bool has_bias() const { return bias.value.defined(); }

  void visit(ParamVisitor& v) override {
    v("weight", weight);
    if (has_bias()) v("bias", bias);
  }
};

}  // namespace mnemo::nn
