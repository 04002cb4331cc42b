// A training run: the loop a researcher watches. It builds the model, data and optimizer
// from a resolved config and writes everything into one folder:
//   config.yaml      the resolved config (`mnemo train --resume DIR` reads it back)
//   metrics.jsonl    one JSON object per evaluation: step, losses, bits per byte, accuracy
//   train.jsonl      one JSON object per log interval: loss, aux loss, grad norm, lr, tokens/s
//   log.txt          the progress lines and messages, as printed
//   samples.txt      generation samples (eval.generate_every)
//   checkpoints/last.safetensors   weights, AdamW state, data cursor, memory, step (atomic)
//   summary.json     final and best metrics, tokens/s, wall time (written at the end)
//   lock             the PID of the process writing the folder (RunFolderLock)
// Resuming restores the checkpoint and drops metric rows past its step, so a run that is
// killed and resumed continues bit for bit (at a fixed thread count).
// A step with a non-finite loss or gradient is never applied (train.on_nonfinite decides
// whether the run stops or skips it); SIGINT and SIGTERM checkpoint and stop the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "experiments/config.h"
#include "experiments/distributed.h"
#include "experiments/evaluate.h"
#include "experiments/trainer.h"

namespace mnemo::experiments {

struct RunOptions {
  std::string dir = {};        // the run folder; default_run_dir(cfg) when empty
  bool resume = false;         // continue from dir/checkpoints/last.safetensors
  int64_t stop_after = 0;      // > 0: checkpoint and stop once this many steps are done
  bool progress = true;        // the live progress line on stderr
  // Called after every step, before the loop decides whether to stop (tests raise signals here).
  std::function<void(int64_t step)> after_step = {};
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
  int interrupted_by = 0;             // SIGINT or SIGTERM when a signal stopped the run (checkpointed)
  int64_t skipped_steps = 0;          // steps not applied under train.on_nonfinite: skip (this process)
};

// An exclusive advisory lock (flock) on DIR/lock, held for the object's lifetime, so that two
// processes never write one run folder: their logs would interleave and their checkpoints
// overwrite each other. The kernel drops it when the process dies however it dies (kill -9
// too), so a stale lock cannot exist and a PID file check is not needed. The file holds the
// holder's PID for the refusal `[run] 'DIR' is in use by process PID`. Once the lock is held,
// temporary files of interrupted atomic writes (`*.tmp.<pid>[.data]`) of dead processes in
// DIR and DIR/checkpoints are removed. Creates DIR if needed.
class RunFolderLock {
 public:
  explicit RunFolderLock(const std::string& dir);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;
  const std::vector<std::string>& removed_temporaries() const { return removed_; }

 private:
  int fd_ = -1;
  std::vector<std::string> removed_;
};

std::string default_run_dir(const ExperimentConfig& cfg);  // runs/<name>
// With `comm` of N > 1 processes (mpirun -n N, experiments/distributed.h) each trains its rows
// of every batch, evaluation is split, and rank 0 alone writes the folder; the checkpoint holds
// the whole batch's memories and the process count, and resuming needs the same count.
RunResult train_run(const ExperimentConfig& cfg, const RunOptions& opts, Communicator& comm = single_process());

// Reads a run folder's config.yaml (for --resume, eval and generate on a run), with
// `overrides` ("a.b=value") applied as load_config does.
ExperimentConfig load_run_config(const std::string& dir, const std::vector<std::string>& overrides = {});
std::string checkpoint_path(const std::string& dir);  // dir/checkpoints/last.safetensors

// Resident and peak resident memory of this process, in bytes (Linux /proc, getrusage).
int64_t resident_bytes();
int64_t peak_resident_bytes();

}  // namespace mnemo::experiments
