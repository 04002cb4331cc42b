// Sampling from a Block-Recurrent Transformer over a stream longer than one segment (SPEC 1.4).
// The stream is cut into segments of T tokens from its first token; segment k starts from the
// memory (states, XL memories) the forward pass over segment k - 1 left. Each new token is
// drawn from the last logits by top-k filtering and Gumbel-max (SPEC 0.7, k = ceil).
//   uncached: the reference's way: for every token, forward() over the segment so far from
//             the segment's starting memory (O(T) work per token).
//   cached:   one pass: each layer keeps the current block's unrotated keys/values; a token
//             attends to [memory; cached block keys; itself] and reads the block-start states;
//             when a block fills, states are written and the XL memories pushed, exactly as
//             forward() does (O(W) work per token).
// Both draw the same uniforms in the same order, so for a seed they give the same tokens (the
// default positions make a block's prefix independent of what follows it; see brt.cpp).
#pragma once

#include <cstdint>

#include "architectures/brt.h"

namespace mnemo::arch {

struct BrtGenerateOptions {
  int64_t length = 0;          // new tokens to sample after the prime
  double temperature = 1.0;
  double filter_thres = 0.9;   // top-k keeps ceil((1 - thres) V) logits
  uint64_t seed = 0;           // the sampler's generator
  bool cache = true;           // per-block key/value cache; false: the reference's re-runs
};

struct BrtGenerated {
  Tensor tokens;  // (B, length) i32, the new tokens
  Memory memory;  // after the last complete segment of prime + new tokens (the next segment's input)
};

// prime (B, P >= 1) i32; memory: the memory entering the prime's first segment (empty map:
// initial_memory). Runs with no gradient tape.
BrtGenerated brt_generate(const BlockRecurrentTransformer& model, const Tensor& prime, Memory memory,
                          const BrtGenerateOptions& opts);

}  // namespace mnemo::arch
