// LinearSelfAttention: the MemXL memory writer's attention (SPEC 4.2), slots x (B, S, D),
// context c (B, N, D) (not normalised), H heads of d = D/H, matrices applied as x W (not x W^T):
//   n = LayerNorm_noaffine(x);  q = n Wq;  [k, v] = concat(n, c) Wkv  (time axis; k first half)
//   per head h: q_h = softmax over d (features), k_h = softmax over S + N (sequence),
//               ctx_h = k_h^T v_h (d x d),  o_h = q_h ctx_h (S x d)
//   y = merge(o) Wout,  merge(o)[b, s, h d + e] = o[b, h, s, e]
#pragma once

#include "autograd/ops/ops.h"
#include "layers/init.h"
#include "layers/module.h"

namespace mnemo::nn {

// Parameters "to_q" Wq (D, D), "to_kv" Wkv (D, 2D), "to_out" Wout (D, D): bare matrices as in the
// reference (nn.Parameter, no ".weight"), no biases, each U(+-1/sqrt(D)) drawn in that order.
//
// reference_parity (MemXL P2): the reference merges heads with out.transpose(2, 3).reshape_as(x),
// i.e. it reads the (B, H, d, S) buffer o[b, h, e, s] in row-major order as (B, S, D):
//   merge(o)[b, r, c] = o[b, h, s, e]  with  r D + c = h d S + e S + s,
// so h = f / (d S), e = (f / S) mod d, s = f mod S for f = r D + c: slot and feature indices
// mix across heads. We build it the same way: permute o to (B, H, d, S), then view as (B, S, D).
struct LinearSelfAttention : Module {
  Param wq, wkv, wout;
  int64_t dim, heads;
  bool reference_parity;

  LinearSelfAttention(Init& init, int64_t dim, int64_t heads = 4, bool reference_parity = false);
  // slots (B, S, D), context (B, N, D) or undefined (N = 0) -> (B, S, D)
  Var operator()(Var slots, Var context = {}) const;

  void visit(ParamVisitor& v) override {
    v("to_q", wq);
    v("to_kv", wkv);
    v("to_out", wout);
  }
};

}  // namespace mnemo::nn
