// A training run: the loop a researcher watches. It builds the model, data and optimizer
// from a resolved config and writes everything into one folder:
//   config.yaml      the resolved config (`mnemo train --resume DIR` reads it back)
//   metrics.jsonl    one JSON object per evaluation: step, losses, bits per byte, accuracy
//   train.jsonl      one JSON object per log interval: loss, aux loss, grad norm, lr, tokens/s
//   log.txt          the progress lines and messages, as printed
//   samples.txt      generation samples (eval.generate_every)
//   checkpoints/last.safetensors   weights, AdamW state, data cursor, memory, step (atomic)
//   summary.json     final and best metrics, tokens/s, wall time (written at the end)
// Resuming restores the checkpoint and drops metric rows past its step, so a run that is
// killed and resumed continues bit for bit (at a fixed thread count).
#pragma once

#include <cstdint>
#include <string>

#include "experiments/config.h"
#include "experiments/evaluate.h"
#include "experiments/trainer.h"

namespace mnemo::experiments {

struct RunOptions {
  std::string dir = {};        // the run folder; default_run_dir(cfg) when empty
  bool resume = false;         // continue from dir/checkpoints/last.safetensors
  int64_t stop_after = 0;      // > 0: checkpoint and stop once this many steps are done
  bool progress = true;        // the live progress line on stderr
};

struct RunResult {
  std::string dir;
  int64_t steps = 0;
  EvalResult final_eval, best_eval;   // best = lowest validation loss
  int64_t best_step = 0;
  double tokens_per_s = 0;            // training tokens over training time (evaluation excluded)
  double train_seconds = 0;           // inside Trainer::step
  double loop_seconds = 0;            // the whole loop without evaluation and generation
  double checkpoint_seconds = 0;      // of which writing checkpoints
  int64_t checkpoints = 0;
  bool finished = false;              // reached train.steps (not stopped early)
};

std::string default_run_dir(const ExperimentConfig& cfg);  // runs/<name>
RunResult train_run(const ExperimentConfig& cfg, const RunOptions& opts);

// Reads a run folder's config.yaml (for --resume, eval and generate on a run).
ExperimentConfig load_run_config(const std::string& dir);
std::string checkpoint_path(const std::string& dir);  // dir/checkpoints/last.safetensors

// Resident and peak resident memory of this process, in bytes (Linux /proc, getrusage).
int64_t resident_bytes();
int64_t peak_resident_bytes();

}  // namespace mnemo::experiments
