#include "experiments/generate.h"

#include <cstdio>

#include "autograd/ops/ops.h"
#include "layers/sampling.h"

namespace mnemo::experiments {
namespace {

struct Step {
  Tensor last_logits;   // (1, V) at the segment's last position
  arch::Memory memory;  // after the segment
};

Step run(const arch::SegmentModel& model, const std::vector<int32_t>& seg, const arch::Memory& memory) {
  Tape tape;
  Tape::NoRecord no_record(tape);
  const int64_t n = int64_t(seg.size());
  arch::SegmentOut out = model.forward(tape, Tensor::from_ints({1, n}, seg), arch::constants(tape, memory));
  Step s;
  const Var logits = out.logits;                                       // (1, n, V)
  s.last_logits = reshape(slice(logits, 1, n - 1, 1), {1, logits.dim(2)}).value();
  s.memory = arch::values(out.memory);
  return s;
}

int32_t sample(const Tensor& logits, const GenerateOptions& o, Rng& rng) {
  if (o.temperature <= 0) return nn::argmax_sample(logits).data<int32_t>()[0];
  Tensor l = logits;
  const int64_t V = logits.dim(1);
  if (o.top_k > 0 && o.top_k < V)  // ceil((1 - thres) V) = k exactly
    l = nn::top_k_filter(l, 1.0 - (double(o.top_k) - 0.5) / double(V), nn::TopKRounding::ceil);
  return nn::multinomial_sample(l, o.temperature, rng).data<int32_t>()[0];
}

}  // namespace

std::vector<int32_t> generate(const arch::SegmentModel& model, int64_t seg_len, const std::vector<int32_t>& prompt,
                              const GenerateOptions& o) {
  MNEMO_CHECK(seg_len > 0 && o.length >= 0, "[generate] seg_len must be > 0 and length >= 0");
  Rng rng(o.seed);
  arch::Memory memory = model.initial_memory(1);
  std::vector<int32_t> seg;  // the current, partial segment
  Tensor next_logits;
  auto push = [&](int32_t token) {
    seg.push_back(token);
    if (int64_t(seg.size()) == seg_len) {  // full: commit its memory
      Step s = run(model, seg, memory);
      memory = std::move(s.memory);
      next_logits = s.last_logits;
      seg.clear();
    } else {
      next_logits = Tensor();  // computed lazily, only when a token is sampled next
    }
  };
  for (int32_t t : prompt.empty() ? std::vector<int32_t>{'\n'} : prompt) push(t);
  std::vector<int32_t> out;
  while (int64_t(out.size()) < o.length) {
    if (!next_logits.defined()) next_logits = run(model, seg, memory).last_logits;
    const int32_t t = sample(next_logits, o, rng);
    out.push_back(t);
    push(t);
  }
  return out;
}

std::string printable(const std::vector<int32_t>& tokens) {
  std::string s;
  for (int32_t t : tokens) {
    if ((t >= 32 && t < 127) || t == '\n' || t == '\t') {
      s += char(t);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", unsigned(t) & 0xffu);
      s += buf;
    }
  }
  return s;
}

}  // namespace mnemo::experiments
