#include "experiments/memory_estimate.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "autograd/error.h"

namespace mnemo::experiments {

MemoryEstimate training_memory_lower_bound(const ExperimentConfig& cfg) {
  const double V = double(cfg.model.vocab), D = double(cfg.model.dim), L = double(cfg.model.depth);
  const double B = double(cfg.data.batch_size), T = double(cfg.data.segment_len), S = double(cfg.data.segments);
  MemoryEstimate e;
  // Every architecture has a token embedding (V x D) and, per layer, at least the four
  // attention projections (4 D^2); feed-forward, output head and memory parameters only add.
  e.params = V * D + L * 4 * D * D;
  // Segments alive on one tape: a window under truncated BPTT, all of them under full BPTT,
  // one under replay (the other segments' activations are recomputed).
  const double on_tape = cfg.train.bptt == BpttMode::full      ? S
                         : cfg.train.bptt == BpttMode::truncated ? double(cfg.train.window)
                                                                 : 1.0;
  const double activations = B * T * D * L * on_tape;  // each layer's input, at least
  e.bytes = 4.0 * (4 * e.params + activations);        // f32: weights, gradients, two AdamW moments
  return e;
}

int64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return -1;
}

void check_memory_fits(const ExperimentConfig& cfg, int64_t available) {
  if (available < 0) return;
  if (const char* skip = std::getenv("MNEMO_SKIP_MEMORY_CHECK"); skip && std::strcmp(skip, "1") == 0) return;
  const MemoryEstimate e = training_memory_lower_bound(cfg);
  if (e.bytes <= double(available)) return;
  char msg[512];
  std::snprintf(msg, sizeof msg,
                "[run] training model.%s (at least %.3g parameters) needs at least %.1f GiB, %.1f GiB available: "
                "reduce model.dim, model.depth, model.vocab or data.batch_size * data.segment_len "
                "(MNEMO_SKIP_MEMORY_CHECK=1 skips this check)",
                cfg.model.arch.c_str(), e.params, e.bytes / double(1 << 30), double(available) / double(1 << 30));
  MNEMO_FAIL(msg);
}

}  // namespace mnemo::experiments
