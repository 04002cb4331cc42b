#include "architectures/compressive.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "autograd/gradcheck/gradcheck.h"
#include "layers/memory_ops.h"

namespace mnemo::arch {

CompressiveConfig resolved(CompressiveConfig c) {
  MNEMO_CHECK(c.vocab > 0 && c.dim > 0 && c.depth > 0 && c.heads > 0 && c.seq_len > 0,
              "[compressive] vocab, dim, depth, heads and seq_len must be > 0");
  MNEMO_CHECK(c.dim % c.heads == 0, "[compressive] dim " << c.dim << " must divide by heads " << c.heads);
  if (c.emb_dim == 0) c.emb_dim = c.dim;
  if (c.mem_len == 0) c.mem_len = c.seq_len;
  MNEMO_OPTION_CHECK(c.cmem_ratio >= 1, "cmem_ratio", "must be >= 1, got " << c.cmem_ratio);
  MNEMO_OPTION_CHECK(c.cmem_ratio <= c.mem_len, "cmem_ratio",
                     "must be <= mem_len = " << c.mem_len << " (a larger ratio compresses nothing), got " << c.cmem_ratio);
  if (c.cmem_len < 0) c.cmem_len = c.mem_len / c.cmem_ratio;
  if (!c.final_norm) c.final_norm = !c.reference_parity;
  if (!c.gate_bias_init) c.gate_bias_init = c.reference_parity ? 0.0 : 2.0;
  MNEMO_OPTION_CHECK(c.emb_dim > 0, "emb_dim", "must be > 0, got " << c.emb_dim);
  // The FIFO must hold a whole segment, so what it evicts is always older memory, never tokens
  // of the segment that attends to it; one segment's evictions must fit the compressed memory.
  MNEMO_OPTION_CHECK(c.mem_len >= c.seq_len, "mem_len",
                     "must be >= data.segment_len " << c.seq_len << ", got " << c.mem_len);
  MNEMO_OPTION_CHECK(c.cmem_len >= c.mem_len / c.cmem_ratio, "cmem_len",
                     "must be >= mem_len / cmem_ratio = " << c.mem_len / c.cmem_ratio << ", got " << c.cmem_len);
  if (c.memory_layers.empty())
    for (int64_t l = 1; l <= c.depth; ++l) c.memory_layers.push_back(l);
  std::sort(c.memory_layers.begin(), c.memory_layers.end());
  for (size_t i = 0; i < c.memory_layers.size(); ++i)
    MNEMO_OPTION_CHECK(c.memory_layers[i] >= 1 && c.memory_layers[i] <= c.depth &&
                           (i == 0 || c.memory_layers[i] != c.memory_layers[i - 1]),
                       "memory_layers", "must be distinct layers in 1.." << c.depth << ", got " << c.memory_layers[i]);
  for (const auto& [key, p] : {std::pair{"attn_dropout", c.attn_dropout}, std::pair{"ff_dropout", c.ff_dropout},
                               std::pair{"attn_layer_dropout", c.attn_layer_dropout},
                               std::pair{"reconstruction_attn_dropout", c.reconstruction_attn_dropout}})
    check_dropout(key, p);
  MNEMO_OPTION_CHECK(c.reconstruction_loss_weight >= 0, "reconstruction_loss_weight",
                     "must be >= 0, got " << c.reconstruction_loss_weight);
  // The reference detaches every memory it returns, so the task loss could not reach f_c.
  MNEMO_OPTION_CHECK(!(c.compressor_task_grad && c.reference_parity), "compressor_task_grad",
                     "cannot be combined with reference_parity (the reference detaches its memories)");
  return c;
}

// ---- sub-layers ------------------------------------------------------------------------------

namespace {

nn::GRUGateOptions gate_options(const CompressiveConfig& c) {
  return {.gate_bias_init = *c.gate_bias_init, .mogrify = c.mogrify_gru, .mogrifier = {}};  // rank D/4, no biases
}

nn::AttentionConfig attention_config(const CompressiveConfig& c) {
  return {.dim = c.dim, .heads = c.heads, .attn_dropout = c.attn_dropout, .out_dropout = c.attn_layer_dropout};
}

nn::Compressor make_compressor(nn::Init& init, const CompressiveConfig& c) {
  nn::Compressor f(init, c.dim, c.cmem_ratio);
  f.reference_parity = c.reference_parity;  // P3: pads by L mod c and drops the newest leftovers
  return f;
}

}  // namespace

GatedAttention::GatedAttention(nn::Init& init, const CompressiveConfig& c)
    : norm(init, c.dim), attn(init, attention_config(c)), compress(make_compressor(init, c)) {
  if (c.gru_gated_residual) gate.emplace(init, c.dim, gate_options(c));
}

void GatedAttention::visit(nn::ParamVisitor& v) {
  v.sub("fn.norm", norm);
  v.sub("fn.fn", attn);
  v.sub("fn.fn.compress_mem_fn.conv", compress);
  if (gate) gate->visit(v);  // "gru", "mogrify" beside "fn", as GRUGating names them
}

GatedFeedForward::GatedFeedForward(nn::Init& init, const CompressiveConfig& c)
    : norm(init, c.dim), fn(init, c.dim, 4, c.ff_dropout, c.ff_glu) {
  if (c.gru_gated_residual) gate.emplace(init, c.dim, gate_options(c));
}

Var GatedFeedForward::operator()(Var h) const {
  Var y = fn(norm(h));                  // (B, n, D)
  return gate ? (*gate)(h, y) : h + y;  // GRUCell(input = y, hidden = h) per token
}

void GatedFeedForward::visit(nn::ParamVisitor& v) {
  v.sub("fn.norm", norm);
  v.sub("fn.fn", fn);
  if (gate) gate->visit(v);
}

// ---- the model -------------------------------------------------------------------------------

CompressiveTransformer::CompressiveTransformer(nn::Init& init, CompressiveConfig c)
    : cfg(resolved(std::move(c))),
      emb(init, cfg.vocab, cfg.emb_dim, cfg.dim),
      // Distances 0 .. mem_len + cmem_len + T - 1 each get a row.
      rel(init, cfg.heads, cfg.seq_len + cfg.mem_len + cfg.cmem_len, cfg.dim / cfg.heads, cfg.reference_parity,
          cfg.seq_len),
      head(init, cfg.dim, cfg.emb_dim, cfg.vocab) {
  attn_layers.reserve(size_t(cfg.depth));
  ff_layers.reserve(size_t(cfg.depth));
  for (int64_t l = 0; l < cfg.depth; ++l) {
    attn_layers.emplace_back(init, cfg);
    ff_layers.emplace_back(init, cfg);
  }
  if (*cfg.final_norm) norm.emplace(init, cfg.dim);
  memory_slot_.assign(size_t(cfg.depth), -1);
  for (size_t j = 0; j < cfg.memory_layers.size(); ++j) memory_slot_[size_t(cfg.memory_layers[j] - 1)] = int64_t(j);
}

int64_t CompressiveTransformer::memory_source(int64_t j) const {
  const int64_t k = num_memory_layers();
  if (!cfg.enhanced_recurrence) return j;
  if (j + 1 < k) return j + 1;
  return cfg.reference_parity ? 0 : j;  // the top: P5 wraps around to the bottom layer
}

Memory CompressiveTransformer::initial_memory(int64_t batch) const {
  const DType dt = emb.token.weight.value.dtype();
  const Device dev = emb.token.weight.value.device();
  const int64_t k = num_memory_layers();
  return {{"mem", Tensor::zeros({k, batch, 0, cfg.dim}, dt, dev)}, {"cmem", Tensor::zeros({k, batch, 0, cfg.dim}, dt, dev)}};
}

namespace {

// (k, B, L, D) -> k Vars (B, L, D)
std::vector<Var> unstack(Var x) {
  std::vector<Var> out;
  for (int64_t j = 0; j < x.dim(0); ++j) out.push_back(reshape(slice(x, 0, j, 1), {x.dim(1), x.dim(2), x.dim(3)}));
  return out;
}

// k Vars (B, L, D), one L -> (k, B, L, D)
Var stack(const std::vector<Var>& xs) {
  std::vector<Var> parts;
  for (const Var& x : xs) parts.push_back(reshape(x, {1, x.dim(0), x.dim(1), x.dim(2)}));
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

}  // namespace

// The memories of one memory layer after a segment, and its reconstruction loss.
struct CompressiveTransformer::LayerMemory {
  Var mem, cmem, aux;  // (B, <= mem_len, D), (B, <= cmem_len, D), scalar or undefined
};

CompressiveTransformer::LayerMemory CompressiveTransformer::update_memory(const GatedAttention& a, Var mem, Var cmem,
                                                                          Var u) const {
  const auto sg = [&](Var x) { return cfg.stop_gradients ? stop_gradient(x) : x; };
  // [m'; e] = FIFO(m, u): u is the layer's normalised input, kept with its graph.
  const nn::FifoResult fifo = nn::fifo_push(mem, u, cfg.mem_len);
  LayerMemory out{.mem = fifo.kept, .cmem = cmem, .aux = {}};
  if (fifo.evicted.dim(1) == 0 || cfg.cmem_len == 0) return out;
  // The compressor sees the evicted slots as data: only the reconstruction loss trains it,
  // unless compressor_task_grad lets the task loss reach it through the compressed slots.
  Var compressed = a.compress(sg(fifo.evicted));  // (B, ceil(e / c), D)
  if (compressed.dim(1) == 0) return out;         // parity's padding rule can leave nothing (P3)
  out.cmem = nn::fifo_push(cmem, cfg.compressor_task_grad ? compressed : sg(compressed), cfg.cmem_len).kept;
  if (training && cfg.reconstruction_loss_weight > 0) {
    // P4: the reference reconstructs attention over the whole memory this layer read, not
    // over the slots that were compressed.
    Var target = cfg.reference_parity ? mem : fifo.evicted;
    out.aux = reconstruction_loss(a, u, target, compressed);
  }
  return out;
}

// || Attn(q, K(s), V(s)) - Attn(q, K(f_c(s)), V(f_c(s))) ||^2 averaged over (B, H, n, d), with
// q = SG(u) SG(W_q), K, V through SG(W_kv), and s = SG(target): the gradient reaches the
// compressed slots, hence the compressor, and nothing else. Plain softmax attention: no mask,
// no positions; the reconstruction dropout on both probability matrices.
Var CompressiveTransformer::reconstruction_loss(const GatedAttention& a, Var u, Var target, Var compressed) const {
  const auto sg = [&](Var x) { return cfg.stop_gradients ? stop_gradient(x) : x; };
  const ParamUse use = cfg.stop_gradients ? ParamUse::frozen : ParamUse::train;  // P1, without freezing W_kv
  const nn::MultiheadAttention& at = a.attn;
  const int64_t H = at.cfg.heads, d = at.cfg.dim_head;
  const int64_t halves[] = {H * d, H * d};
  const auto keys_values = [&](Var slots) {  // (B, L, D) -> k, v (B, H, L, d)
    std::vector<Var> kv = split(at.to_kv(slots, use), -1, halves);
    return std::pair{nn::split_heads(kv[0], H), nn::split_heads(kv[1], H)};
  };
  Var q = nn::split_heads(at.to_q(sg(u), use), H);  // (B, H, n, d)
  const auto [k_old, v_old] = keys_values(sg(target));
  const auto [k_new, v_new] = keys_values(compressed);
  Tape& tape = u.tape();
  const auto spec = [&] {
    AttentionSpec s{.scale = 1.0 / std::sqrt(double(d))};
    if (training && cfg.reconstruction_attn_dropout > 0) {
      s.dropout = cfg.reconstruction_attn_dropout;
      s.dropout_seed = tape.next_seed();
    }
    return s;
  };
  Var original = attention(q, k_old, v_old, spec());       // (B, H, n, d)
  Var reconstructed = attention(q, k_new, v_new, spec());  // (B, H, n, d)
  return mse_loss(original, reconstructed);
}

SegmentOut CompressiveTransformer::forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const {
  MNEMO_CHECK(tokens.rank() == 2 && tokens.dim(1) >= 1 && tokens.dim(1) <= cfg.seq_len,
              "[compressive] expected tokens (B, 1.." << cfg.seq_len << "), got " << tokens.shape());
  const int64_t B = tokens.dim(0), n = tokens.dim(1), D = cfg.dim, k = num_memory_layers();
  const double scale = 1.0 / std::sqrt(double(D / cfg.heads));  // content and relative logits alike

  // Incoming memories, one (B, L, D) per memory layer; absent names start empty.
  const Memory empty = initial_memory(B);
  const auto incoming = [&](const char* name) {
    const auto it = memory.find(name);
    Var x = it != memory.end() ? it->second : tape.constant(empty.at(name));
    MNEMO_CHECK(x.rank() == 4 && x.dim(0) == k && x.dim(1) == B && x.dim(3) == D,
                "[compressive] expected memory '" << name << "' (" << k << ", " << B << ", L, " << D << "), got "
                                                  << x.shape());
    return unstack(x);
  };
  const std::vector<Var> mem_in = incoming("mem"), cmem_in = incoming("cmem");
  const int64_t n_mem = mem_in[0].dim(1) + cmem_in[0].dim(1);  // slots in front of the tokens, every memory layer

  const bool full = n == cfg.seq_len;  // memories only change on full segments
  std::vector<Var> mem_out(static_cast<size_t>(k)), cmem_out = mem_out;
  Var aux;
  Var h = emb(tape, tokens);  // (B, n, D)
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const GatedAttention& a = attn_layers[size_t(l)];
    const int64_t j = memory_slot(l);
    Var u = a.norm(h);  // (B, n, D)
    Var mem, cmem;      // what this layer reads: (B, Lm, D), (B, Lc, D)
    nn::AttentionContext ctx{.causal = true};
    if (j >= 0) {
      const int64_t src = memory_source(j);
      mem = mem_in[size_t(src)], cmem = cmem_in[size_t(src)];
      if (n_mem > 0) ctx.memory = cmem.dim(1) == 0 ? mem : mem.dim(1) == 0 ? cmem : concat({cmem, mem}, 1);
    }
    if (dense_relative_term) {
      ctx.q_bias = [&](Var q, int64_t n_keys) {  // (B, H, n, n_keys)
        if (j >= 0 || !cfg.reference_parity || n_mem == 0) return rel(q, n_keys, scale);
        // The reference offsets a memory-less layer's rows by the model's memory length too (P2):
        // score as if the memories were there, keep the token columns.
        return slice(rel(q, n_mem + n_keys, scale), 3, n_mem, n_keys);
      };
    } else {  // (B, H, n, rows in use), read through the relative shift by the attention kernel
      ctx.q_band = [&](Var q, int64_t n_keys) {
        return nn::band_row_logits(tape.param(rel.weight), q, n_keys, relative_rows(q.dim(2), n_keys, n_mem), scale);
      };
    }
    Var y = a.attn(u, ctx).out;            // (B, n, D)
    h = a.gate ? (*a.gate)(h, y) : h + y;  // (B, n, D)
    if (j >= 0) {
      if (full) {
        LayerMemory m = update_memory(a, mem, cmem, u);
        mem_out[size_t(j)] = m.mem, cmem_out[size_t(j)] = m.cmem;
        if (m.aux.defined()) aux = aux.defined() ? aux + m.aux : m.aux;
      } else if (cfg.reference_parity) {  // the reference hands back what the layer read (rotated)
        mem_out[size_t(j)] = mem, cmem_out[size_t(j)] = cmem;
      } else {
        mem_out[size_t(j)] = mem_in[size_t(j)], cmem_out[size_t(j)] = cmem_in[size_t(j)];
      }
    }
    h = ff_layers[size_t(l)](h);  // (B, n, D)
  }

