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

arch::MemXLConfig memxl_config(const ExperimentConfig& cfg) {
  YamlReader r = arch_options_reader(cfg.model);
  arch::MemXLConfig c;
  c.vocab = cfg.model.vocab, c.dim = cfg.model.dim, c.depth = cfg.model.depth, c.heads = cfg.model.heads;
  c.seq_len = cfg.data.segment_len;
  c.emb_dim = r.get("emb_dim", c.dim, positive);
  c.memory_layers = r.get("memory_layers", std::vector<int64_t>{}, in_range(1, double(c.depth)));
  c.mem_len = r.get("mem_len", c.seq_len, non_negative);
  c.lmem_len = r.get("lmem_len", std::max<int64_t>(c.mem_len, 1), positive);
  c.gated_residual = r.get("gru_gated_residual", c.gated_residual);
  c.mogrify = r.get("mogrify_gru", c.mogrify);
  c.attn_dropout = r.get("attn_dropout", c.attn_dropout, in_range(0, 0.99));
  c.ff_dropout = r.get("ff_dropout", c.ff_dropout, in_range(0, 0.99));
  c.attn_layer_dropout = r.get("attn_layer_dropout", c.attn_layer_dropout, in_range(0, 0.99));
  c.ff_glu = r.get("ff_glu", c.ff_glu);
  c.one_kv_head = r.get("one_kv_head", c.one_kv_head);
  c.num_mem_kv = r.get("num_mem_kv", c.num_mem_kv, non_negative);
  c.mem_write_iters = r.get("mem_write_iters", c.mem_write_iters, positive);
  c.detach_hiddens = r.get("detach_hiddens", c.detach_hiddens);
  c.reference_parity = r.get("reference_parity", c.reference_parity);
  r.reject_unknown_keys();
  return c;
}

// The reference's name for a mnemo parameter name.
std::string reference_name(const std::string& name) {
  if (name.rfind("to_emb_dim.", 0) == 0) return "to_logits.0." + name.substr(11);
  if (name.rfind("to_logits.", 0) == 0) return "to_logits.1." + name.substr(10);
  return name;
}

NamedTensors import_memxl(const std::map<std::string, Tensor>& reference, const ExperimentConfig& cfg) {
  nn::Init init(0);
  arch::MemoryTransformerXL model(init, memxl_config(cfg));
  return import_by_name(model, reference,
                        {.what = "[import memxl] the reference state dict does not match model.memxl as configured",
                         .reference_name = reference_name,
                         .ignorable = [](const std::string&, const Tensor& t) { return t.numel() == 0; }});
}

MNEMO_REGISTER_ARCH(ArchInfo{
    .name = "memxl",
    .summary = "Memory Transformer-XL: XL short memory + long memory written by linear attention with nBRC gates",
    .build = [](const ExperimentConfig& cfg, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::MemoryTransformerXL>(init, memxl_config(cfg));
    },
    .import_reference = import_memxl});

}  // namespace
}  // namespace mnemo::experiments
