#include "experiments/trainer.h"

#include <cmath>

#include "autograd/ops/ops.h"
#include "common/random_hash.h"

namespace mnemo::experiments {

Trainer::Trainer(const arch::SegmentModel& model, data::BatchSource& source, AdamW& opt, TrainerOptions opts)
    : model_(model), source_(source), opt_(opt), opts_(opts) {
  MNEMO_CHECK(opts_.grad_accum >= 1, "[trainer] grad_accum must be >= 1, got " << opts_.grad_accum);
}

StepMetrics Trainer::step_per_segment() {
  MNEMO_CHECK(opts_.grad_accum == 1 && opts_.bptt.mode == BpttMode::truncated && opts_.bptt.window <= 1,
              "[trainer] an update per segment needs truncated BPTT with window 1 and grad_accum 1");
  StepMetrics m;
  const std::vector<Param*> params = opt_.params();
  data::Batch batch = source_.next();
  batch.reset_memory = starts_fresh(batch.reset_memory, opts_.stateful, memory_);
  const int64_t S = batch.segments();
  for (int64_t s = 0; s < S; ++s) {
    data::Batch one;  // segment s alone
    one.inputs = {batch.inputs[size_t(s)]};
    one.targets = {batch.targets[size_t(s)]};
    if (!batch.loss_mask.empty()) one.loss_mask = {batch.loss_mask[size_t(s)]};
    // within a batch memory always carries; it is empty after a skipped segment
    one.reset_memory = starts_fresh(s == 0 && batch.reset_memory, /*stateful=*/true, memory_);
    BpttOptions b = opts_.bptt;
    b.seed = mix64(opts_.seed ^ mix64(uint64_t(steps_ * S + s) + 1));
    BpttResult r = train_batch(model_, one, memory_, b);
    m.loss += r.loss * double(r.tokens);  // token-weighted, as one batch's loss would be
    m.aux_loss += r.aux_loss / double(S);
    m.tokens += r.tokens;
    const double norm = clip_grad_norm(params, opts_.clip);
    const double lr = opts_.schedule ? opts_.schedule->lr_at(opt_.steps()) : opt_.lr();
    m.grad_norm += norm / double(S);
    m.lr = lr;
    if (std::isfinite(r.loss) && std::isfinite(r.aux_loss) && std::isfinite(norm)) {
      memory_ = std::move(r.memory);
      opt_.set_lr(lr);
      opt_.step();
    } else {  // not applied; a NaN memory would poison every later segment, so start afresh
      memory_.clear();
      m.skipped = true;
      ++m.skipped_updates, ++skipped_updates_;
    }
    opt_.zero_grad();
  }
  m.loss = m.tokens > 0 ? m.loss / double(m.tokens) : 0.0;
  m.step = ++steps_;
  return m;
}

StepMetrics Trainer::step() {
  if (opts_.step_every_segment) return step_per_segment();
  StepMetrics m;
  const std::vector<Param*> params = opt_.params();
  for (int64_t i = 0; i < opts_.grad_accum; ++i) {
    data::Batch batch = source_.next();
    batch.reset_memory = starts_fresh(batch.reset_memory, opts_.stateful, memory_);
    BpttOptions b = opts_.bptt;
    b.loss_scale = opts_.bptt.loss_scale / double(opts_.grad_accum);
    b.seed = mix64(opts_.seed ^ mix64(uint64_t(steps_ * opts_.grad_accum + i) + 1));
    BpttResult r = train_batch(model_, batch, memory_, b);
    m.loss += r.loss / double(opts_.grad_accum);
    m.aux_loss += r.aux_loss / double(opts_.grad_accum);
    m.tokens += r.tokens;
    memory_ = std::move(r.memory);  // detached: no tape of this step outlives train_batch
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
