// SegmentModel: the one interface the trainer sees. A model maps one segment of tokens
// and the memory entering it to logits, the memory leaving it and an optional auxiliary
// loss. Memory is a set of named tensors whose layout the architecture owns, so the
// trainer can carry, detach, drop out, replay or checkpoint it without knowing the model.
#pragma once

#include <map>
#include <string>

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

class SegmentModel : public nn::Module {
 public:
  virtual Memory initial_memory(int64_t batch) const = 0;
  virtual SegmentOut forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const = 0;
  // False for a memory that always leaves a segment without a graph (a stop-gradient
  // key/value cache): replay then feeds it as a constant and never computes or carries a
  // gradient for it, which the previous segment would only drop. Replay checks the claim.
  virtual bool memory_takes_gradient(const std::string& /*name*/) const { return true; }
};

}  // namespace mnemo::arch
