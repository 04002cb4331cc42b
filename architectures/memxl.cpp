#include "architectures/memxl.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "autograd/gradcheck/gradcheck.h"
#include "layers/relative_bias.h"

namespace mnemo::arch {

MemXLConfig resolved(MemXLConfig c) {
  MNEMO_CHECK(c.vocab > 0 && c.dim > 0 && c.depth > 0 && c.heads > 0 && c.seq_len > 0,
              "[memxl] vocab, dim, depth, heads and seq_len must be > 0");
  MNEMO_CHECK(c.dim % c.heads == 0, "[memxl] dim " << c.dim << " must divide by heads " << c.heads);
  MNEMO_CHECK(c.dim % kMemXLWriterHeads == 0,
              "[memxl] dim " << c.dim << " must divide by the writer's " << kMemXLWriterHeads << " heads");
  if (c.emb_dim == 0) c.emb_dim = c.dim;
  if (c.mem_len == -1) c.mem_len = c.seq_len;
  if (c.lmem_len == 0) c.lmem_len = std::max<int64_t>(c.mem_len, 1);
  MNEMO_OPTION_CHECK(c.emb_dim > 0, "emb_dim", "must be > 0, got " << c.emb_dim);
  MNEMO_OPTION_CHECK(c.mem_len >= 0, "mem_len", "must be >= 0, got " << c.mem_len);
  MNEMO_OPTION_CHECK(c.lmem_len >= 1, "lmem_len", "must be >= 1, got " << c.lmem_len);
  MNEMO_OPTION_CHECK(c.num_mem_kv >= 0, "num_mem_kv", "must be >= 0, got " << c.num_mem_kv);
  MNEMO_OPTION_CHECK(c.mem_write_iters >= 1, "mem_write_iters", "must be >= 1, got " << c.mem_write_iters);
  MNEMO_OPTION_CHECK(c.writer_keep_init > 0 && c.writer_keep_init < 1, "writer_keep_init",
                     "must be in (0, 1) (the writer's keep gate's initial value), got " << c.writer_keep_init);
  for (const auto& [key, p] : {std::pair{"attn_dropout", c.attn_dropout}, std::pair{"ff_dropout", c.ff_dropout},
                               std::pair{"attn_layer_dropout", c.attn_layer_dropout}})
    check_dropout(key, p);
  if (c.memory_layers.empty())
    for (int64_t l = 1; l <= c.depth; ++l) c.memory_layers.push_back(l);
  std::vector<int64_t> sorted = c.memory_layers;
  std::sort(sorted.begin(), sorted.end());
  MNEMO_OPTION_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end() && sorted.front() >= 1 &&
                         sorted.back() <= c.depth,
                     "memory_layers", "must be distinct layer numbers in 1.." << c.depth);
  c.memory_layers = sorted;  // "short" is stacked in layer order
  return c;
}

namespace {


nn::AttentionConfig attention_config(const MemXLConfig& c) {
  return {.dim = c.dim,
          .heads = c.heads,
          .shared_kv = c.one_kv_head,
          .num_mem_kv = c.num_mem_kv,
          .attn_dropout = c.attn_dropout,
          .out_dropout = c.attn_layer_dropout};
}

}  // namespace

// ---- the writer ----------------------------------------------------------------------------

MemXLWriter::MemXLWriter(nn::Init& init, const MemXLConfig& c, int64_t memory_depth)
    : depth_emb(init.fan_in_uniform({memory_depth, 1, 1, 1}, c.dim)),
      init_lmem(init.fan_in_uniform({1, 1, c.dim}, c.dim)),
      lmem_pos_emb(init.fan_in_uniform({1, c.lmem_len, c.dim}, c.dim)),
      mem_kv(c.num_mem_kv > 0 ? init.fan_in_uniform({1, c.num_mem_kv, c.dim}, c.dim) : Param()),
      attn(init, c.dim, kMemXLWriterHeads, c.reference_parity),
      gate(init, c.dim, c.writer_keep_init),
      num_mem_kv(c.num_mem_kv),
      lmem_len(c.lmem_len),
      iters(c.mem_write_iters) {}

void MemXLWriter::visit(nn::ParamVisitor& v) {
  v("depth_emb", depth_emb);
  v("init_lmem", init_lmem);
  v("lmem_pos_emb", lmem_pos_emb);
  if (num_mem_kv > 0) v("mem_kv", mem_kv);
  v.sub("attn", attn);
  v.sub("gate", gate);
}

