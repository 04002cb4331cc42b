#include "experiments/trainer.h"

#include <cmath>

#include "autograd/ops/ops.h"
#include "common/random_hash.h"
#include "experiments/on_device.h"

namespace mnemo::experiments {

Trainer::Trainer(const arch::SegmentModel& model, data::BatchSource& source, AdamW& opt, TrainerOptions opts,
                 Communicator& comm)
    : model_(model), source_(source), opt_(opt), opts_(opts), comm_(comm) {
  MNEMO_CHECK(opts_.grad_accum >= 1, "[trainer] grad_accum must be >= 1, got " << opts_.grad_accum);
  if (comm_.size() > 1) sync_ = std::make_unique<GradientSync>(comm_, opt_.params());
}

data::Batch Trainer::next_rows(std::vector<int64_t>& whole_counts) {
  data::Batch whole = source_.next();
  // Pinned once, where the batch is first in hand: every copy of its data to the device
  // (each forward's tokens, each loss's targets, replayed segments too) is then asynchronous.
  if (device_of(model_) == Device::cuda) whole = pinned_batch(whole);
  if (comm_.size() == 1) return whole;
  whole_counts = counted_tokens(whole);
  return local_rows(whole, comm_);
}

BpttOptions Trainer::shard_of(BpttOptions o, int64_t counted) const {
  if (comm_.size() > 1) o.batch_tokens = counted, o.shards = comm_.size(), o.shard = comm_.rank();
  return o;
}

BpttOptions Trainer::last_batch(BpttOptions o) const {
  if (sync_) o.on_last_grad = [sync = sync_.get()](const Param& p) { sync->ready(p); };
  return o;
}

void Trainer::sum_gradients() {
  if (sync_) sync_->finish();
}

// With grad_accum A > 1 a step draws A batches and runs them side by side as micro-batches,
// each with its own memory: every segment's update adds (segment loss + aux) / A of each,
// as the Compressive and Memory Transformer-XL reference scripts step (one update per
// segment at the last micro-batch). That order needs every batch to start from the initial
// memory (random crops, synthetic tasks, stateless streams): consecutive batches of stateful
// streams continue each other, so segment 0 of batch i + 1 would need what batch i's last
// segment leaves. Load refuses that combination; the trainer checks it on every batch.
StepMetrics Trainer::step_per_segment() {
  MNEMO_CHECK(opts_.bptt.mode == BpttMode::truncated && opts_.bptt.window <= 1,
              "[trainer] an update per segment needs truncated BPTT with window 1");
  const int64_t A = opts_.grad_accum;
  StepMetrics m;
  const std::vector<Param*> params = opt_.params();
  std::vector<data::Batch> batches;
  std::vector<std::vector<int64_t>> counts(static_cast<size_t>(A));  // per batch and segment, of the whole batch
  for (int64_t i = 0; i < A; ++i) {
    batches.push_back(next_rows(counts[size_t(i)]));
    data::Batch& b = batches.back();
    MNEMO_CHECK(A == 1 || b.reset_memory || !opts_.stateful,  // whatever was carried so far
                "[trainer] an update per segment with grad_accum " << A << " needs batches that start from the "
                "initial memory (stateful streams continue the previous batch)");
    MNEMO_CHECK(b.segments() == batches[0].segments(), "[trainer] accumulated batches differ in segments");
    b.reset_memory = starts_fresh(b.reset_memory, opts_.stateful, memory_);
  }
  const int64_t S = batches[0].segments();
  std::vector<arch::Memory> memories{size_t(A)};  // each micro-batch's own
  memories[0] = std::move(memory_);
  for (int64_t s = 0; s < S; ++s) {
    std::vector<arch::Memory> next{size_t(A)};
    std::vector<double> segment(3, 0.0);  // summed loss, aux loss, counted tokens (over processes)
    for (int64_t i = 0; i < A; ++i) {
      const data::Batch& batch = batches[size_t(i)];
      data::Batch one;  // segment s alone
      one.inputs = {batch.inputs[size_t(s)]};
      one.targets = {batch.targets[size_t(s)]};
      if (!batch.loss_mask.empty()) one.loss_mask = {batch.loss_mask[size_t(s)]};
      // within a batch memory always carries; it is empty after a skipped segment
      one.reset_memory = starts_fresh(s == 0 && batch.reset_memory, /*stateful=*/true, memories[size_t(i)]);
      BpttOptions b = shard_of(i + 1 == A ? last_batch(opts_.bptt) : opts_.bptt,
                               counts[size_t(i)].empty() ? 0 : counts[size_t(i)][size_t(s)]);
      b.loss_scale = opts_.bptt.loss_scale / double(A);
      b.seed = mix64(opts_.seed ^ mix64(uint64_t((steps_ * A + i) * S + s) + 1));  // A = 1: steps_ * S + s
      BpttResult r = train_batch(model_, one, memories[size_t(i)], b);
      const int64_t counted = b.batch_tokens > 0 ? b.batch_tokens : r.tokens;
      segment[0] += r.loss * double(counted);  // token-weighted, as one batch's loss would be
      segment[1] += r.aux_loss / double(S * A * comm_.size());
      segment[2] += double(r.tokens);
      next[size_t(i)] = std::move(r.memory);
    }
    sum_gradients();
    comm_.sum(segment, "summing the segment's losses");
    m.loss += segment[0], m.aux_loss += segment[1], m.tokens += int64_t(segment[2]);
    const bool finite = std::isfinite(segment[0]) && std::isfinite(segment[1]);
    const double norm = clip_grad_norm(params, opts_.clip);
    const double lr = opts_.schedule ? opts_.schedule->lr_at(opt_.steps()) : opt_.lr();
    m.grad_norm += norm / double(S);
    m.lr = lr;
    if (finite && std::isfinite(norm)) {
      memories = std::move(next);
      opt_.set_lr(lr);
      opt_.step();
    } else {  // not applied; a NaN memory would poison every later segment, so start afresh
      for (arch::Memory& mem : memories) mem.clear();
      m.skipped = true;
      ++m.skipped_updates, ++skipped_updates_;
    }
    opt_.zero_grad();
  }
  memory_ = std::move(memories[size_t(A - 1)]);  // the last batch's, as the batch-mode step keeps
  m.loss = m.tokens > 0 ? m.loss / double(m.tokens) : 0.0;
  m.step = ++steps_;
  return m;
}

StepMetrics Trainer::step() {
  if (opts_.step_every_segment) return step_per_segment();
  StepMetrics m;
  const std::vector<Param*> params = opt_.params();
  for (int64_t i = 0; i < opts_.grad_accum; ++i) {
    std::vector<int64_t> counts;
    data::Batch batch = next_rows(counts);
    batch.reset_memory = starts_fresh(batch.reset_memory, opts_.stateful, memory_);
    int64_t counted = 0;
    for (int64_t n : counts) counted += n;
    BpttOptions b = shard_of(i + 1 == opts_.grad_accum ? last_batch(opts_.bptt) : opts_.bptt, counted);
    b.loss_scale = opts_.bptt.loss_scale / double(opts_.grad_accum);
    b.seed = mix64(opts_.seed ^ mix64(uint64_t(steps_ * opts_.grad_accum + i) + 1));
    BpttResult r = train_batch(model_, batch, memory_, b);
    m.loss += r.loss / double(opts_.grad_accum);
    m.aux_loss += r.aux_loss / double(opts_.grad_accum * comm_.size());
    m.tokens += r.tokens;
    memory_ = std::move(r.memory);  // detached: no tape of this step outlives train_batch
  }
  sum_gradients();
  if (comm_.size() > 1) {  // each process's loss is its share of the whole batch's
    std::vector<double> sums{m.loss, m.aux_loss, double(m.tokens)};
    comm_.sum(sums, "summing the step's losses");
    m.loss = sums[0], m.aux_loss = sums[1], m.tokens = int64_t(sums[2]);
  }
  m.grad_norm = clip_grad_norm(params, opts_.clip);
  m.lr = opts_.schedule ? opts_.schedule->lr_at(steps_) : opt_.lr();
  m.skipped = !std::isfinite(m.loss) || !std::isfinite(m.aux_loss) || !std::isfinite(m.grad_norm);
  if (!m.skipped) {
    opt_.set_lr(m.lr);
    opt_.step();
  } else {  // not applied; a NaN memory would poison every later batch, so start afresh
    memory_.clear();
    m.skipped_updates = 1, ++skipped_updates_;
  }
  opt_.zero_grad();
  m.step = ++steps_;
  return m;
}

}  // namespace mnemo::experiments
