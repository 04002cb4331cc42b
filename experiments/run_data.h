// The data a run trains and evaluates on, built from its DataConfig: a training BatchSource
// (contiguous stateful streams, random crops, or a synthetic task) and a fixed list of
// held-out batches walked in order with memory carried (the same list at every evaluation).
#pragma once

#include <memory>
#include <vector>

#include "data/streams.h"
#include "data/synthetic.h"
#include "experiments/config.h"

namespace mnemo::experiments {

struct RunData {
  std::unique_ptr<data::BatchSource> train;
  std::vector<data::Batch> eval;
  bool synthetic = false;          // eval reports answer accuracy rather than bits per byte
  int64_t tokens_per_batch = 0;    // B * S * T inputs fed per training batch
};

// Synthetic tasks: training draws from cfg.seed, evaluation from a different seed, so the
// held-out sequences are never trained on. Text and enwik8: the train split for training,
// the validation split (the first eval.batches batches, 0 = all of it) for evaluation.
RunData make_run_data(const ExperimentConfig& cfg);
data::SyntheticConfig synthetic_config(const ExperimentConfig& cfg, uint64_t seed);

}  // namespace mnemo::experiments
