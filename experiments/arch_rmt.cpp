// model.arch: rmt (architectures/rmt.h: RmtConfig holds the options, their defaults and rules).
// The options of model.rmt, with their defaults (SPEC 2.1; the reference's constructor arguments
// under the same names):
//   num_memory_tokens (required), dim_head: dim / heads, ff_mult: 4, causal: true,
//   memory_not_causal: true, abs_pos_emb: true, rotary_pos_emb: true (false, the reference's,
//   under reference_parity; P11), rotary_theta: 32768,
//   use_xl_memories: true, xl_mem_len: data.segment_len, enhanced_xl_recurrence: false,
//   emb_gradient_frac: 0.1, add_write_to_next_write_mem: false, next_write_mem_stop_grad: true,
//   always_have_read_memories: true, mask_out_read_memories: false, num_residual_streams: 4,
//   value_residual: true, null_kv: true, attn_dropout: 0, ff_dropout: 0, reference_parity: false.
// import_reference maps a RecurrentMemoryTransformer state dict (lucidrains, 520a357) onto the
// model's names; the map is in docs/arch/rmt.md.

#include "architectures/rmt.h"
#include "experiments/models.h"

#include <cmath>

namespace mnemo::experiments {
namespace {

struct RmtTraits {
  using Config = arch::RmtConfig;
  template <class Self, class V> static void visit(Self& c, V&& v) { Config::visit_options(c, v); }
  static Config resolve(const Config& c) { return arch::resolved(c); }
};

// Reference state-dict name -> mnemo name, for the parameters a model with config `c` has.
// The reference wraps each branch in hyper-connections (layers.<l>.0 attention, .1 feed-forward)
// whose own parameters sit beside "branch."; with one stream the wrapper has none.
std::vector<std::pair<std::string, std::string>> reference_names(const arch::RmtConfig& c) {
  std::vector<std::pair<std::string, std::string>> m = {
      {"token_emb.weight", "token_emb.weight"},
      {"read_memory_emb", "read_memory_emb"},
      {"memory_tokens", "memory_tokens"},
      {"norm.weight", "norm.weight"},
      {"to_logits.weight", "to_logits.weight"},
      {"to_logits.bias", "to_logits.bias"},
  };
  if (c.abs_pos_emb) m.push_back({"pos_emb.weight", "pos_emb.emb.weight"});
  for (int64_t l = 0; l < c.depth; ++l) {
    const std::string ref = "layers." + std::to_string(l) + ".", ours = "layers." + std::to_string(l) + ".";
    for (const auto& [branch, hc] : {std::pair{"0.", "attn_hc."}, std::pair{"1.", "ff_hc."}}) {
      if (c.num_residual_streams == 1) break;
      for (const char* p : {"static_beta", "static_alpha", "dynamic_alpha_fn", "dynamic_alpha_scale", "dynamic_beta_fn",
                            "dynamic_beta_scale", "norm.gamma"})
        m.push_back({ref + branch + p, ours + hc + p});
    }
    m.push_back({ref + "0.branch.norm.weight", ours + "attn_norm.weight"});
    m.push_back({ref + "0.branch.to_q.weight", ours + "attn.to_q.weight"});
    m.push_back({ref + "0.branch.to_kv.weight", ours + "attn.to_kv.weight"});
    m.push_back({ref + "0.branch.to_out.weight", ours + "attn.to_out.weight"});
    if (c.null_kv) m.push_back({ref + "0.branch.null_kv", ours + "attn.null_kv"});
    if (c.value_residual && l > 0)
      m.push_back({ref + "0.branch.learned_value_residual_mix.0.weight", ours + "attn.to_value_residual_mix.weight"});
    m.push_back({ref + "1.branch.0.weight", ours + "ff.norm.weight"});      // nn.RMSNorm
    m.push_back({ref + "1.branch.1.weight", ours + "ff.proj_in.weight"});   // Linear(D, 2 I)
    m.push_back({ref + "1.branch.4.weight", ours + "ff.proj_out.weight"});  // Linear(I, D)
  }
  return m;
}

// The reference's persistent buffer: RotaryEmbedding(dim_head).inv_freq, computed in f32 as
// torch does (and as the model's rotary tables do, architectures/rmt.cpp).
NamedTensors reference_buffers(const arch::RmtConfig& c) {
  if (!*arch::resolved(c).rotary_pos_emb) return {};  // unset means the resolved default
  std::vector<double> inv_freq;  // f32 values
  for (int64_t i = 0; i < c.dim_head / 2; ++i)
    inv_freq.push_back(1.0f / std::pow(float(c.rotary_theta), float(2 * i) / float(c.dim_head)));
  return {{"rotary_pos_emb.inv_freq", Tensor::from(Shape{c.dim_head / 2}, inv_freq)}};
}

// The option that accounts for a reference tensor the model lacks (missing: false) or wants.
std::string explain(const std::string& ref, bool missing) {
  const auto has = [&](const char* s) { return ref.find(s) != std::string::npos; };
  if (ref == "pos_emb.weight") return missing ? "model.rmt.abs_pos_emb: false" : "model.rmt.abs_pos_emb: true";
  if (ref == "rotary_pos_emb.inv_freq") return "model.rmt.rotary_pos_emb: true";
  if (has(".branch.null_kv")) return missing ? "model.rmt.null_kv: false" : "model.rmt.null_kv: true";
  if (has("learned_value_residual_mix")) return missing ? "model.rmt.value_residual: false" : "model.rmt.value_residual: true";
  if (has("static_") || has("dynamic_") || has(".norm.gamma"))
    return missing ? "model.rmt.num_residual_streams: 1" : "model.rmt.num_residual_streams: 4 (or more)";
  return "";
}

NamedTensors import_rmt(const std::map<std::string, Tensor>& reference, const arch::RmtConfig& c) {
  nn::Init init(0);
  arch::RecurrentMemoryTransformer model(init, c);
  std::map<std::string, std::string> to_reference;  // mnemo name -> reference name
  for (const auto& [ref, ours] : reference_names(model.cfg)) to_reference.emplace(ours, ref);
  return import_by_name(model, reference,
                        {.what = "[import rmt] the reference state dict does not fit model.rmt as configured",
                         .reference_name = [&](const std::string& name) {
                           const auto it = to_reference.find(name);
                           return it == to_reference.end() ? name : it->second;
                         },
                         .buffers = reference_buffers(c),
                         .explain = explain});
}

// Every option is a constructor argument of the reference or, rotary_theta, its buffer; only
// mnemo's fixes of the reference's numerics (reference_parity: false) have no counterpart.
NamedTensors export_rmt(nn::Module& model, const arch::RmtConfig& c) {
  refuse_export("rmt", c.reference_parity ? std::vector<std::string>{} : std::vector<std::string>{kParityOff});
  std::map<std::string, std::string> to_reference;
  for (const auto& [ref, ours] : reference_names(c)) to_reference.emplace(ours, ref);
  return export_by_name(model, {.what = "[export rmt]",
                                .reference_name = [&](const std::string& name) {
                                  const auto it = to_reference.find(name);
                                  MNEMO_CHECK(it != to_reference.end(), "[export rmt] no reference name for " << name);
                                  return it->second;
                                },
                                .buffers = reference_buffers(c)});
}

MNEMO_REGISTER_ARCH(arch_entry<RmtTraits>(
    "rmt", "Recurrent Memory Transformer: read/write memory tokens carried across segments, XL caches",
    [](const arch::RmtConfig& c, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::RecurrentMemoryTransformer>(init, c);
    },
    import_rmt, export_rmt));

}  // namespace
}  // namespace mnemo::experiments
