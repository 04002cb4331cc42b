// Sampling text from any SegmentModel, segment by segment: full segments of the prompt
// advance the memory; inside the current partial segment every new token re-runs the
// segment so far (the model sees a segment shorter than seq_len) and keeps nothing from it;
// when the segment fills, one full forward commits its memory. Memories therefore advance
// exactly as in training and evaluation. Architectures with a per-token cache may offer a
// faster path; this one needs nothing but the SegmentModel interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "architectures/segment_model.h"

namespace mnemo::experiments {

struct GenerateOptions {
  int64_t length = 256;        // tokens to generate
  double temperature = 1.0;    // 0: greedy (argmax)
  int64_t top_k = 0;           // sample among the k likeliest; 0 = all
  uint64_t seed = 0;
};

// Generates `length` tokens after `prompt` (an empty prompt starts from a newline) with a
// batch of one. The model is used as it is: call nn::eval(model) first for inference.
std::vector<int32_t> generate(const arch::SegmentModel& model, int64_t seg_len, const std::vector<int32_t>& prompt,
                              const GenerateOptions& opts);

// Bytes -> text with non-printable bytes escaped as \xNN (samples go into logs and JSON).
std::string printable(const std::vector<int32_t>& tokens);

}  // namespace mnemo::experiments