  SegmentOut out;
  out.logits = head(norm ? (*norm)(h) : h);  // (B, n, V)
  Var mem_next = stack(mem_out), cmem_next = stack(cmem_out);
  if (cfg.reference_parity && cfg.stop_gradients) mem_next = stop_gradient(mem_next), cmem_next = stop_gradient(cmem_next);
  out.memory = {{"mem", mem_next}, {"cmem", cmem_next}};
  if (aux.defined()) out.aux_loss = aux * (cfg.reconstruction_loss_weight / double(k));
  return out;
}

std::vector<int64_t> CompressiveTransformer::relative_rows(int64_t n, int64_t n_keys, int64_t n_memories) const {
  std::vector<int64_t> rows(size_t(n * n_keys));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < n_keys; ++c) rows[size_t(r * n_keys + c)] = rel.row(n_keys - n + r - c, n_memories);
  return rows;
}

// Keys per layer: [cm ; m ; u] in memory layers, [u] in the others.
std::vector<AttentionLayout> CompressiveTransformer::attention_layout(const Memory& memory, int64_t n) const {
  const auto slots = [&](const char* name) {  // (Lm, B, L, D): L
    const auto it = memory.find(name);
    return it == memory.end() ? int64_t(0) : it->second.dim(2);
  };
  const int64_t Lm = slots("mem"), Lc = slots("cmem");
  std::vector<AttentionLayout> calls;
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const bool reads = memory_slot(l) >= 0;
    calls.push_back({.name = "layer " + std::to_string(l),
                     .keys = {{"compressed", reads ? Lc : 0}, {"xl_cache", reads ? Lm : 0}, {"segment", n}},
                     .rows = n});
  }
  return calls;
}