Var MemXLWriter::operator()(Var long_mem, Var sh) const {
  Tape& tape = sh.tape();
  const int64_t Lm = sh.dim(0), B = sh.dim(1), N = sh.dim(2), D = sh.dim(3);
  // m_0 = (m or init_lmem) + E_pos: the slots' positions are re-injected at every write
  Var m = long_mem.defined() && long_mem.dim(1) > 0 ? long_mem
                                                    : broadcast_to(tape.param(init_lmem), {B, lmem_len, D});
  m = m + tape.param(lmem_pos_emb);                                              // (B, Ll, D)
  // c = layer-major [s^l; h^l] + delta_l, then the writer's persistent slots
  Var c = sh + tape.param(depth_emb);                                            // (Lm, B, N, D)
  c = reshape(permute(c, {1, 0, 2, 3}), {B, Lm * N, D});                         // (B, Lm N, D)
  if (num_mem_kv > 0) c = concat({c, broadcast_to(tape.param(mem_kv), {B, num_mem_kv, D})}, 1);
  for (int64_t i = 0; i < iters; ++i) m = gate(/*input=*/attn(m, c), /*hidden=*/m);  // (B, Ll, D)
  return m;
}

// ---- the model -----------------------------------------------------------------------------

MemoryTransformerXL::MemoryTransformerXL(nn::Init& init, MemXLConfig c)
    : cfg(resolved(std::move(c))),
      emb(init, cfg.vocab, cfg.embedding_dim(), cfg.dim),
      pos_emb(init.zeros({cfg.heads, cfg.seq_len + cfg.mem_len + cfg.lmem_len, cfg.dim / cfg.heads})),
      head(init, cfg.dim, cfg.embedding_dim(), cfg.vocab),
      writer(init, cfg, int64_t(cfg.memory_layers.size())) {
  attn_layers.reserve(size_t(cfg.depth));
  ff_layers.reserve(size_t(cfg.depth));
  for (int64_t l = 0; l < cfg.depth; ++l) attn_layers.emplace_back(init, cfg, attention_config(cfg));
  for (int64_t l = 0; l < cfg.depth; ++l) ff_layers.emplace_back(init, cfg, cfg.dim, 4, cfg.ff_dropout, cfg.ff_glu);
}

// Keys per layer: [P_l ; n(m) ; n(s^l) ; n(h^{l-1})] in memory layers, [P_l ; n(h^{l-1})] in the others.
std::vector<AttentionLayout> MemoryTransformerXL::attention_layout(const Memory& memory, int64_t t) const {
  const auto slots = [&](const char* name, int axis) {
    const auto it = memory.find(name);
    return it == memory.end() ? int64_t(0) : it->second.dim(axis);
  };
  const int64_t Ll = slots("long", 1), Ls = slots("short", 2);  // (B, Ll, D), (Lm, B, Ls, D)
  std::vector<AttentionLayout> calls;
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const bool reads = memory_index(l) >= 0;
    calls.push_back({.name = "layer " + std::to_string(l),
                     .keys = {{"persistent", cfg.num_mem_kv}, {"long_term", reads ? Ll : 0},
                              {"xl_cache", reads ? Ls : 0}, {"segment", t}},
                     .rows = t});
  }
  return calls;
}

void MemoryTransformerXL::visit(nn::ParamVisitor& v) {
  emb.visit(v);  // "token_emb.weight", "to_model_dim.*" as the reference's top level
  v("pos_emb", pos_emb);
  for (size_t l = 0; l < attn_layers.size(); ++l) v.sub("attn_layers." + std::to_string(l), attn_layers[l]);
  for (size_t l = 0; l < ff_layers.size(); ++l) v.sub("ff_layers." + std::to_string(l), ff_layers[l]);
  head.visit(v);  // "to_emb_dim.*", "to_logits.*"
  v.sub("memory_network", writer);
}

int64_t MemoryTransformerXL::memory_index(int64_t layer) const {
  const auto it = std::find(cfg.memory_layers.begin(), cfg.memory_layers.end(), layer + 1);
  return it == cfg.memory_layers.end() ? -1 : int64_t(it - cfg.memory_layers.begin());
}

Memory MemoryTransformerXL::initial_memory(int64_t batch) const {
  const DType dt = pos_emb.value.dtype();
  const Device dev = pos_emb.value.device();
  return {{"short", Tensor::zeros({memory_depth(), batch, 0, cfg.dim}, dt, dev)},  // (Lm, B, 0, D)
          {"long", Tensor::zeros({batch, 0, cfg.dim}, dt, dev)}};                 // (B, 0, D)
}

