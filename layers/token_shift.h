// Token shift (RMT, historical; SPEC 0.3.7): on the main-sequence rows of x (..., T, D),
//   y[t, :h] = x[t, :h],   y[t, h:] = x[t-1, h:] (zeros at t = 0),   h = ceil(D/2)
// (torch.chunk's split); the first n_prefix and last n_suffix rows (memory slots) pass unchanged.
#pragma once

#include "autograd/ops/ops.h"

namespace mnemo::nn {

// x (..., T, D) -> (..., T, D); needs n_prefix + n_suffix <= T.
Var token_shift(Var x, int64_t n_prefix = 0, int64_t n_suffix = 0);

}  // namespace mnemo::nn
