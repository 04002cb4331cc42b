// Helpers shared by the rmt test files: tiny configs, running segments with memory carried
// between tapes, comparing tensors.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "architectures/rmt.h"
#include "autograd/ops/ops.h"
#include "tests/support/tensor_compare.h"

namespace mnemo::test_rmt {

using arch::Memory;
using arch::MemoryVars;
using arch::constants;
using arch::values;
using test::max_abs;
using test::max_abs_diff;
using arch::RecurrentMemoryTransformer;
using arch::RmtConfig;

inline RmtConfig tiny_config() {
  return {.vocab = 11, .dim = 16, .depth = 2, .heads = 2, .dim_head = 8, .seq_len = 5, .num_memory_tokens = 3,
          .ff_mult = 2, .xl_mem_len = 4, .num_residual_streams = 2};
}

// A model with every parameter nudged off its init, so that zero-initialised paths (the
// hyper-connections' dynamic weights) take part.
inline RecurrentMemoryTransformer nudged(const RmtConfig& c, uint64_t seed = 1, DType dt = DType::f32) {
  nn::Init init(seed, dt);
  RecurrentMemoryTransformer m(init, c);
  Rng rng(seed + 100);
  for (Param* p : nn::params(m)) {
    Tensor noise = Tensor::uniform(p->value.shape(), rng, -0.1, 0.1, dt);
    std::vector<double> a = p->value.to_vector(), b = noise.to_vector();
    for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
    p->value.copy_from(Tensor::from(p->value.shape(), a, dt));
  }
  return m;
}

struct Run {
  std::vector<Tensor> logits;  // per segment
  std::vector<Memory> memory;  // leaving each segment
};

// Evaluates segments in order (nothing recorded), carrying the memory between tapes.
inline Run run(const arch::SegmentModel& m, const std::vector<Tensor>& segments, Memory mem = {}) {
  if (mem.empty()) mem = m.initial_memory(segments.at(0).dim(0));
  Run r;
  for (const Tensor& x : segments) {
    Tape tape;
    Tape::NoRecord no_record(tape);
    arch::SegmentOut o = m.forward(tape, x, constants(tape, mem));
    r.logits.push_back(o.logits.value());
    mem = values(o.memory);
    r.memory.push_back(mem);
  }
  return r;
}

// Columns [start, start + len) of an i32 (B, T) tensor.
inline Tensor columns(const Tensor& t, int64_t start, int64_t len) {
  const auto v = t.to_vector();
  std::vector<int32_t> out;
  for (int64_t b = 0; b < t.dim(0); ++b)
    for (int64_t j = start; j < start + len; ++j) out.push_back(int32_t(v[size_t(b * t.dim(1) + j)]));
  return Tensor::from_ints({t.dim(0), len}, out);
}

inline Tensor random_tokens(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(size_t(B * T));
  for (auto& x : v) x = int32_t(rng.randint(V));
  return Tensor::from_ints({B, T}, v);
}

// logits (B, T, V) at steps [t0, t0 + n), flattened
inline std::vector<double> steps(const Tensor& logits, int64_t t0, int64_t n) {
  std::vector<double> out;
  for (int64_t b = 0; b < logits.dim(0); ++b)
    for (int64_t t = t0; t < t0 + n; ++t)
      for (int64_t v = 0; v < logits.dim(2); ++v) out.push_back(logits.at({b, t, v}));
  return out;
}

}  // namespace mnemo::test_rmt
