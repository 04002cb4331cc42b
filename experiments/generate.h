// Sampling from any SegmentModel, memory carried across segments. The stream (prime, then
// the new tokens) is cut into segments of seg_len from its first token; a complete segment
// commits its memory exactly as in training and evaluation. The logits come from the model's
// cached decoder when it has one (SegmentModel::cached_generator: BRT, RMT, CT, MemXL),
// else from the generic one here, which re-runs forward() over the partial segment for each
// new token. Both feed the one sampler: temperature (0 = greedy), top-k, multinomial.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "architectures/segment_model.h"

namespace mnemo::experiments {

struct GenerateOptions {
  int64_t length = 256;        // tokens to generate
  double temperature = 1.0;    // 0: greedy (argmax)
  int64_t top_k = 0;           // sample among the k likeliest; 0 = all
  uint64_t seed = 0;
  bool use_cache = true;       // false: the generic re-run even where the model has a cache
};

struct Generated {
  Tensor tokens;        // (B, length) i32, the new tokens
  arch::Memory memory;  // after the last complete segment of prime + new tokens
};

// Called with each step's new tokens (B) i32 as soon as they are sampled, so that a caller
// can show a long generation as it happens rather than after it.
using OnTokens = std::function<void(const Tensor& tokens)>;

// prime (B, P >= 1) i32 of tokens in [0, vocab); memory: entering the prime's first segment
// (empty: initial_memory). The model is used as it is: call nn::eval(model) first for inference.
Generated generate(const arch::SegmentModel& model, int64_t seg_len, const Tensor& prime, arch::Memory memory,
                   const GenerateOptions& opts, const OnTokens& on_tokens = {});
// One stream from the initial memory; an empty prompt starts from a newline.
std::vector<int32_t> generate(const arch::SegmentModel& model, int64_t seg_len, const std::vector<int32_t>& prompt,
                              const GenerateOptions& opts, const OnTokens& on_tokens = {});

// Bytes -> text with non-printable bytes escaped as \xNN (samples go into logs and JSON).
std::string printable(const std::vector<int32_t>& tokens);

}  // namespace mnemo::experiments
