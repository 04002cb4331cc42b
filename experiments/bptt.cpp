#include "experiments/bptt.h"

#include "autograd/ops/ops.h"
#include "kernels/random_hash.h"

namespace mnemo::experiments {
namespace {

using arch::Memory;
using arch::MemoryVars;

uint64_t segment_seed(uint64_t seed, int64_t s) { return kernels::mix64(seed * 0x9e3779b97f4a7c15ULL + uint64_t(s)); }

MemoryVars as_constants(Tape& tape, const Memory& m) {
  MemoryVars v;
  for (const auto& [name, t] : m) v.emplace(name, tape.constant(t));
  return v;
}

Memory values(const MemoryVars& m) {
  Memory out;
  for (const auto& [name, v] : m) out.emplace(name, v.value());
  return out;
}

// One segment's contribution to the objective: its mean token loss weighted 1/S, plus aux.
struct SegmentLoss {
  Var objective;  // scalar Var to seed with 1
  double loss = 0, aux = 0;
  int64_t tokens = 0;
  MemoryVars memory;
};

SegmentLoss run_segment(const arch::SegmentModel& model, Tape& tape, const data::Batch& batch, int64_t s,
                        const MemoryVars& in, double weight) {
  arch::SegmentOut out = model.forward(tape, batch.inputs[size_t(s)], in);
  const Tensor targets = masked_targets(batch, s);
  SegmentLoss r;
  for (int64_t i = 0; i < targets.numel(); ++i) r.tokens += targets.data<int32_t>()[i] != kIgnoreIndex;
  Var ce = cross_entropy(out.logits, targets, kIgnoreIndex);
  r.loss = ce.value().item();
  r.objective = ce * weight;
  if (out.aux_loss.defined()) {
    r.aux = out.aux_loss.value().item();
    r.objective = r.objective + out.aux_loss * weight;
  }
  r.memory = std::move(out.memory);
  return r;
}

void check_memory(const Memory& expected, const MemoryVars& got) {
  MNEMO_CHECK(got.size() == expected.size(), "[bptt] the model returned " << got.size() << " memories, expected "
                                                                          << expected.size());
  for (const auto& [name, t] : expected) {
    auto it = got.find(name);
    MNEMO_CHECK(it != got.end(), "[bptt] the model did not return memory '" << name << "'");
    // Memories may grow (an XL memory fills up to mem_len) but keep their rank and batch.
    MNEMO_CHECK(it->second.rank() == t.rank() && (t.rank() == 0 || it->second.dim(0) == t.dim(0)),
                "[bptt] memory '" << name << "' changed from " << t.shape() << " to " << it->second.shape()
                                  << " (its rank and batch size must stay)");
  }
}

BpttResult windows(const arch::SegmentModel& model, const data::Batch& batch, Memory mem, const BpttOptions& o,
                   int64_t k) {
  const int64_t S = batch.segments();
  const double w = o.loss_scale / double(S);
  BpttResult res;
  for (int64_t s0 = 0; s0 < S; s0 += k) {
    Tape tape;  // memory from the previous window is data: the gradient stops here
    MemoryVars cur = as_constants(tape, mem);
    Var objective;
    for (int64_t s = s0; s < std::min(S, s0 + k); ++s) {
      tape.set_seed(segment_seed(o.seed, s));  // the same draws as a replayed segment
      SegmentLoss l = run_segment(model, tape, batch, s, cur, w);
      check_memory(mem, l.memory);
      objective = objective.defined() ? objective + l.objective : l.objective;
      res.loss += l.loss / double(S);
      res.aux_loss += l.aux / double(S);
      res.tokens += l.tokens;
      cur = std::move(l.memory);
    }
    tape.backward(objective);
    mem = values(cur);
  }
  res.memory = std::move(mem);
  return res;
}

BpttResult replay(const arch::SegmentModel& model, const data::Batch& batch, Memory mem, const BpttOptions& o) {
  const int64_t S = batch.segments();
  const double w = o.loss_scale / double(S);
  std::vector<Memory> entering;  // memory entering each segment; nothing else is kept
  BpttResult res;
  for (int64_t s = 0; s < S; ++s) {
    entering.push_back(mem);
    Tape tape;
    tape.set_seed(segment_seed(o.seed, s));
    Tape::NoRecord no_record(tape);
    SegmentLoss l = run_segment(model, tape, batch, s, as_constants(tape, mem), w);
    check_memory(mem, l.memory);
    res.loss += l.loss / double(S);
    res.aux_loss += l.aux / double(S);
    res.tokens += l.tokens;
    mem = values(l.memory);
  }
  res.memory = mem;
  Memory grad_out;  // d objective / d memory leaving segment s, from segment s + 1
  for (int64_t s = S - 1; s >= 0; --s) {
    Tape tape;
    tape.set_seed(segment_seed(o.seed, s));
    MemoryVars in;
    for (const auto& [name, t] : entering[size_t(s)]) in.emplace(name, tape.input(t));
    SegmentLoss l = run_segment(model, tape, batch, s, in, w);
    std::vector<Var> roots{l.objective};
    std::vector<Tensor> seeds{Tensor::full(Shape{}, 1.0, l.objective.dtype())};
    for (const auto& [name, g] : grad_out) {
      roots.push_back(l.memory.at(name));
      seeds.push_back(g);
    }
    tape.backward(roots, seeds);
    grad_out.clear();
    for (const auto& [name, v] : in) {
      const Tensor& g = tape.grad(v);
      if (g.defined()) grad_out.emplace(name, g);
    }
  }
  return res;
}

}  // namespace

BpttMode parse_bptt_mode(const std::string& s) {
  if (s == "truncated") return BpttMode::truncated;
  if (s == "full") return BpttMode::full;
  if (s == "replay") return BpttMode::replay;
  MNEMO_FAIL("[bptt] unknown mode '" << s << "' (truncated, full or replay)");
}

Tensor masked_targets(const data::Batch& batch, int64_t s) {
  const Tensor& t = batch.targets[size_t(s)];
  if (batch.loss_mask.empty() || !batch.loss_mask[size_t(s)].defined()) return t;
  Tensor out = t.clone();
  const uint8_t* m = batch.loss_mask[size_t(s)].data<uint8_t>();
  int32_t* p = out.data<int32_t>();
  for (int64_t i = 0; i < out.numel(); ++i)
    if (!m[i]) p[i] = kIgnoreIndex;
  return out;
}

BpttResult train_batch(const arch::SegmentModel& model, const data::Batch& batch, Memory memory, const BpttOptions& o) {
  MNEMO_CHECK(batch.segments() > 0, "[bptt] empty batch");
  MNEMO_CHECK(o.window >= 1, "[bptt] window must be >= 1, got " << o.window);
  if (batch.reset_memory) memory = model.initial_memory(batch.batch_size());
  switch (o.mode) {
    case BpttMode::truncated: return windows(model, batch, std::move(memory), o, o.window);
    case BpttMode::full: return windows(model, batch, std::move(memory), o, batch.segments());
    case BpttMode::replay: return replay(model, batch, std::move(memory), o);
  }
  return {};
}

}  // namespace mnemo::experiments
