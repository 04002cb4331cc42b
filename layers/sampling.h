// Sampling from logits (SPEC 0.7), on Tensors, no tape. logits (B, V) f32/f64; samples i32 (B).
//   temperature:  l / max(T, 1e-10)
//   top-k:        keep the k largest per row, the rest -inf; k = ceil((1 - thres) V) (BRT, RMT)
//                 or floor((1 - thres) V) (CT, MemXL): V = 256, thres 0.9 -> 26 or 25
//   Gumbel-max:   argmax(l / max(T, 1e-10) + g),  g = -log(max(-log(max(u, 1e-20)), 1e-20))
//   multinomial:  one draw from softmax(l / max(T, 1e-10))
// Both samplers draw from softmax(l / T); the generator is the caller's, so a seed fixes a run.
#pragma once

#include "autograd/random.h"
#include "autograd/tensor.h"

namespace mnemo::nn {

enum class TopKRounding : uint8_t {
  ceil,   // BRT, RMT: math.ceil((1 - thres) * V)
  floor,  // CT, MemXL: int((1 - thres) * V)
};

// k for a vocabulary of V, computed in double as the references do, then held to [1, V]
// (k = 0 would leave nothing to sample; the references never reach it at thres 0.9).
int64_t top_k_count(int64_t vocab, double thres, TopKRounding rounding);

// logits / max(T, 1e-10), same shape and dtype.
Tensor apply_temperature(const Tensor& logits, double temperature);
// The k largest logits of each row kept, the rest -inf; ties go to the lower index.
Tensor top_k_filter(const Tensor& logits, double thres, TopKRounding rounding);
// The index of each row's largest logit (the first one on ties): i32 (B).
Tensor argmax_sample(const Tensor& logits);
// Gumbel-max (BRT, RMT): one uniform per logit from `rng`, row by row: i32 (B).
Tensor gumbel_sample(const Tensor& logits, double temperature, Rng& rng);
// Softmax, then one uniform per row from `rng` against the cumulative sum (CT, MemXL): i32 (B).
Tensor multinomial_sample(const Tensor& logits, double temperature, Rng& rng);

}  // namespace mnemo::nn
