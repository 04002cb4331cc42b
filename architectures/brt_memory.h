// BRT's memory manager (SPEC 1.3, the reference's MemoryManager), for one layer, after a full
// block. Memories hold single-head keys and values side by side on channels: (B, n, 2d) =
// [k | v], unrotated (P2), oldest slot first.
//   stage 1 (identity, capacity W):   [xl; kv] -> keep the newest W, evict the rest
//   stage 2 (compressed, capacity W/2, optional): trim the evicted slots to a multiple of c
//            (dropping the oldest), compress them with a grouped Conv1d (kernel = stride = c,
//            groups 2, so keys and values are compressed apart), append to xlc, keep W/2
// The attention keys of the next block are [xlc; xl] (compressed, older, on the left).
// Everything stays on the tape: gradient reaches the block that wrote a slot, and the conv
// gets gradient when a later block in the same window attends to compressed slots.
#pragma once

#include "autograd/ops/ops.h"
#include "layers/compressor.h"

namespace mnemo::arch {

struct BrtMemory {
  Var xl;   // (B, min(M + W, W), 2d)
  Var xlc;  // (B, <= W/2, 2d), or the input as it was (undefined stays undefined)
};

// xl, xlc: (B, M, 2d) / (B, Mc, 2d) or undefined (empty); kv (B, W, 2d) the block's keys and
// values; compress null: no second stage.
BrtMemory brt_push_memory(Var xl, Var xlc, Var kv, int64_t block_width, const nn::Compressor* compress);

}  // namespace mnemo::arch
