// model.arch: compressive (architectures/compressive.h; SPEC §3). model.compressive, all optional:
//   emb_dim: dim              ALBERT factorised embedding and output (E)
//   memory_layers: [1..depth] 1-based layers that keep memories
//   enhanced_recurrence: true memory layer j reads memory layer j + 1's memory (ERNIE-Doc)
//   mem_len: segment_len      FIFO slots per memory layer (>= segment_len)
//   cmem_ratio: 4             compression ratio c
//   cmem_len: mem_len / c     compressed slots per memory layer (>= mem_len / c)
//   gru_gated_residual: true  GRU gate instead of residual adds;  mogrify_gru: false
//   ff_glu: false             GLU feed-forward (first half activated)
//   attn_dropout, ff_dropout, attn_layer_dropout, reconstruction_attn_dropout: 0
//   reconstruction_loss_weight: 1
//   final_norm: true          P6: LayerNorm before the logits (false under reference_parity)
//   gate_bias_init: 2         P7: GRU update-gate bias, identity-favouring (0 under reference_parity)
//   reference_parity: false   the reference's numerics (P2-P5, detached memories)
// Reference weights (lucidrains/compressive-transformer-pytorch state dicts) import by their own
// names: mnemo's parameter names are the reference's.

#include "architectures/compressive.h"
#include "experiments/models.h"

namespace mnemo::experiments {
namespace {

arch::CompressiveConfig compressive_config(const ExperimentConfig& cfg) {
  YamlReader r = arch_options_reader(cfg.model);
  arch::CompressiveConfig c;
  c.vocab = cfg.model.vocab, c.dim = cfg.model.dim, c.depth = cfg.model.depth, c.heads = cfg.model.heads;
  c.seq_len = cfg.data.segment_len;
  c.reference_parity = r.get("reference_parity", false);
  c.emb_dim = r.get("emb_dim", c.dim, positive);
  const int64_t depth = c.depth;
  const auto layer = [depth](int64_t v) {
    return v >= 1 && v <= depth ? std::string() : "must be a layer in 1.." + std::to_string(depth);
  };
  c.memory_layers = r.get("memory_layers", std::vector<int64_t>{}, layer);
  if (r.has("memory_layers") && c.memory_layers.empty()) r.fail("memory_layers", "must name at least one layer");
  c.enhanced_recurrence = r.get("enhanced_recurrence", c.enhanced_recurrence);
  c.mem_len = r.get("mem_len", c.seq_len, positive);
  if (c.mem_len < c.seq_len)
    r.fail("mem_len", "must be >= data.segment_len " + std::to_string(c.seq_len) + ", got " + std::to_string(c.mem_len));
  c.cmem_ratio = r.get("cmem_ratio", c.cmem_ratio, positive);
  c.cmem_len = r.get("cmem_len", c.mem_len / c.cmem_ratio, non_negative);
  if (c.cmem_len < c.mem_len / c.cmem_ratio)
    r.fail("cmem_len", "must be >= mem_len / cmem_ratio = " + std::to_string(c.mem_len / c.cmem_ratio) + ", got " +
                           std::to_string(c.cmem_len));
  c.gru_gated_residual = r.get("gru_gated_residual", c.gru_gated_residual);
  c.mogrify_gru = r.get("mogrify_gru", c.mogrify_gru);
  c.ff_glu = r.get("ff_glu", c.ff_glu);
  c.attn_dropout = r.get("attn_dropout", 0.0, in_range(0, 0.99));
  c.ff_dropout = r.get("ff_dropout", 0.0, in_range(0, 0.99));
  c.attn_layer_dropout = r.get("attn_layer_dropout", 0.0, in_range(0, 0.99));
  c.reconstruction_attn_dropout = r.get("reconstruction_attn_dropout", 0.0, in_range(0, 0.99));
  c.reconstruction_loss_weight = r.get("reconstruction_loss_weight", 1.0, non_negative);
  c.final_norm = r.get("final_norm", !c.reference_parity);
  c.gate_bias_init = r.get("gate_bias_init", c.reference_parity ? 0.0 : 2.0);
  r.reject_unknown_keys();
  return c;
}

// Reference state dict -> mnemo names: the names are the same, so this checks that every
// parameter is there with its shape and that nothing is left over.
NamedTensors import_reference(const std::map<std::string, Tensor>& reference, const ExperimentConfig& cfg) {
  nn::Init init(0);
  arch::CompressiveTransformer model(init, compressive_config(cfg));
  return import_by_name(
      model, reference,
      {.what = "[compressive] the reference state dict does not match model.compressive",
       .hint = model.cfg.final_norm ? " (the reference has no final norm: set reference_parity: true or final_norm: false)"
                                    : ""});
}

MNEMO_REGISTER_ARCH(ArchInfo{
    .name = "compressive",
    .summary = "Compressive Transformer: FIFO memory + conv-compressed memory, attention-reconstruction loss",
    .build = [](const ExperimentConfig& cfg, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::CompressiveTransformer>(init, compressive_config(cfg));
    },
    .import_reference = import_reference});

}  // namespace
}  // namespace mnemo::experiments
