// Before a run allocates anything: a lower bound on the memory its training needs (weights,
// gradients and AdamW's two moments in f32; each layer's input kept for the backward of
// every segment on one tape), refused when the machine's available memory cannot hold even
// that. A lower bound, so that a run which would fit is never refused: a config with a huge
// but valid size ends as a clear message instead of an allocation failure deep inside a
// layer. MNEMO_SKIP_MEMORY_CHECK=1 skips the check (say, to rely on swap).
#pragma once

#include <cstdint>

#include "experiments/config.h"

namespace mnemo::experiments {

struct MemoryEstimate {
  double params = 0;             // at least this many parameters
  double bytes = 0;              // at least this many bytes to train
};

MemoryEstimate training_memory_lower_bound(const ExperimentConfig& cfg);
// MemAvailable of /proc/meminfo in bytes; -1 where it cannot be read.
int64_t available_memory_bytes();
// Throws "[run] training model.<arch> needs at least X GiB, Y GiB available ..." when the
// lower bound exceeds `available` (-1: unknown, no check), unless MNEMO_SKIP_MEMORY_CHECK=1.
void check_memory_fits(const ExperimentConfig& cfg, int64_t available);

}  // namespace mnemo::experiments
