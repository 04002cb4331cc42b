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
//   compressor_task_grad: false  true: the task loss trains the compressor too (not the paper's)
//   final_norm: true          P6: LayerNorm before the logits (false under reference_parity)
//   gate_bias_init: 2         P7: GRU update-gate bias, identity-favouring (0 under reference_parity)
//   reference_parity: false   the reference's numerics (P2-P5, detached memories)
// Reference weights (lucidrains/compressive-transformer-pytorch state dicts) import by their own
// names: mnemo's parameter names are the reference's.

#include "architectures/compressive.h"
#include "experiments/models.h"

namespace mnemo::experiments {
namespace {

struct CompressiveTraits {
  using Config = arch::CompressiveConfig;
  template <class Self, class V> static void visit(Self& c, V&& v) { Config::visit_options(c, v); }
  static Config resolve(const Config& c) { return arch::resolved(c); }
  // The compressed slots are read from the next segment on: with one segment a tape, the task
  // loss never reaches the compressor.
  static std::string cross_segment_option(const Config& c) { return c.compressor_task_grad ? "compressor_task_grad" : ""; }
};

// Reference state dict -> mnemo names: the names are the same, so this checks that every
// parameter is there with its shape and that nothing is left over.
// The option that accounts for a reference tensor the model lacks (missing: false) or wants.
std::string explain(const std::string& ref, bool missing) {
  const auto has = [&](const char* s) { return ref.find(s) != std::string::npos; };
  if (ref.starts_with("norm.")) return "model.compressive.final_norm: false";
  if (ref.starts_with("to_logits.0.")) return missing ? "model.compressive.emb_dim: dim" : "model.compressive.emb_dim (the reference's)";
  if (has("compress_mem_fn")) return "model.compressive.memory_layers (the reference's)";
  if (has(".mogrify")) return missing ? "model.compressive.mogrify_gru: false" : "model.compressive.mogrify_gru: true";
  if (has(".gru.")) return missing ? "model.compressive.gru_gated_residual: false" : "model.compressive.gru_gated_residual: true";
  return "";
}

NamedTensors import_reference(const std::map<std::string, Tensor>& reference, const arch::CompressiveConfig& c) {
  nn::Init init(0);
  arch::CompressiveTransformer model(init, c);
  return import_by_name(
      model, reference,
      {.what = "[compressive] the reference state dict does not match model.compressive",
       .hint = *model.cfg.final_norm ? " (the reference has no final norm: set reference_parity: true or final_norm: false)"
                                    : "",
       .explain = explain});
}

// Names are the reference's. gate_bias_init only initialises; final_norm adds a norm the
// reference does not have.
NamedTensors export_reference(nn::Module& model, const arch::CompressiveConfig& c) {
  std::vector<std::string> refused;
  if (!c.reference_parity) refused.push_back(kParityOff);
  if (*c.final_norm) refused.push_back("final_norm: true (the reference has no norm before its logits)");
  refuse_export("compressive", refused);
  return export_by_name(model, {.what = "[export compressive]"});
}

MNEMO_REGISTER_ARCH(arch_entry<CompressiveTraits>(
    "compressive", "Compressive Transformer: FIFO memory + conv-compressed memory, attention-reconstruction loss",
    [](const arch::CompressiveConfig& c, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::CompressiveTransformer>(init, c);
    },
    import_reference, export_reference));

}  // namespace
}  // namespace mnemo::experiments
