// SegmentModel: the one interface the trainer sees. A model maps one segment of tokens
// and the memory entering it to logits, the memory leaving it and an optional auxiliary
// loss. Memory is a set of named tensors whose layout the architecture owns, so the
// trainer can carry, detach, drop out, replay or checkpoint it without knowing the model.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tape.h"
#include "layers/module.h"

namespace mnemo::arch {

using Memory = std::map<std::string, Tensor>;    // carried between tapes
using MemoryVars = std::map<std::string, Var>;   // on a tape

struct SegmentOut {
  Var logits;          // (B, T, V)
  MemoryVars memory;   // the memory after this segment, same names as the input
  Var aux_loss = {};   // a scalar added to the training loss, or undefined
};

// Memory onto a tape as constants (no gradient flows back into it), and back to tensors.
inline MemoryVars constants(Tape& tape, const Memory& m) {
  MemoryVars v;
  for (const auto& [name, t] : m) v.emplace(name, tape.constant(t));
  return v;
}
inline Memory values(const MemoryVars& m) {
  Memory out;
  for (const auto& [name, v] : m) out.emplace(name, v.value());
  return out;
}

// Incremental decoding over one stream of tokens cut into segments from its first token:
// tokens go in as they are chosen, the logits for the next one come out. An architecture
// with a per-token cache implements it; experiments/generate.cpp has the generic one that
// re-runs forward() and owns the sampler for both. No tape is recorded.
class Generator {
 public:
  virtual ~Generator() = default;
  virtual void feed(const Tensor& tokens) = 0;  // (B, n) i32, n >= 1: appended to the stream
  virtual Tensor next_logits() = 0;             // (B, V) for the token after those fed
  virtual Memory memory() const = 0;            // after the last complete segment fed
};

// Columns [start, start + n) of a token batch (B, N) i32: one segment's tokens.
inline Tensor token_columns(const Tensor& t, int64_t start, int64_t n) {
  const int64_t B = t.dim(0), N = t.dim(1);
  std::vector<int32_t> out;
  out.reserve(size_t(B * n));
  for (int64_t b = 0; b < B; ++b)
    out.insert(out.end(), t.data<int32_t>() + b * N + start, t.data<int32_t>() + b * N + start + n);
  return Tensor::from_ints({B, n}, out);
}

// What the key columns of one attention call hold, for `mnemo inspect`: regions in column
// order covering every key: the segment's own columns ("segment", or "segment.<what>", e.g.
// RMT's write slots), the learned "null" slot, and memories by kind ("xl_cache", "memory",
// "compressed", "long_term", "state", "persistent"),
// and which query rows are the segment's tokens (positions pos0.. of the segment).
struct KeyRegion {
  std::string name;
  int64_t size = 0;
};
struct AttentionLayout {
  std::string name;              // "layer 0", "layer 1 state read", ...
  std::vector<KeyRegion> keys;
  int64_t row0 = 0, rows = 0;    // token query rows [row0, row0 + rows); rows 0: none (state queries)
  int64_t pos0 = 0;              // the segment position of row row0
};

class SegmentModel : public nn::Module {
 public:
  virtual Memory initial_memory(int64_t batch) const = 0;
  virtual SegmentOut forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const = 0;
  // False for a memory that always leaves a segment without a graph (a stop-gradient
  // key/value cache): replay then feeds it as a constant and never computes or carries a
  // gradient for it, which the previous segment would only drop. Replay checks the claim.
  virtual bool memory_takes_gradient(const std::string& /*name*/) const { return true; }
  // A cached decoder for `batch` streams cut into segments of seg_len, `memory` entering the
  // first; null when the model has none for that segment length (generation then re-runs
  // forward() over the partial segment for every token). Same logits either way.
  virtual std::unique_ptr<Generator> cached_generator(const Memory& /*memory*/, int64_t /*batch*/,
                                                      int64_t /*seg_len*/) const {
    return nullptr;
  }
  // Every attention call forward() makes for a segment of `tokens` tokens entering with
  // `memory`, in call order, with its key regions (read by experiments/inspect.*, which
  // checks the calls and their sizes against what was recorded); empty: not declared.
  virtual std::vector<AttentionLayout> attention_layout(const Memory& /*memory*/, int64_t /*tokens*/) const {
    return {};
  }
};

}  // namespace mnemo::arch
