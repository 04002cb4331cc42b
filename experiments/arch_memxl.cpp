// model.arch: memxl (architectures/memxl.h). model.dim/depth/heads/vocab and data.segment_len
// give D, L, H, V, T; model.memxl holds the rest (defaults as the reference's constructor):
//   emb_dim: dim            memory_layers: [] (all; 1-based)   mem_len: segment_len
//   lmem_len: mem_len       gru_gated_residual: true           mogrify_gru: false
//   attn_dropout: 0         ff_dropout: 0                      attn_layer_dropout: 0
//   ff_glu: false           one_kv_head: false                 num_mem_kv: 0
//   mem_write_iters: 2      detach_hiddens: true               reference_parity: false
// import: lucidrains/memory-transformer-xl state dicts; names are the reference's except
// to_logits.0 -> to_emb_dim and to_logits.1 -> to_logits, and empty (zero-slot) mem_kv
// tensors, which the model does not hold.

#include "architectures/memxl.h"
#include "experiments/models.h"

namespace mnemo::experiments {
namespace {

struct MemXLTraits {
  using Config = arch::MemXLConfig;
  template <class Self, class V> static void visit(Self& c, V&& v) { Config::visit_options(c, v); }
  static Config resolve(const Config& c) { return arch::resolved(c); }
};

// The reference's name for a mnemo parameter name.
std::string reference_name(const std::string& name) {
  if (name.rfind("to_emb_dim.", 0) == 0) return "to_logits.0." + name.substr(11);
  if (name.rfind("to_logits.", 0) == 0) return "to_logits.1." + name.substr(10);
  return name;
}

NamedTensors import_memxl(const std::map<std::string, Tensor>& reference, const arch::MemXLConfig& c) {
  nn::Init init(0);
  arch::MemoryTransformerXL model(init, c);
  return import_by_name(model, reference,
                        {.what = "[import memxl] the reference state dict does not match model.memxl as configured",
                         .reference_name = reference_name,
                         .ignorable = [](const std::string&, const Tensor& t) { return t.numel() == 0; }});
}

MNEMO_REGISTER_ARCH(arch_entry<MemXLTraits>(
    "memxl", "Memory Transformer-XL: XL short memory + long memory written by linear attention with nBRC gates",
    [](const arch::MemXLConfig& c, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::MemoryTransformerXL>(init, c);
    },
    import_memxl));

}  // namespace
}  // namespace mnemo::experiments
