// Normalisations over the last axis (SPEC 0.1).
//   LayerNorm: gain "weight" and bias "bias"; bias-free (BRT) and non-affine (MemXL writer)
//              variants leave them out. eps 1e-5.
//   RMSNorm, torch style: x / sqrt(mean(x^2) + eps) * weight (eps: the dtype's epsilon).
//   RMSNorm, l2 style (lucidrains, hyper-connections): l2normalize(x) * sqrt(D) * gamma, or
//              * (gamma + 1) with gamma initialised to 0 ("unit offset").
#pragma once

#include "autograd/ops/ops.h"
#include "layers/init.h"
#include "layers/module.h"

namespace mnemo::nn {

struct LayerNorm : Module {
  enum class Affine : uint8_t { gain_and_bias, gain_only, none };
  Param weight, bias;
  int64_t dim;
  double eps;

  LayerNorm(Init& init, int64_t dim, Affine affine = Affine::gain_and_bias, double eps = 1e-5);
  Var operator()(Var x) const;  // (..., D) -> (..., D)

  void visit(ParamVisitor& v) override {
    if (weight.value.defined()) v("weight", weight);
    if (bias.value.defined()) v("bias", bias);
  }
};

struct RMSNorm : Module {
  enum class Style : uint8_t { torch, l2, l2_unit_offset };
  Param weight;  // "weight" (torch) or "gamma" (l2 styles)
  int64_t dim;
  Style style;
  double eps;

  RMSNorm(Init& init, int64_t dim, Style style = Style::torch, double eps = -1);  // eps < 0: dtype epsilon
  Var operator()(Var x) const;  // (..., D) -> (..., D)

  void visit(ParamVisitor& v) override { v(style == Style::torch ? "weight" : "gamma", weight); }
};

}  // namespace mnemo::nn
