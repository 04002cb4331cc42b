// model.arch: transformer | transformer_xl (architectures/transformer.h).
//   model.transformer:    {ff_mult: 4, dropout: 0}
//   model.transformer_xl: {ff_mult: 4, dropout: 0, mem_len: segment_len}
#include "architectures/transformer.h"
#include "experiments/models.h"

namespace mnemo::experiments {
namespace {

arch::TransformerConfig baseline_config(const ExperimentConfig& cfg, YamlReader& r) {
  arch::TransformerConfig c;
  c.vocab = cfg.model.vocab, c.dim = cfg.model.dim, c.depth = cfg.model.depth, c.heads = cfg.model.heads;
  c.seq_len = cfg.data.segment_len;
  c.ff_mult = r.get("ff_mult", c.ff_mult, positive);
  c.dropout = r.get("dropout", c.dropout, in_range(0, 0.99));
  return c;
}

MNEMO_REGISTER_ARCH(ArchInfo{
    .name = "transformer",
    .summary = "pre-norm transformer, each segment alone (no memory)",
    .build = [](const ExperimentConfig& cfg, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      YamlReader r = arch_options_reader(cfg.model);
      arch::TransformerConfig c = baseline_config(cfg, r);
      r.reject_unknown_keys();
      return std::make_unique<arch::Transformer>(init, c);
    },
    .import_reference = {}});

MNEMO_REGISTER_ARCH(ArchInfo{
    .name = "transformer_xl",
    .summary = "Transformer-XL: per-layer hidden-state memory of mem_len, relative positions",
    .build = [](const ExperimentConfig& cfg, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      YamlReader r = arch_options_reader(cfg.model);
      arch::TransformerConfig c = baseline_config(cfg, r);
      c.mem_len = r.get("mem_len", cfg.data.segment_len, positive);
      r.reject_unknown_keys();
      return std::make_unique<arch::TransformerXL>(init, c);
    },
    .import_reference = {}});

}  // namespace
}  // namespace mnemo::experiments
