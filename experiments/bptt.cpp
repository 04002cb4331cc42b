#include "experiments/bptt.h"

#include <algorithm>

#include "autograd/ops/ops.h"
#include "autograd/optim/optimizer.h"
#include "experiments/on_device.h"
#include "experiments/replay_schedule.h"
#include "common/random_hash.h"
#include "kernels/precision.h"

namespace mnemo::experiments {
namespace {

using arch::Memory;
using arch::MemoryVars;

uint64_t segment_seed(uint64_t seed, int64_t s) { return mix64(seed * 0x9e3779b97f4a7c15ULL + uint64_t(s)); }

// The seed of segment s's tape (dropout masks). Each process of a data-parallel run draws its
// own: with the same seed, rows r and r + B/N would drop the same units. Memory dropout keeps
// segment_seed, so every process drops the same memories, as one process would.
uint64_t tape_seed(const BpttOptions& o, int64_t s) {
  const uint64_t seed = segment_seed(o.seed, s);
  return o.shard == 0 ? seed : mix64(seed ^ mix64(uint64_t(o.shard) * 0xc2b2ae3d27d4eb4fULL));
}

using arch::values;

// How much each segment's mean token loss weighs: its share of the batch's counted tokens,
// so the objective is the mean over every counted token of the batch (a segment without
// answer tokens adds nothing) and aux losses, one per segment, are averaged over segments.
struct Weights {
  std::vector<double> ce;       // per segment
  std::vector<int64_t> counts;  // counted tokens per segment
  double aux = 0;
  int64_t tokens = 0;       // counted tokens in the batch
};

Weights segment_weights(const data::Batch& batch, double scale, const BpttOptions& o) {
  Weights w;
  for (int64_t s = 0; s < batch.segments(); ++s) {
    const Tensor t = masked_targets(batch, s);
    int64_t n = 0;
    for (int64_t i = 0; i < t.numel(); ++i) n += t.data<int32_t>()[i] != kIgnoreIndex;
    w.counts.push_back(n);
    w.tokens += n;
  }
  if (o.batch_tokens > 0) w.tokens = o.batch_tokens;  // a shard: the whole batch's count
  for (int64_t n : w.counts) w.ce.push_back(w.tokens > 0 ? scale * double(n) / double(w.tokens) : 0.0);
  w.aux = scale / double(batch.segments() * o.shards);
  return w;
}

// One segment's contribution to the objective. Its figures stay scalars on the model's
// device until the batch is done (summed()), so the host never waits for a segment.
struct SegmentLoss {
  Var objective;  // scalar Var to seed with 1
  Tensor loss, aux;  // aux undefined when the model has none
  int64_t tokens = 0;
  MemoryVars memory;
};

std::string names_of(const Memory& m) {
  std::string out;
  for (const auto& [name, t] : m) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

// The memory a segment sees after structured memory dropout: a dropped memory enters as a
// constant initial value, so no gradient flows back through it either.
MemoryVars drop_memories(Tape& tape, MemoryVars in, const Memory& initial, const BpttOptions& o, int64_t s) {
  if (o.memory_dropout.empty()) return in;
  Memory names;
  for (const auto& [name, v] : in) names.emplace(name, Tensor());
  for (const std::string& name : dropped_memories(names, o, s)) in[name] = tape.constant(initial.at(name));
  return in;
}

SegmentLoss run_segment(const arch::SegmentModel& model, Tape& tape, const data::Batch& batch, int64_t s,
                        const MemoryVars& memory, const Weights& w, const Memory& initial, const BpttOptions& o) {
  const MemoryVars in = drop_memories(tape, memory, initial, o, s);
  arch::SegmentOut out = model.forward(tape, batch.inputs[size_t(s)], in);
  const Tensor targets = masked_targets(batch, s);
  SegmentLoss r;
  r.tokens = w.counts[size_t(s)];
  Var ce = cross_entropy(out.logits, targets, kIgnoreIndex);
  r.loss = ce.value();
  r.objective = ce * w.ce[size_t(s)];
  if (out.aux_loss.defined()) {
    r.aux = out.aux_loss.value();
    r.objective = r.objective + out.aux_loss * w.aux;
  }
  r.memory = std::move(out.memory);
  return r;
}

// Scalars of one device read back in one copy: what a batch waits for, once.
std::vector<double> read_all(const std::vector<Tensor>& scalars) {
  if (scalars.empty()) return {};
  Tape tape;
  std::vector<Var> parts;
  for (const Tensor& t : scalars) parts.push_back(tape.constant(t.reshape(Shape{1})));
  return concat(parts, 0).value().to_vector();
}

// The batch's loss figures from its segments', summed in segment order in double.
BpttResult summed(const std::vector<SegmentLoss>& segments, const Weights& w) {
  std::vector<Tensor> scalars;  // each segment's loss, then its aux loss where there is one
  for (const SegmentLoss& l : segments) {
    scalars.push_back(l.loss);
    if (l.aux.defined()) scalars.push_back(l.aux);
  }
  const std::vector<double> v = read_all(scalars);
  BpttResult res;
  size_t i = 0;
  for (const SegmentLoss& l : segments) {
    const double loss = v[i++], aux = l.aux.defined() ? v[i++] : 0.0;
    res.loss += w.tokens > 0 ? loss * double(l.tokens) / double(w.tokens) : 0.0;
    res.aux_loss += aux / double(segments.size());
    res.tokens += l.tokens;
  }
  return res;
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
                   int64_t k, const Memory& initial) {
  const int64_t S = batch.segments();
  const Weights w = segment_weights(batch, o.loss_scale, o);
  std::vector<SegmentLoss> figures;  // the objective dropped: the tapes die with their windows
  for (int64_t s0 = 0; s0 < S; s0 += k) {
    Tape tape;  // memory from the previous window is data: the gradient stops here
    if (s0 + k >= S && o.on_last_grad) tape.on_param_grad(o.on_last_grad);
    MemoryVars cur = arch::constants(tape, mem);
    Var objective;
    for (int64_t s = s0; s < std::min(S, s0 + k); ++s) {
      tape.set_seed(tape_seed(o, s));  // the same draws as a replayed segment
      SegmentLoss l = run_segment(model, tape, batch, s, cur, w, initial, o);
      check_memory(mem, l.memory);
      objective = objective.defined() ? objective + l.objective : l.objective;
      cur = std::move(l.memory);
      figures.push_back({Var{}, l.loss, l.aux, l.tokens, {}});
    }
    tape.backward(objective);
    mem = values(cur);
  }
  BpttResult res = summed(figures, w);
  res.memory = std::move(mem);
  return res;
}

// Replay's pieces. `Replay` holds what every segment needs; forward() runs one segment
// without a tape, backward() runs it on a tape seeded by its loss and by the gradient of the
// memory it produced, records its loss (and the batch's final memory, from the last
// segment), and returns the gradient of the memory that entered it. The last segment's loss
// and memory come from its taped run alone: an untaped forward of it would be thrown away.
struct Replay {
  const arch::SegmentModel& model;
  const data::Batch& batch;
  const BpttOptions& o;
  const Memory& initial;
  Weights w;
  std::vector<SegmentLoss> seen = std::vector<SegmentLoss>(size_t(batch.segments()));  // loss figures
  Memory last = {};  // the memory leaving the last segment

  SegmentLoss forward(int64_t s, const Memory& mem) const {
    Tape tape;
    tape.set_seed(tape_seed(o, s));
    Tape::NoRecord no_record(tape);
    SegmentLoss l = run_segment(model, tape, batch, s, arch::constants(tape, mem), w, initial, o);
    check_memory(mem, l.memory);
    return l;
  }

  Memory advance(Memory mem, int64_t lo, int64_t hi) const {
    for (int64_t s = lo; s < hi; ++s) mem = values(forward(s, mem).memory);
    return mem;
  }

  Memory backward(int64_t s, const Memory& entering, const Memory& grad_out) {
    Tape tape;
    tape.set_seed(tape_seed(o, s));
    if (s == 0 && o.on_last_grad) tape.on_param_grad(o.on_last_grad);  // the sweep back ends here
    // A window's first segment takes its memory as data: no gradient goes back past it.
    const bool cut = s == 0 || (o.window > 0 && s % o.window == 0);
    MemoryVars in;
    for (const auto& [name, t] : entering)
      in.emplace(name, model.memory_takes_gradient(name) && !cut ? tape.input(t) : tape.constant(t));
    SegmentLoss l = run_segment(model, tape, batch, s, in, w, initial, o);
    check_memory(entering, l.memory);
    for (const auto& [name, v] : l.memory)
      MNEMO_CHECK(model.memory_takes_gradient(name) || !v.requires_grad(),
                  "[bptt] the model says memory '" << name << "' takes no gradient, but it left segment " << s
                                                   << " with a graph");
    std::vector<Var> roots{l.objective};
    std::vector<Tensor> seeds{Tensor::full(Shape{}, 1.0, l.objective.dtype(), l.objective.value().device())};
    for (const auto& [name, g] : grad_out) {
      roots.push_back(l.memory.at(name));
      seeds.push_back(g);
    }
    tape.backward(roots, seeds);
    Memory grad_in;
    for (const auto& [name, v] : in) {
      if (!v.requires_grad()) continue;  // a constant: memory_takes_gradient said no
      const Tensor& g = tape.grad(v);
      if (g.defined()) grad_in.emplace(name, g);
    }
    if (s + 1 == batch.segments()) last = values(l.memory);
    SegmentLoss& figures = seen[size_t(s)];
    figures.loss = l.loss;
    figures.aux = l.aux;
    figures.tokens = l.tokens;
    return grad_in;
  }

  // Segments [lo, hi) entered with `mem`, seeded by the gradient of the memory leaving hi-1,
  // with at most `slots` more memory-sized buffers alive at once (experiments/replay_schedule.h).
  Memory reverse(const ReplaySchedule& plan, int64_t lo, int64_t hi, const Memory& mem, Memory grad_out,
                 int64_t slots) {
    if (hi - lo == 1) return backward(lo, mem, grad_out);
    const int64_t mid = lo + plan.split(hi - lo, slots, hi < batch.segments());
    Memory g = reverse(plan, mid, hi, advance(mem, lo, mid), std::move(grad_out), slots - 1);  // the memory at mid dies here
    return reverse(plan, lo, mid, mem, std::move(g), slots);
  }

  // Losses summed in segment order, as the windowed modes do.
  BpttResult result() const {
    BpttResult res = summed(seen, w);
    res.memory = last;
    return res;
  }
};

BpttResult replay(const arch::SegmentModel& model, const data::Batch& batch, Memory mem, const BpttOptions& o,
                  const Memory& initial) {
  const int64_t S = batch.segments();
  Replay r{model, batch, o, initial, segment_weights(batch, o.loss_scale, o)};
  if (o.replay_recompute) {
    // No pass ahead: the schedule's re-runs produce every memory the sweep needs.
    r.reverse(ReplaySchedule(S, o.replay_snapshots), 0, S, mem, {}, o.replay_snapshots);
    return r.result();
  }
  std::vector<Memory> entering;  // memory entering each segment
  for (int64_t s = 0; s < S; ++s) {
    entering.push_back(mem);
    if (s + 1 < S) mem = values(r.forward(s, mem).memory);
  }
  Memory grad;  // d objective / d memory leaving segment s, from segment s + 1
  for (int64_t s = S - 1; s >= 0; --s) grad = r.backward(s, entering[size_t(s)], grad);
  return r.result();
}

}  // namespace

std::vector<std::string> dropped_memories(const Memory& memory, const BpttOptions& o, int64_t s) {
  std::vector<std::string> out;
  for (const auto& [name, t] : memory) {
    double keep = 1;  // several globs matching one name drop it independently
    for (const auto& [glob, p] : o.memory_dropout)
      if (glob_match(glob, name)) keep *= 1 - p;
    if (keep >= 1) continue;
    uint64_t h = mix64(segment_seed(o.seed, s) ^ 0xd6e8feb86659fd93ULL);
    for (char c : name) h = mix64(h ^ uint64_t(uint8_t(c)));
    const double u = double(h >> 11) * 0x1.0p-53;  // uniform in [0, 1)
    if (u >= keep) out.push_back(name);
  }
  return out;
}

Tensor masked_targets(const data::Batch& batch, int64_t s) {
  const Tensor& t = batch.targets[size_t(s)];
  if (batch.loss_mask.empty() || !batch.loss_mask[size_t(s)].defined()) return t;
  // A pinned batch's masked targets are pinned too: they are what goes to the device.
  Tensor out = t.is_pinned() ? Tensor::pinned_empty(t.shape(), t.dtype()) : t.empty_like();
  out.copy_from(t);
  const uint8_t* m = batch.loss_mask[size_t(s)].data<uint8_t>();
  int32_t* p = out.data<int32_t>();
  for (int64_t i = 0; i < out.numel(); ++i)
    if (!m[i]) p[i] = kIgnoreIndex;
  return out;
}

bool starts_fresh(bool data_restarts, bool stateful, const Memory& carried) {
  return data_restarts || !stateful || carried.empty();
}

BpttResult train_batch(const arch::SegmentModel& model, const data::Batch& batch, Memory memory, const BpttOptions& o) {
  MNEMO_CHECK(batch.segments() > 0, "[bptt] empty batch");
  const kernels::MatmulPrecisionScope precision(
      o.bf16 ? kernels::MatmulPrecision::bf16 : kernels::MatmulPrecision::f32,
      device_of(model) == Device::cuda ? kernels::GemmDevice::cuda : kernels::GemmDevice::cpu);
  MNEMO_CHECK(o.window >= 0, "[bptt] window must be >= 0, got " << o.window);
  for (const auto& [glob, p] : o.memory_dropout)
    MNEMO_CHECK(p >= 0 && p <= 1, "[bptt] memory_dropout '" << glob << "' must be in [0, 1], got " << p);
  const Memory initial = batch.reset_memory || !o.memory_dropout.empty() ? model.initial_memory(batch.batch_size())
                                                                         : Memory{};
  if (batch.reset_memory) memory = initial;
  for (const auto& [glob, p] : o.memory_dropout) {
    bool any = false;
    for (const auto& [name, t] : memory) any = any || glob_match(glob, name);
    MNEMO_CHECK(any, "[bptt] memory_dropout '" << glob << "' matches no memory of the model (it has: "
                                               << names_of(memory) << ")");
  }
  switch (o.mode) {
    case BpttMode::truncated: return windows(model, batch, std::move(memory), o, std::max<int64_t>(o.window, 1), initial);
    case BpttMode::full: return windows(model, batch, std::move(memory), o, batch.segments(), initial);
    case BpttMode::replay: return replay(model, batch, std::move(memory), o, initial);
  }
  return {};
}

}  // namespace mnemo::experiments