int64_t MemoryTransformerXL::position_row(int64_t r, int64_t key, int64_t t, int64_t n_keys,
                                          int64_t short_len) const {
  const int64_t P = pos_emb.value.dim(1);
  if (!cfg.reference_parity) {
    // P4 intended: by distance among the positioned keys; persistent slots have no position
    if (key < cfg.num_mem_kv) return -1;
    const int64_t dist = (n_keys - t + r) - key;
    return dist >= 0 && dist < P ? P - 1 - dist : -1;
  }
  // The reference slices R to [T - t, end) with end = Ls + D + T (it reads the long memory's
  // feature size where it meant its slot count; P4), clipped to P, then keeps its last
  // n_keys rows and shifts them per query. Net effect: row end - 1 - dist over all keys
  // (persistent ones included), and keys whose row would fall before T - 1 - r get none.
  const int64_t end = std::min(short_len + cfg.dim + cfg.seq_len, P);
  const int64_t dist = (n_keys - t + r) - key;
  const int64_t row = end - 1 - dist;
  return dist >= 0 && row >= cfg.seq_len - 1 - r ? row : -1;
}

SegmentOut MemoryTransformerXL::forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const {
  MNEMO_CHECK(tokens.rank() == 2 && tokens.dim(1) >= 1 && tokens.dim(1) <= cfg.seq_len,
              "[memxl] expected tokens (B, 1 <= T <= " << cfg.seq_len << "), got " << tokens.shape());
  const int64_t B = tokens.dim(0), t = tokens.dim(1), D = cfg.dim, Lm = memory_depth();
  const Memory initial = initial_memory(B);
  auto memory_var = [&](const char* name) {
    const auto it = memory.find(name);
    return it != memory.end() ? it->second : tape.constant(initial.at(name));
  };
  const Var short_mem = memory_var("short"), long_mem = memory_var("long");
  MNEMO_CHECK(short_mem.rank() == 4 && short_mem.dim(0) == Lm && short_mem.dim(1) == B && short_mem.dim(3) == D &&
                  short_mem.dim(2) <= cfg.mem_len,
              "[memxl] expected short (" << Lm << ", " << B << ", Ls <= " << cfg.mem_len << ", " << D << "), got "
                                         << short_mem.shape());
  MNEMO_CHECK(long_mem.rank() == 3 && long_mem.dim(0) == B && long_mem.dim(2) == D &&
                  (long_mem.dim(1) == 0 || long_mem.dim(1) == cfg.lmem_len),
              "[memxl] expected long (" << B << ", 0 or " << cfg.lmem_len << ", " << D << "), got "
                                        << long_mem.shape());
  const int64_t Ls = short_mem.dim(2);
  const double scale = 1.0 / std::sqrt(double(D / cfg.heads));  // the content logits' scale, shared by q R
  Var R = tape.param(pos_emb);

  Var h = emb(tape, tokens);  // (B, t, D)
  std::vector<Var> hiddens;   // raw inputs of the memory layers, for the writer
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const auto& attn = attn_layers[size_t(l)];
    const int64_t mi = memory_index(l);
    nn::AttentionContext ctx{.causal = true};
    if (mi >= 0) {
      hiddens.push_back(h);
      std::vector<Var> slots;  // [long; short_l], oldest first; keys go [persistent; slots; tokens]
      if (long_mem.dim(1) > 0) slots.push_back(long_mem);
      if (Ls > 0) slots.push_back(reshape(slice(short_mem, 0, mi, 1), {B, Ls, D}));
      if (!slots.empty()) {
        Var mem = slots.size() > 1 ? concat(slots, 1) : slots[0];     // (B, Ll + Ls, D)
        ctx.memory = cfg.reference_parity ? mem : attn.norm(mem);     // P1: normalised like the tokens
      }
    }
    ctx.q_band = [this, R, scale, t, Ls](Var q, int64_t n_keys) {
      std::vector<int64_t> rows(size_t(t * n_keys));
      for (int64_t r = 0; r < t; ++r)
        for (int64_t k = 0; k < n_keys; ++k) rows[size_t(r * n_keys + k)] = position_row(r, k, t, n_keys, Ls);
      return nn::band_row_logits(R, q, n_keys, rows, scale);  // (B, H, t, n), read shifted by the kernel
    };
    h = attn.combine(h, attn.fn(attn.norm(h), ctx).out);
    const auto& ff = ff_layers[size_t(l)];
    h = ff.combine(h, ff.fn(ff.norm(h)));
  }
  SegmentOut out;
  out.logits = head(h);  // (B, t, V)

  // P5: a partial segment (generation) leaves the memories as they were
  const bool write = cfg.reference_parity ? t >= cfg.mem_len : t == cfg.seq_len;
  if (!write) {
    out.memory = {{"short", short_mem}, {"long", long_mem}};
    return out;
  }
  // The writer reads the new hiddens as data (SPEC 4.2): the long memory's gradient trains the
  // writer and reaches older long memories, not the layers that produced the hiddens.
  auto sg = [&](Var x) { return cfg.detach_hiddens ? stop_gradient(x) : x; };
  std::vector<Var> hs;
  for (const Var& x : hiddens) hs.push_back(reshape(sg(x), {1, B, t, D}));
  Var new_h = hs.size() > 1 ? concat(hs, 0) : hs[0];                          // (Lm, B, t, D)
  Var sh = Ls > 0 ? concat({sg(short_mem), new_h}, 2) : new_h;                // (Lm, B, Ls + t, D)
  out.memory["long"] = writer(long_mem, sh);                                  // (B, Ll, D), on the tape
  // s' = last mem_len of [s; h] (stop-gradient as in Transformer-XL unless detach_hiddens is off)
  const int64_t keep = std::min(cfg.mem_len, Ls + t);
  out.memory["short"] = keep > 0 ? slice(sh, 2, Ls + t - keep, keep)
                                 : tape.constant(Tensor::zeros({Lm, B, 0, D}, sh.dtype(), sh.value().device()));
  return out;
}

