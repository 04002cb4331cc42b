// Backpropagation through time over the segments of one batch, in three modes:
//   truncated(k): one tape per window of k segments; memory enters each window as a
//                 constant, so gradients stop at window edges (k = 1 is Transformer-XL's).
//   full:         one tape for all S segments.
//   replay:       memory-replay backprop: a no-record pass over segments 1..S-1 keeps only
//                 the memory entering each segment; then segments run last to first, each
//                 on its own tape, seeded by its loss and by the gradient of the memory it
//                 produced (the last segment runs taped only: S-1 + S forwards, not 2S).
//                 Activation memory stays one segment's; gradients equal `full`.
//                 With a window of k segments the memory gradient is dropped where a
//                 window starts (segments k, 2k, ..., entered by a constant), so gradients
//                 equal truncated(k)'s: the RMT reference's `truncate_at_step` under
//                 `memory_replay_backprop`, cut at the same edges as its plain path.
//                 With replay_recompute there is no pass ahead; the sweep back splits
//                 [lo, hi): re-run [lo, mid) without a tape to get the memory at mid,
//                 do [mid, hi), drop it, then [lo, mid), with at most
//                 replay_snapshots memories alive at once besides the first, whatever S,
//                 and the fewest re-run forwards that allows (experiments/replay_schedule.h).
// The loss is the mean over every counted token of the batch (a masked task counts only its
// answers, wherever they fall), plus the aux losses averaged over segments.
// Gradients are added into the model's Param::grad; the caller steps the optimizer after
// this returns, when no tape that used the old weights is alive.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "architectures/segment_model.h"
#include "data/streams.h"
#include "experiments/config.h"  // BpttMode

namespace mnemo::experiments {

struct BpttOptions {
  BpttMode mode = BpttMode::truncated;
  // Segments per tape in truncated mode (0 there means 1); in replay mode the truncation
  // window (0, or k >= the batch's segments, cuts nothing: gradients equal `full`).
  int64_t window = 0;
  bool replay_recompute = false;  // replay: recompute entering memories instead of keeping S
  int64_t replay_snapshots = 3;   // with replay_recompute: most memories alive at once
  double loss_scale = 1.0;   // e.g. 1 / gradient-accumulation steps
  uint64_t seed = 0;         // tape seeds derive from it, per segment: replay draws the same dropout
  // Structured memory dropout: glob over memory names -> probability that the memory enters
  // a segment as its initial value (an empty cache, a fresh state) instead of the carried
  // one. Drawn per segment from `seed`, so replay drops exactly what the forward pass did.
  std::map<std::string, double> memory_dropout = {};
  // Data-parallel training (experiments/distributed.h): the batch is one process's rows of a
  // batch of `shards` times as many, whose counted tokens are `batch_tokens` (0: this batch's
  // own). Segment losses are weighted by the whole batch's count and aux losses by 1/shards,
  // so the gradients summed over processes and the losses (BpttResult::loss, a share then)
  // summed over processes are the whole batch's.
  int64_t batch_tokens = 0;
  int64_t shards = 1;
  int64_t shard = 0;  // this process's index: its dropout masks are its own (memory dropout is shared)
  // Called with each parameter as the last tape's backward finishes its gradient.
  std::function<void(const Param&)> on_last_grad = {};
  // The GEMMs of the batch's forwards and backwards in bf16 with f32 accumulation
  // (train.precision: bf16); the previous precision comes back when train_batch returns.
  bool bf16 = false;
};

struct BpttResult {
  double loss = 0;           // mean loss over the batch's counted tokens (without aux; a share under shards)
  double aux_loss = 0;
  int64_t tokens = 0;        // tokens that counted
  arch::Memory memory;       // leaving the last segment, detached
};

// Whether a batch starts from the model's initial memory rather than the one carried from
// the previous batch of the same streams: the data restarts its streams (Batch::reset_memory),
// training is not stateful, or nothing was carried yet. The one place this is decided: the
// trainer and evaluation ask it, train_batch and evaluate apply the answer.
bool starts_fresh(bool data_restarts, bool stateful, const arch::Memory& carried);

// Runs the batch from `memory`, or from the initial memory when batch.reset_memory is set.
BpttResult train_batch(const arch::SegmentModel& model, const data::Batch& batch, arch::Memory memory,
                       const BpttOptions& opts);

// The memories dropped before segment `s` under `o` (names of `memory` matched by the globs).
std::vector<std::string> dropped_memories(const arch::Memory& memory, const BpttOptions& o, int64_t s);

// Targets with the masked positions set to the cross-entropy ignore index.
Tensor masked_targets(const data::Batch& batch, int64_t segment);
inline constexpr int32_t kIgnoreIndex = -100;

}  // namespace mnemo::experiments
