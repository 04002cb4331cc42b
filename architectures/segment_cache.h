// What the per-token caches of RMT, Compressive and Memory Transformer-XL share
// (SegmentModel::cached_generator; BRT has its own per-block one in brt_generate.cpp): the
// stream is cut into segments of T from its first token; inside a segment each new token runs
// only its own position through the layers, against the keys/values cached for the memory and
// the segment's earlier tokens; when a segment fills, forward() runs over it once, from the
// memory that entered it, and its memory is taken: the memory update is the training
// computation itself, and its cost (one segment's forward per T tokens) is spread over T tokens.
// The logits of the segment's last token come from that forward too.
#pragma once

#include <cstdint>
#include <vector>

#include "architectures/segment_model.h"
#include "layers/attention.h"

namespace mnemo::arch {

// A per-layer key or value cache (B, Hk, L, d) with x (B, Hk, n, d) appended; either undefined: empty.
Var append_keys(const Var& cache, const Var& x);
// The keys and values (B, Hk, M, d) each that attention `a` makes of memory slots (B, M, D)
// (its to_kv, as when they come in as AttentionContext::memory): computed once per segment.
std::pair<Var, Var> project_slots(const nn::MultiheadAttention& a, const Var& slots);
// logits (B, n, V) -> the last position's (B, V)
Tensor last_logits(const Var& logits);

class SegmentCache : public Generator {
 public:
  void feed(const Tensor& tokens) override;  // (B, n) i32, any n >= 1: split at segment ends
  Tensor next_logits() override;
  Memory memory() const override { return memory_; }

 protected:
  SegmentCache(const SegmentModel& model, const Memory& memory, int64_t batch, int64_t seg_len, const char* name);

  // A segment begins with `memory` entering it: forget the last segment's keys/values and
  // cache what the memory puts in front of every layer's keys.
  virtual void begin_segment(Tape& tape, const MemoryVars& memory) = 0;
  // Tokens (B, n) at positions [pos, pos + n) of the segment, none of them its last: run them
  // through the layers against the cache and append their keys/values; returns the logits of
  // the last of them (B, V).
  virtual Tensor extend(Tape& tape, const Tensor& tokens, int64_t pos) = 0;

  int64_t batch() const { return B_; }

 private:
  void feed_part(const Tensor& tokens);  // (B, n) within the current segment

  const SegmentModel& model_;
  int64_t B_, seg_len_;
  const char* name_;                        // for error messages: "[<name> generator]"
  Tape tape_;
  Tape::NoRecord no_record_{tape_};
  Memory memory_;                           // entering the current segment
  std::vector<std::vector<int32_t>> rows_;  // the current segment's tokens, per stream
  bool begun_ = false;                      // begin_segment ran for the current segment
  Tensor last_;                             // (B, V), undefined before the first token
};

}  // namespace mnemo::arch
