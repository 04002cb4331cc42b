// model.arch: brt (architectures/brt.h), the Block-Recurrent Transformer. Options, model.brt:
//   dim_head: dim/heads   block_width: segment_len/2 (segment_len when odd)   num_state_vectors: block_width
//   recurrent_layers: [max(depth/2, 1)] (1-based)   read_recurrent_layers: = recurrent_layers
//   all_layers_qk_rmsnorm: false   qk_rmsnorm_scale: 8   ff_mult: 4   ff_dropout: 0   ema_gate_init: 0.5
//   use_compressed_mem: false   compressed_mem_factor: 4   rotary_theta: 10000   xpos_scale_base: 512
//   reference_parity: false
// import_reference maps lucidrains/block-recurrent-transformer-pytorch state dicts (@9f28fcd).
#include <regex>
#include <sstream>
#include <string>
#include <vector>

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

// The bias-less LayerNorms keep a zero `beta` buffer beside each `gamma` in the state dict:
// exported as zeros, accepted on import when zero.
NamedTensors zero_ln_buffers(nn::Module& model) {
  NamedTensors out;
  for (const auto& [name, p] : nn::named_params(model)) {
    const std::string ref = reference_name(name);
    if (ref.ends_with(".gamma")) out.emplace_back(ref.substr(0, ref.size() - 5) + "beta", Tensor::zeros(p->value.shape()));
  }
  return out;
}

// The option that accounts for a reference tensor the model lacks (missing: false) or wants.
std::string explain(const std::string& ref, bool missing) {
  const auto has = [&](const char* s) { return ref.find(s) != std::string::npos; };
  if (has(".state_container.")) return "model.brt.recurrent_layers (the layer holding it " + std::string(missing ? "is not" : "is") + " recurrent in the reference)";
  if (has("q_scale") || has("k_scale")) return missing ? "model.brt.all_layers_qk_rmsnorm: false" : "model.brt.all_layers_qk_rmsnorm: true";
  if (has("mem_manager.")) return missing ? "model.brt.use_compressed_mem: false" : "model.brt.use_compressed_mem: true";
  return "";
}

ReferenceImport brt_reference(nn::Module& model, const std::string& what) {
  return {.what = what, .reference_name = reference_name, .buffers = zero_ln_buffers(model), .explain = explain};
}

NamedTensors import_brt(const std::map<std::string, Tensor>& ref, const arch::BrtConfig& c) {
  nn::Init init(0);
  arch::BlockRecurrentTransformer model(init, c);
  return import_by_name(model, ref, brt_reference(model, "[brt import] the reference state dict does not match model.brt"));
}

// The reference's rotary/xPos constants are fixed (theta 10000, scale base 512) and its
// tables are not in the state dict; qk_rmsnorm_scale is what reference_parity replaces (P1).
NamedTensors export_brt(nn::Module& model, const arch::BrtConfig& c) {
  const auto num = [](double v) { return (std::ostringstream() << v).str(); };
  std::vector<std::string> refused;
  if (!c.reference_parity) refused.push_back(kParityOff);
  if (c.rotary_theta != 10000) refused.push_back("rotary_theta: " + num(c.rotary_theta) + " (the reference's is 10000)");
  if (c.xpos_scale_base != 512) refused.push_back("xpos_scale_base: " + num(c.xpos_scale_base) + " (the reference's is 512)");
  refuse_export("brt", refused);
  return export_by_name(model, brt_reference(model, "[export brt]"));
}

MNEMO_REGISTER_ARCH(arch_entry<BrtTraits>(
    "brt", "Block-Recurrent Transformer: blocks of W tokens, recurrent states and XL key/value memories",
    [](const arch::BrtConfig& c, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::BlockRecurrentTransformer>(init, c);
    },
    import_brt, export_brt));

}  // namespace
}  // namespace mnemo::experiments
