// model.arch: brt (architectures/brt.h), the Block-Recurrent Transformer. Options, model.brt:
//   dim_head: dim/heads   block_width: segment_len/2 (segment_len when odd)   num_state_vectors: block_width
//   recurrent_layers: [max(depth/2, 1)] (1-based)   read_recurrent_layers: = recurrent_layers
//   all_layers_qk_rmsnorm: false   qk_rmsnorm_scale: 8   ff_mult: 4
//   use_compressed_mem: false   compressed_mem_factor: 4   rotary_theta: 10000   xpos_scale_base: 512
//   reference_parity: false
// import_reference maps lucidrains/block-recurrent-transformer-pytorch state dicts (@9f28fcd).
#include <regex>

#include "architectures/brt.h"
#include "experiments/models.h"

namespace mnemo::experiments {
namespace {

arch::BrtConfig brt_config(const ExperimentConfig& cfg) {
  YamlReader r = arch_options_reader(cfg.model);
  arch::BrtConfig c;
  c.vocab = cfg.model.vocab, c.dim = cfg.model.dim, c.depth = cfg.model.depth, c.heads = cfg.model.heads;
  c.seq_len = cfg.data.segment_len;
  c.dim_head = r.get("dim_head", int64_t(0), non_negative);
  c.block_width = r.get("block_width", c.seq_len % 2 == 0 ? c.seq_len / 2 : c.seq_len, positive);
  c.num_state_vectors = r.get("num_state_vectors", int64_t(0), non_negative);
  c.recurrent_layers = r.get("recurrent_layers", std::vector<int64_t>{}, positive);
  c.read_recurrent_layers = r.get("read_recurrent_layers", std::vector<int64_t>{}, positive);
  c.all_layers_qk_rmsnorm = r.get("all_layers_qk_rmsnorm", c.all_layers_qk_rmsnorm);
  c.qk_rmsnorm_scale = r.get("qk_rmsnorm_scale", c.qk_rmsnorm_scale, positive);
  c.ff_mult = r.get("ff_mult", c.ff_mult, positive);
  c.use_compressed_mem = r.get("use_compressed_mem", c.use_compressed_mem);
  c.compressed_mem_factor = r.get("compressed_mem_factor", c.compressed_mem_factor, positive);
  c.rotary_theta = r.get("rotary_theta", c.rotary_theta, positive);
  c.xpos_scale_base = r.get("xpos_scale_base", c.xpos_scale_base, positive);
  c.reference_parity = r.get("reference_parity", c.reference_parity);
  r.reject_unknown_keys();
  return c;
}

// mnemo name -> the reference's state-dict name.
std::string reference_name(const std::string& n) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex(R"(^layers\.(\d+)\.attn\.norm\.weight$)"), "layers.$1.0.norm.gamma"},
      {std::regex(R"(^layers\.(\d+)\.attn\.state\.state_norm\.weight$)"), "layers.$1.0.state_container.state_norm.gamma"},
      {std::regex(R"(^layers\.(\d+)\.attn\.state\.(.*)$)"), "layers.$1.0.state_container.$2"},
      {std::regex(R"(^layers\.(\d+)\.attn\.(q_scale|k_scale)$)"), "layers.$1.0.attn.$2"},
      {std::regex(R"(^layers\.(\d+)\.attn\.(.*)$)"), "layers.$1.0.$2"},
      {std::regex(R"(^layers\.(\d+)\.ff\.norm\.weight$)"), "layers.$1.1.0.gamma"},
      {std::regex(R"(^layers\.(\d+)\.ff\.proj_in\.weight$)"), "layers.$1.1.1.weight"},
      {std::regex(R"(^layers\.(\d+)\.ff\.proj_out\.weight$)"), "layers.$1.1.3.weight"},
      {std::regex(R"(^layers\.(\d+)\.mem_compress\.(weight|bias)$)"), "mem_manager.layers.$1.1.1.$2"},
      {std::regex(R"(^norm\.weight$)"), "to_logits.0.gamma"},
      {std::regex(R"(^to_logits\.weight$)"), "to_logits.1.weight"},
  };
  for (const auto& [re, to] : rules)
    if (std::regex_match(n, re)) return std::regex_replace(n, re, to);
  return n;  // token_emb.weight
}

// The bias-less LayerNorms keep a zero `beta` buffer in the state dict: accepted if zero.
bool is_zero_ln_buffer(const std::string& name, const Tensor& t) {
  static const std::regex beta(R"(^(layers\.\d+\.0\.norm|layers\.\d+\.0\.state_container\.state_norm|layers\.\d+\.1\.0|to_logits\.0)\.beta$)");
  if (!std::regex_match(name, beta)) return false;
  for (double x : t.to_vector()) MNEMO_CHECK(x == 0.0, "[brt import] " << name << " must be zero (mnemo's LayerNorm has no bias)");
  return true;
}

NamedTensors import_brt(const std::map<std::string, Tensor>& ref, const ExperimentConfig& cfg) {
  nn::Init init(0);
  arch::BlockRecurrentTransformer model(init, brt_config(cfg));
  return import_by_name(model, ref,
                        {.what = "[brt import] the reference state dict does not match model.brt",
                         .reference_name = reference_name,
                         .ignorable = is_zero_ln_buffer});
}

MNEMO_REGISTER_ARCH(ArchInfo{
    .name = "brt",
    .summary = "Block-Recurrent Transformer: blocks of W tokens, recurrent states and XL key/value memories",
    .build = [](const ExperimentConfig& cfg, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::BlockRecurrentTransformer>(init, brt_config(cfg));
    },
    .import_reference = import_brt});

}  // namespace
}  // namespace mnemo::experiments