// ---- gradient check: the whole model over segments, long memory on the tape ----------------

namespace {

using gradcheck::Sample;

MNEMO_GRADCHECK("arch.memxl.three_segments", [](Sample& s) {
  // Three segments, the long memory carried on the tape from write to write; mem_len 3 < T = 4
  // (the short memory evicts), layer 2 reads memory and layer 1 does not, persistent slots in
  // attention and writer, a factorised embedding, hiddens not detached (SG would make the
  // finite differences see paths the gradient does not). Central differences cost two 3-segment
  // runs per element, so the checked leaves are the parameters that carry the cross-segment
  // wiring (Linear weights are checked by the layers' own gradchecks): R, every persistent slot,
  // the writer's own tensors and its q and output maps (init_lmem reaches the output only
  // through two long-memory hops),
  // the memory layer's norm (applied to memory slots, P1) and the writer's gate biases.
  MemXLConfig c{.vocab = 5, .dim = 8, .depth = 2, .heads = 2, .seq_len = 4, .emb_dim = 6, .memory_layers = {2},
                .mem_len = 3, .lmem_len = 2, .num_mem_kv = 1, .mem_write_iters = 2, .detach_hiddens = false};
  MemoryTransformerXL& m = s.once<MemoryTransformerXL>(
      [&] {
        nn::Init init(1234, DType::f64);
        auto model = std::make_shared<MemoryTransformerXL>(init, c);
        Rng rng(99);  // R starts at zero: random rows make the positional path's gradient non-trivial
        model->pos_emb.value = Tensor::randn(model->pos_emb.value.shape(), rng, DType::f64, 0.5);
        return model;
      },
      [](MemoryTransformerXL& model) {
        std::vector<Param*> checked;
        for (auto& [name, p] : nn::named_params(model)) {
          // Captured through an init-capture: clang 14 (the fuzz build) cannot capture a structured binding.
          auto starts = [&n = name](const char* prefix) { return n.rfind(prefix, 0) == 0; };
          const bool wiring = name == "pos_emb" || name.ends_with("mem_kv") || name.ends_with("depth_emb") ||
                              name.ends_with("init_lmem") || name.ends_with("lmem_pos_emb") ||
                              starts("attn_layers.1.fn.norm.") ||
                              (starts("memory_network.attn.") && !name.ends_with("to_kv")) ||
                              (starts("memory_network.gate.") && name.ends_with(".bias"));
          if (wiring) checked.push_back(p);
        }
        return checked;
      },
      [](MemoryTransformerXL& model) {  // the rest of the model: same dtype and device, unchecked
        std::vector<Param*> all;
        for (auto& [name, p] : nn::named_params(model)) all.push_back(p);
        return all;
      });
  MemoryVars mem;
  for (auto& [name, t] : m.initial_memory(2)) mem[name] = s.tape().constant(t);
  std::vector<Var> logits;
  for (int seg = 0; seg < 3; ++seg) {
    SegmentOut o = m.forward(s.tape(), s.indices({2, 4}, 5), mem);
    logits.push_back(o.logits);
    mem = o.memory;  // the long memory carries the graph into the next segment
  }
  return concat(logits, 1);  // (2, 12, 5)
});

}  // namespace

}  // namespace mnemo::arch
