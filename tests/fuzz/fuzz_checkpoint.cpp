// The checkpoint load path of `mnemo train --resume` (load_checkpoint's metadata, step and
// CRC checks, then restoring weights, AdamW state, memory and data cursor) on a tiny model,
// followed by one training step: a checkpoint is either refused with mnemo::Error or leaves
// a state that trains.
#include "autograd/error.h"
#include "experiments/checkpoint.h"
#include "experiments/config.h"
#include "experiments/models.h"
#include "experiments/run_data.h"
#include "experiments/trainer.h"
#include "tests/fuzz/fuzz_support.h"

using namespace mnemo;
using namespace mnemo::experiments;

namespace {

// The config the seed checkpoints were trained with (`mnemo train` of this text, --stop-after 2,
// then --resume; step2_no_crc is step2 without its crc32/ keys, so mutations reach restore).
constexpr const char* kConfig = R"(seed: 3
data: {kind: synthetic, task: copy, copy_len: 2, segments: 2, segment_len: 4, batch_size: 1}
model: {arch: transformer_xl, dim: 8, depth: 1, heads: 2, vocab: 128, transformer_xl: {mem_len: 4}}
train: {steps: 4, threads: 1, optimizer: {lr: 0.01}, memory_dropout: {mem.0: 0.5}}
eval: {batches: 1}
)";

const ExperimentConfig& config() {
  static const ExperimentConfig cfg = [] {
    const std::string path = fuzz::scratch_file("tiny.yaml");
    fuzz::write_file(path, kConfig);
    return load_config(path);
  }();
  return cfg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ExperimentConfig& cfg = config();
  const std::string path = fuzz::scratch_file("last.safetensors");
  fuzz::write_file(path, fuzz::as_text(data, size));
  // Built afresh for every input, so that a finding does not depend on the inputs before it.
  auto model = build_model(cfg);
  RunData run_data = make_run_data(cfg);
  AdamW opt(nn::named_params(*model), adamw_config(cfg.train.optimizer));
  TrainerOptions o;
  o.bptt.mode = cfg.train.bptt;
  o.bptt.seed = cfg.seed;
  o.bptt.memory_dropout = cfg.train.memory_dropout;
  o.schedule = schedule_of(cfg.train, cfg.data.segments);
  o.seed = cfg.seed;
  Trainer trainer(*model, *run_data.train, opt, o);
  try {
    const TrainingState st = load_checkpoint(path);
    restore(*model, opt, st);
    trainer.set_steps(st.step);
    trainer.set_skipped_updates(st.skipped_updates);
    trainer.set_memory(st.memory);
    run_data.train->set_cursor(st.data_cursor);
    trainer.step();
  } catch (const Error&) {
  }
  return 0;
}
