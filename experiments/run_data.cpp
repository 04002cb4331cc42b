#include "experiments/run_data.h"

#include "data/byte_corpus.h"
#include "common/random_hash.h"

namespace mnemo::experiments {

data::SyntheticConfig synthetic_config(const ExperimentConfig& cfg, uint64_t seed) {
  const DataConfig& d = cfg.data;
  const int64_t length = d.segments * d.segment_len;
  MNEMO_CHECK(d.total_len == 0 || d.total_len == length,
              "[data] data.total_len " << d.total_len << " must equal data.segments * data.segment_len = " << length
                                       << " (or be 0)");
  data::SyntheticConfig s;
  s.task = d.task;
  s.length = length;
  s.segments = d.segments;
  s.batch = d.batch_size;
  if (s.task == data::Task::copy || s.task == data::Task::reverse || s.task == data::Task::selective_copy)
    s.content_len = d.copy_len;
  s.pairs = d.num_pairs;
  s.depth = d.depth;
  s.seed = seed;
  s.curriculum_segments = d.curriculum_segments;
  s.curriculum_steps = d.curriculum_steps;
  return s;
}

RunData make_run_data(const ExperimentConfig& cfg) {
  const DataConfig& d = cfg.data;
  RunData out;
  out.tokens_per_batch = d.batch_size * d.segments * d.segment_len;
  const data::StreamShape shape{.batch = d.batch_size, .segments = d.segments, .seg_len = d.segment_len};
  const int64_t eval_batches = cfg.eval.batches;
  if (d.kind == DataKind::synthetic) {
    out.synthetic = true;
    out.train = std::make_unique<data::SyntheticTask>(synthetic_config(cfg, cfg.seed));
    data::SyntheticConfig eval_cfg = synthetic_config(cfg, mix64(cfg.seed ^ 0x5eed0fe7a1ULL));
    eval_cfg.curriculum_segments.clear();  // held out at the full reach
    const data::SyntheticTask held_out(eval_cfg);
    for (int64_t i = 0; i < (eval_batches > 0 ? eval_batches : 16); ++i) out.eval.push_back(held_out.batch(i));
    return out;
  }
  const data::ByteCorpus corpus = data::ByteCorpus::load(d.path, d.val_fraction);
  // Checked here, at the start of a run, rather than at the first evaluation: a held-out
  // split that cannot fill one batch would give a loss over a handful of padded positions.
  const int64_t valid_bytes = corpus.sizes().valid, needed = d.batch_size * d.segments * d.segment_len + 1;
  MNEMO_CHECK(valid_bytes >= needed,
              "[data] the held-out split of '" << d.path << "' is " << valid_bytes << " bytes (data.val_fraction = "
                  << d.val_fraction << " of " << corpus.size() << "); one evaluation batch needs data.batch_size * "
                  << "data.segments * data.segment_len + 1 = " << d.batch_size << " * " << d.segments << " * "
                  << d.segment_len << " + 1 = " << needed << " bytes: raise data.val_fraction or lower data.batch_size");
  const data::ByteSpan train = corpus.split(data::Split::train);
  if (d.random_crops) out.train = std::make_unique<data::RandomCrops>(train, shape, cfg.seed);
  else out.train = std::make_unique<data::ContiguousStreams>(train, shape);
  data::EvalStreams valid(corpus.split(data::Split::valid), shape);
  while (!valid.done() && (eval_batches == 0 || int64_t(out.eval.size()) < eval_batches)) out.eval.push_back(valid.next());
  return out;
}

}  // namespace mnemo::experiments
