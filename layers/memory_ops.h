// FIFO memories along time (axis 1), oldest slot first:
//   all = concat(memory (B, M, D), incoming (B, n, D)),  L = M + n,  e = max(L - max_len, 0)
//   evicted = all[:, :e]  (the oldest),   kept = all[:, e:]  (the newest min(L, max_len))
// M may be 0 (an empty (B, 0, D) memory, or an undefined Var / Tensor: the first segment).
// The Var version is differentiable: gradients reach memory and incoming through both outputs.
#pragma once

#include "autograd/ops/ops.h"

namespace mnemo::nn {

struct FifoResult {
  Var kept;     // (B, min(M + n, max_len), D)
  Var evicted;  // (B, max(M + n - max_len, 0), D)
};

struct FifoTensors {
  Tensor kept;
  Tensor evicted;
};

FifoResult fifo_push(Var memory, Var incoming, int64_t max_len);
// The same for memories carried between segments as plain Tensors (no tape involved).
FifoTensors fifo_push(const Tensor& memory, const Tensor& incoming, int64_t max_len);

}  // namespace mnemo::nn
