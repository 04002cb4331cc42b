// Hyper-connections (SPEC 0.6; RMT HEAD): the residual stream is kept as S streams H, a
// (B, ..., S, D) tensor with each token's streams together, so the per-token mixing below needs
// no transposes. Each sub-layer owns one HyperConnections and, per token, computes
//   Hn = RMSNorm(H)   alpha = static_alpha + a_scale · tanh(Hn dynamic_alpha_fn)   (S, S+1)
//   beta = static_beta + b_scale · tanh(Hn dynamic_beta_fn)   (S)   mix[t] = Σ_s alpha[s, t] H[s]
//   width: branch input = mix[0];   depth: H'[s] = R[s] + beta[s] · branch_out, R = mix[1..S]
// (paper, default) or R = H (reference_parity: hyper-connections 0.1.7-0.3.9, RMT's pin, issue #8).
// S = 1 is a plain residual x + branch(x) with no parameters, as the package's disable switch.
// Width and depth each run as one fused op (hyper_width, hyper_depth in autograd/ops/hyper.cpp)
// that reads a token's streams once: as composite ops the mixing cost ~25% of an RMT step.
#pragma once

#include <optional>

#include "layers/norm.h"

namespace mnemo::nn {

// (B, ..., D) -> (B, ..., S, D), every stream a copy of x: before the first layer.
Var expand_streams(Var x, int64_t streams);
// (B, ..., S, D) -> (B, ..., D), the sum (not the mean) over streams: after the last layer.
Var reduce_streams(Var H, int64_t streams);

struct HyperConnections : Module {
  Param static_beta;            // (S), ones
  Param static_alpha;           // (S, S+1): column 0 one-hot at init_stream, columns 1..S identity
  Param dynamic_alpha_fn;       // (D, S+1), zeros
  Param dynamic_alpha_scale;    // (), 0.01
  Param dynamic_beta_fn;        // (D), zeros
  Param dynamic_beta_scale;     // (), 0.01
  std::optional<RMSNorm> norm;  // l2, unit offset: "norm.gamma" (D), zeros
  int64_t dim, streams, init_stream = 0;
  bool reference_parity;

  // The stream that feeds the branch at init: layer_index % S, or drawn from init when layer_index < 0
  // (the package's random.randrange, made seedable).
  HyperConnections(Init& init, int64_t dim, int64_t streams, int64_t layer_index, bool reference_parity = false);

  struct Width {
    Var branch_input;    // (B, ..., D)
    Var streams;         // H as (R, S, D), R = B x ... tokens (H itself when S = 1)
    Var coef;            // (R, S, S+2): alpha's columns, then beta; undefined when S = 1
    Shape stream_shape;  // H's (B, ..., S, D)
  };
  Width width(Var H) const;                         // H (B, ..., S, D)
  Var depth(const Width& w, Var branch_out) const;  // branch_out (B, ..., D) -> H' (B, ..., S, D)

  void visit(ParamVisitor& v) override {
    if (streams == 1) return;
    v("static_beta", static_beta);
    v("static_alpha", static_alpha);
    v("dynamic_alpha_fn", dynamic_alpha_fn);
    v("dynamic_alpha_scale", dynamic_alpha_scale);
    v("dynamic_beta_fn", dynamic_beta_fn);
    v("dynamic_beta_scale", dynamic_beta_scale);
    v.sub("norm", *norm);
  }
};

}  // namespace mnemo::nn
