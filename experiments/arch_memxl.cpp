// model.arch: memxl (architectures/memxl.h). model.dim/depth/heads/vocab and data.segment_len
// give D, L, H, V, T; model.memxl holds the rest (defaults as the reference's constructor):
//   emb_dim: dim            memory_layers: [] (all; 1-based)   mem_len: segment_len
//   lmem_len: mem_len       gru_gated_residual: true           mogrify_gru: false
//   attn_dropout: 0         ff_dropout: 0                      attn_layer_dropout: 0
//   ff_glu: false           one_kv_head: false                 num_mem_kv: 0
//   mem_write_iters: 2      detach_hiddens: true               reference_parity: false
// import: lucidrains/memory-transformer-xl state dicts; names are the reference's except
// to_logits.0 -> to_emb_dim and to_logits.1 -> to_logits, and empty (zero-slot) mem_kv
// tensors, which the model does not hold. export: the same map the other way.

#include "architectures/memxl.h"
#include "experiments/models.h"

namespace mnemo::experiments {
namespace {

struct MemXLTraits {
  using Config = arch::MemXLConfig;
  template <class Self, class V> static void visit(Self& c, V&& v) { Config::visit_options(c, v); }
  static Config resolve(const Config& c) { return arch::resolved(c); }
  // Hiddens with gradient reach the loss only through memories read by a later segment.
  static std::string cross_segment_option(const Config& c) { return c.detach_hiddens ? "" : "detach_hiddens"; }
};

// The reference's name for a mnemo parameter name.
std::string reference_name(const std::string& name) {
  if (name.rfind("to_emb_dim.", 0) == 0) return "to_logits.0." + name.substr(11);
  if (name.rfind("to_logits.", 0) == 0) return "to_logits.1." + name.substr(10);
  return name;
}

// With num_mem_kv: 0 the reference still holds every mem_kv parameter, empty (1, 0, D); the
// model holds none.
NamedTensors empty_mem_kv(nn::Module& model, const arch::MemXLConfig& c) {
  if (c.num_mem_kv > 0) return {};
  NamedTensors out;
  for (int64_t l = 0; l < c.depth; ++l)
    out.emplace_back("attn_layers." + std::to_string(l) + ".fn.fn.mem_kv", Tensor::zeros({1, 0, c.dim}));
  for (const auto& [name, p] : nn::named_params(model))
    if (name.starts_with("memory_network.")) {
      out.emplace_back("memory_network.mem_kv", Tensor::zeros({1, 0, c.dim}));
      break;
    }
  return out;
}

// The option that accounts for a reference tensor the model lacks (missing: false) or wants.
std::string explain(const std::string& ref, bool missing) {
  const auto has = [&](const char* s) { return ref.find(s) != std::string::npos; };
  if (ref.starts_with("to_logits.0.")) return missing ? "model.memxl.emb_dim: dim" : "model.memxl.emb_dim (the reference's)";
  if (has(".mogrify")) return missing ? "model.memxl.mogrify_gru: false" : "model.memxl.mogrify_gru: true";
  if (has(".gru.")) return missing ? "model.memxl.gru_gated_residual: false" : "model.memxl.gru_gated_residual: true";
  if (has("mem_kv")) return "model.memxl.num_mem_kv (the reference's)";
  if (ref.starts_with("memory_network.")) return "model.memxl.memory_layers (the reference's)";
  return "";
}

ReferenceImport memxl_reference(nn::Module& model, const arch::MemXLConfig& c, const std::string& what) {
  return {.what = what, .reference_name = reference_name, .buffers = empty_mem_kv(model, c), .explain = explain};
}

NamedTensors import_memxl(const std::map<std::string, Tensor>& reference, const arch::MemXLConfig& c) {
  nn::Init init(0);
  arch::MemoryTransformerXL model(init, c);
  return import_by_name(
      model, reference,
      memxl_reference(model, c, "[import memxl] the reference state dict does not match model.memxl as configured"));
}

NamedTensors export_memxl(nn::Module& model, const arch::MemXLConfig& c) {
  refuse_export("memxl", c.reference_parity ? std::vector<std::string>{} : std::vector<std::string>{kParityOff});
  return export_by_name(model, memxl_reference(model, c, "[export memxl]"));
}

MNEMO_REGISTER_ARCH(arch_entry<MemXLTraits>(
    "memxl", "Memory Transformer-XL: XL short memory + long memory written by linear attention with nBRC gates",
    [](const arch::MemXLConfig& c, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::MemoryTransformerXL>(init, c);
    },
    import_memxl, export_memxl));

}  // namespace
}  // namespace mnemo::experiments