void CompressiveTransformer::visit(nn::ParamVisitor& v) {
  v("pos_emb", rel.weight);
  v.sub("token_emb", emb.token);
  if (emb.to_model_dim) v.sub("to_model_dim", *emb.to_model_dim);
  for (size_t l = 0; l < attn_layers.size(); ++l) v.sub("attn_layers." + std::to_string(l), attn_layers[l]);
  for (size_t l = 0; l < ff_layers.size(); ++l) v.sub("ff_layers." + std::to_string(l), ff_layers[l]);
  if (norm) v.sub("norm", *norm);
  if (head.to_emb_dim) v.sub("to_logits.0", *head.to_emb_dim);
  v.sub("to_logits.1", head.to_logits);
}

// ---- gradient check: the whole model over 3 segments, every parameter a checked leaf ---------

namespace {

using gradcheck::Sample;

// T = 2, mem_len 3, c = 2, cmem_len 2: segment 2 evicts 1 slot (padded to 2, one compressed
// slot), segment 3 evicts 2; the relative table random so its gradient to q
// is non-trivial. No stop-gradients: finite differences see every path, the reconstruction
// loss's included (the stop-gradients have their own tests).
CompressiveTransformer& checked_model(Sample& s, bool gated) {
  return s.once<CompressiveTransformer>(
      [&] {
        nn::Init init(4321, DType::f64);
        CompressiveConfig c{.vocab = 5, .dim = 4, .depth = 2, .heads = 2, .seq_len = 2};
        c.mem_len = 3, c.cmem_len = 2, c.cmem_ratio = 2;
        c.gru_gated_residual = gated, c.gate_bias_init = 0.5;  // the Mogrifier has its own layer check
        c.stop_gradients = false;
        if (!gated) c.memory_layers = {2}, c.emb_dim = 3;  // a layer without memory; factorised embedding
        auto m = std::make_shared<CompressiveTransformer>(init, c);
        Rng rng(99);
        m->rel.weight.value = Tensor::randn(m->rel.weight.value.shape(), rng, DType::f64, 0.5);
        return m;
      },
      [](CompressiveTransformer& m) { return nn::params(m); });
}

Var three_segments(Sample& s, CompressiveTransformer& m) {
  MemoryVars mem;
  for (auto& [name, t] : m.initial_memory(2)) mem[name] = s.tape().constant(t);
  std::vector<Var> outs;
  for (int seg = 0; seg < 3; ++seg) {
    SegmentOut o = m.forward(s.tape(), s.indices({2, 2}, 5), mem);
    outs.push_back(reshape(o.logits, {o.logits.value().numel()}));
    if (o.aux_loss.defined()) outs.push_back(reshape(o.aux_loss * 10.0, {1}));  // the reconstruction loss, seg 2 on
    mem = o.memory;  // threaded as Vars: the gradient flows back through the memories
  }
  return concat(outs, 0);
}

MNEMO_GRADCHECK("arch.compressive.three_segments", [](Sample& s) { return three_segments(s, checked_model(s, true)); });
MNEMO_GRADCHECK("arch.compressive.three_segments.residual",
                [](Sample& s) { return three_segments(s, checked_model(s, false)); });

}  // namespace

}  // namespace mnemo::arch
