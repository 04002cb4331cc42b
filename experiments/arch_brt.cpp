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

struct BrtTraits {
  using Config = arch::BrtConfig;
  template <class Self, class V> static void visit(Self& c, V&& v) { Config::visit_options(c, v); }
  static Config resolve(const Config& c) { return arch::resolved(c); }
};

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

NamedTensors import_brt(const std::map<std::string, Tensor>& ref, const arch::BrtConfig& c) {
  nn::Init init(0);
  arch::BlockRecurrentTransformer model(init, c);
  return import_by_name(model, ref,
                        {.what = "[brt import] the reference state dict does not match model.brt",
                         .reference_name = reference_name,
                         .ignorable = is_zero_ln_buffer});
}

MNEMO_REGISTER_ARCH(arch_entry<BrtTraits>(
    "brt", "Block-Recurrent Transformer: blocks of W tokens, recurrent states and XL key/value memories",
    [](const arch::BrtConfig& c, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::BlockRecurrentTransformer>(init, c);
    },
    import_brt));

}  // namespace
}  // namespace mnemo::experiments
