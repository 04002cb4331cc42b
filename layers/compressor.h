// Compressor: the CT compression function, a Conv1d with kernel = stride = ratio c on time.
//   y[b, t, o] = bias[o] + sum_{c', j} weight[o, c', j] x'[b, t c + j, g(o) C/groups + c']
// x (B, L, C) -> (B, ceil(L / c), C). weight (C, C/groups, c) and bias (C) as PyTorch's Conv1d,
// U(+-1/sqrt(C/groups c)); names "weight", "bias". BRT uses groups = 2 (keys and values apart).
// x' pads L to a multiple of c with c - L mod c zeros on the left (the oldest side), so every
// slot, the newest included, is compressed. See the flags below for the references' rules.
#pragma once

#include "autograd/ops/ops.h"
#include "layers/init.h"
#include "layers/module.h"

namespace mnemo::nn {

struct Compressor : Module {
  Param weight, bias;
  int64_t channels, ratio, groups;
  // CT pitfall P3: left-pad by L mod c (not c - L mod c), then the strided conv drops the
  // trailing L' mod c slots, i.e. the NEWEST ones; output length floor((L + L mod c) / c).
  // Where L + L mod c < c PyTorch's conv raises; we return zero slots.
  bool reference_parity = false;
  // BRT's rule: drop the oldest L mod c slots instead of padding; output length floor(L / c).
  bool drop_remainder = false;

  Compressor(Init& init, int64_t channels, int64_t ratio, int64_t groups = 1, bool with_bias = true);
  // (B, L, C) -> (B, out_len(L), C); L may be 0.
  Var operator()(Var evicted, ParamUse use = ParamUse::train) const;
  int64_t out_len(int64_t len) const;
  bool has_bias() const { return bias.value.defined(); }

  void visit(ParamVisitor& v) override {
    v("weight", weight);
    if (has_bias()) v("bias", bias);
  }
};

}  // namespace mnemo::nn
