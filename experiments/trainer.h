// The training step and evaluation over any SegmentModel and BatchSource. One step is
// `grad_accum` batches of BPTT (experiments/bptt.h) whose gradients add up, then global-norm
// clipping, the scheduled learning rate and one AdamW update, taken only after every tape
// of the step is gone. Memory carries from batch to batch when training is stateful.
// With step_every_segment a step is grad_accum batches run side by side (each from the
// initial memory, with its own memory after) whose S segments each get their own tapes,
// backward and one update over all of them (memory detached between segments), the
// schedule indexed by updates.
// Data-parallel (experiments/distributed.h): every process draws the same batches and trains on
// its own rows with its own memory; the gradients and the step's figures are summed over the
// processes before clipping, so every process takes the same update.
// Evaluation is experiments/evaluate.h.
#pragma once

#include <optional>
#include <vector>

#include "autograd/optim/adamw.h"
#include "autograd/optim/schedule.h"
#include "experiments/bptt.h"
#include "experiments/distributed.h"

namespace mnemo::experiments {

struct TrainerOptions {
  BpttOptions bptt = {};
  int64_t grad_accum = 1;
  double clip = 1.0;        // <= 0: measure the norm only
  // lr per step (its base_lr replaces the optimizer's); none: the optimizer's lr throughout
  std::optional<Schedule> schedule = std::nullopt;
  bool stateful = true;     // carry memory across batches of the same streams
  bool step_every_segment = false;  // an update after every segment (TrXL-style streaming)
  uint64_t seed = 0;        // tape seeds (dropout) derive from it and the step
};

struct StepMetrics {
  int64_t step = 0;         // optimizer steps taken, this one included
  double loss = 0, aux_loss = 0, grad_norm = 0, lr = 0;  // per-segment updates: means over them
  int64_t tokens = 0;
  // A non-finite loss or gradient norm: that update was not applied (gradients dropped, and
  // the carried memory too: the next batch or segment starts from the initial memory).
  // With per-segment updates, skipped_updates says how many of the S were not applied.
  bool skipped = false;
  int64_t skipped_updates = 0;
};

class Trainer {
 public:
  Trainer(const arch::SegmentModel& model, data::BatchSource& source, AdamW& opt, TrainerOptions opts,
          Communicator& comm = single_process());
  StepMetrics step();

  const arch::Memory& memory() const { return memory_; }
  void set_memory(arch::Memory m) { memory_ = std::move(m); }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s) { steps_ = s; }
  // Updates skipped so far (non-finite loss or gradient); a checkpoint keeps the count.
  int64_t skipped_updates() const { return skipped_updates_; }
  void set_skipped_updates(int64_t n) { skipped_updates_ = n; }
  int64_t updates_per_step(int64_t segments) const { return opts_.step_every_segment ? segments : 1; }
  // Seconds spent waiting for gradient sums after the last backward (0 in one process).
  double sync_wait_seconds() const { return sync_ ? sync_->wait_seconds() : 0.0; }

 private:
  StepMetrics step_per_segment();
  // This process's rows of the next batch, and the whole batch's counted tokens per segment
  // (left empty in one process); shard_of() puts a count into BPTT's options.
  data::Batch next_rows(std::vector<int64_t>& whole_counts);
  BpttOptions shard_of(BpttOptions o, int64_t counted) const;
  BpttOptions last_batch(BpttOptions o) const;  // gradients finished by its last tape start summing
  void sum_gradients();
  const arch::SegmentModel& model_;
  data::BatchSource& source_;
  AdamW& opt_;
  TrainerOptions opts_;
  Communicator& comm_;
  std::unique_ptr<GradientSync> sync_;  // with more than one process
  arch::Memory memory_;
  int64_t steps_ = 0;
  int64_t skipped_updates_ = 0;
};

}  // namespace mnemo::experiments
