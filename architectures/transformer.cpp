#include "architectures/transformer.h"

#include <cmath>
#include <memory>

#include "autograd/gradcheck/gradcheck.h"
#include "layers/memory_ops.h"

namespace mnemo::arch {

TransformerConfig resolved(TransformerConfig c, bool xl) {
  MNEMO_CHECK(c.vocab > 0 && c.dim > 0 && c.depth > 0 && c.heads > 0 && c.seq_len > 0,
              "[transformer] vocab, dim, depth, heads and seq_len must be > 0");
  MNEMO_CHECK(c.dim % c.heads == 0, "[transformer] dim " << c.dim << " must divide by heads " << c.heads);
  MNEMO_CHECK(c.pre_norm, "[transformer] only pre_norm = true is implemented");
  MNEMO_OPTION_CHECK(c.ff_mult > 0, "ff_mult", "must be > 0, got " << c.ff_mult);
  check_dropout("dropout", c.dropout);
  if (xl && c.mem_len == 0) c.mem_len = c.seq_len;
  MNEMO_OPTION_CHECK(!xl || c.mem_len > 0, "mem_len", "must be > 0, got " << c.mem_len);
  MNEMO_CHECK(xl || c.mem_len == 0, "[transformer] a plain transformer has no memory; got mem_len " << c.mem_len);
  return c;
}

namespace {


nn::AttentionConfig attention_config(const TransformerConfig& c) {
  return {.dim = c.dim, .heads = c.heads, .attn_dropout = c.dropout, .out_dropout = c.dropout};
}

// h <- h + Attn(LN(h) | ctx);  h <- h + FF(LN(h)). u = LN(h) is handed to `ctx_of`, which builds
// the attention context from it (XL stores u as next segment's memory).
template <class MakeContext>
Var block_forward(const TransformerBlock& b, Var h, MakeContext&& ctx_of) {
  Var u = b.attn_norm(h);                        // (B, T, D) the layer's normalised input
  h = h + b.attn(u, ctx_of(u)).out;              // (B, T, D)
  return h + b.ff(b.ff_norm(h));                 // (B, T, D)
}

}  // namespace

TransformerBlock::TransformerBlock(nn::Init& init, const TransformerConfig& c, bool relative)
    : attn_norm(init, c.dim),
      attn(init, attention_config(c)),
      ff_norm(init, c.dim),
      ff(init, c.dim, c.ff_mult, c.dropout) {
  // Distances 0 .. mem_len + T - 1 each get a row of R (H, T + mem_len, d).
  if (relative) rel_pos.emplace(init, c.heads, c.seq_len + c.mem_len, c.dim / c.heads);
}

void TransformerBlock::visit(nn::ParamVisitor& v) {
  v.sub("attn_norm", attn_norm);
  v.sub("attn", attn);
  if (rel_pos) v.sub("rel_pos", *rel_pos);
  v.sub("ff_norm", ff_norm);
  v.sub("ff", ff);
}

// ---- Transformer ---------------------------------------------------------------------------

Transformer::Transformer(nn::Init& init, TransformerConfig c)
    : cfg(resolved(c, false)),
      token_emb(init, cfg.vocab, cfg.dim),
      pos_emb(init, cfg.seq_len, cfg.dim),
      emb_drop(cfg.dropout),
      norm(init, cfg.dim),
      to_logits(init, cfg.dim, cfg.vocab, false) {
  layers.reserve(size_t(cfg.depth));
  for (int64_t l = 0; l < cfg.depth; ++l) layers.emplace_back(init, cfg, false);
}

Memory Transformer::initial_memory(int64_t) const { return {}; }

SegmentOut Transformer::forward(Tape& tape, const Tensor& tokens, const MemoryVars&) const {
  MNEMO_CHECK(tokens.rank() == 2 && tokens.dim(1) <= cfg.seq_len,
              "[transformer] expected tokens (B, T <= " << cfg.seq_len << "), got " << tokens.shape());
  const int64_t B = tokens.dim(0), T = tokens.dim(1), D = cfg.dim;
  Var pos = reshape(pos_emb(tape, T), {1, T, D});                                  // (1, T, D) restarts at 0
  Var h = emb_drop(token_emb(tape, tokens) + broadcast_to(pos, {B, T, D}));        // (B, T, D)
  for (const TransformerBlock& b : layers)
    h = block_forward(b, h, [](Var) { return nn::AttentionContext{.causal = true}; });
  return {to_logits(norm(h)), {}};                                                 // (B, T, V)
}

// Keys per layer: the segment's tokens only.
std::vector<AttentionLayout> Transformer::attention_layout(const Memory&, int64_t T) const {
  std::vector<AttentionLayout> calls;
  for (int64_t l = 0; l < cfg.depth; ++l)
    calls.push_back({.name = "layer " + std::to_string(l), .keys = {{"segment", T}}, .rows = T});
  return calls;
}

void Transformer::visit(nn::ParamVisitor& v) {
  v.sub("token_emb", token_emb);
  v.sub("pos_emb", pos_emb);
  v.sub("emb_drop", emb_drop);  // no params; visited so train()/eval() reach its flag
  for (size_t l = 0; l < layers.size(); ++l) v.sub("layers." + std::to_string(l), layers[l]);
  v.sub("norm", norm);
  v.sub("to_logits", to_logits);
}

// ---- TransformerXL -------------------------------------------------------------------------

TransformerXL::TransformerXL(nn::Init& init, TransformerConfig c)
    : cfg(resolved(c, true)),
      token_emb(init, cfg.vocab, cfg.dim),
      emb_drop(cfg.dropout),
      norm(init, cfg.dim),
      to_logits(init, cfg.dim, cfg.vocab, false) {
  layers.reserve(size_t(cfg.depth));
  for (int64_t l = 0; l < cfg.depth; ++l) layers.emplace_back(init, cfg, true);
}

Memory TransformerXL::initial_memory(int64_t batch) const {
  Memory m;
  for (int64_t l = 0; l < cfg.depth; ++l)
    m[memory_name(l)] = Tensor::zeros({batch, 0, cfg.dim}, token_emb.weight.value.dtype(), token_emb.weight.value.device());  // (B, 0, D)
  return m;
}

SegmentOut TransformerXL::forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const {
  MNEMO_CHECK(tokens.rank() == 2 && tokens.dim(1) <= cfg.seq_len,
              "[transformer_xl] expected tokens (B, T <= " << cfg.seq_len << "), got " << tokens.shape());
  const int64_t B = tokens.dim(0), D = cfg.dim, d = cfg.dim / cfg.heads;
  const double scale = 1.0 / std::sqrt(double(d));  // the content logits' scale, shared by q R
  Var h = emb_drop(token_emb(tape, tokens));          // (B, T, D) no absolute positions
  SegmentOut out;
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const TransformerBlock& b = layers[size_t(l)];
    const auto it = memory.find(memory_name(l));
    Var mem = it == memory.end() ? Var{} : it->second;  // (B, M, D), M <= mem_len; may be absent
    MNEMO_CHECK(!mem.defined() || (mem.rank() == 3 && mem.dim(0) == B && mem.dim(2) == D),
                "[transformer_xl] expected " << memory_name(l) << " (" << B << ", M, " << D << "), got "
                                             << mem.shape());
    const bool has_mem = mem.defined() && mem.dim(1) > 0;
    h = block_forward(b, h, [&](Var u) {
      // m_{tau+1} = last mem_len of [m_tau; u_tau]: the FIFO keeps the graph, so gradient
      // reaches this segment from the next one unless the trainer cuts it.
      out.memory[memory_name(l)] = nn::fifo_push(mem, u, cfg.mem_len).kept;  // (B, min(M + T, mem_len), D)
      const nn::RelativePositionTable& R = *b.rel_pos;
      nn::AttentionContext ctx{
          .memory = has_mem ? mem : Var{},  // re-projected by this layer's current W_kv
          .causal = true,                   // bottom-right: every memory, tokens up to i
      };
      if (dense_relative_term)
        ctx.q_bias = [&R, scale](Var q, int64_t n_keys) { return R(q, n_keys, scale); };  // (B, H, T, M + T)
      else  // (B, H, T, rows in use), read through the relative shift by the attention kernel
        ctx.q_band = [&R, scale](Var q, int64_t n_keys) { return R.band(q, n_keys, scale); };
      return ctx;
    });
  }
  out.logits = to_logits(norm(h));  // (B, T, V)
  return out;
}

// Keys per layer: [m^{l-1}_tau ; u^{l-1}_tau].
std::vector<AttentionLayout> TransformerXL::attention_layout(const Memory& memory, int64_t T) const {
  std::vector<AttentionLayout> calls;
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const auto it = memory.find(memory_name(l));
    const int64_t M = it == memory.end() ? 0 : it->second.dim(1);
    calls.push_back({.name = "layer " + std::to_string(l), .keys = {{"xl_cache", M}, {"segment", T}}, .rows = T});
  }
  return calls;
}

void TransformerXL::visit(nn::ParamVisitor& v) {
  v.sub("token_emb", token_emb);
  v.sub("emb_drop", emb_drop);
  for (size_t l = 0; l < layers.size(); ++l) v.sub("layers." + std::to_string(l), layers[l]);
  v.sub("norm", norm);
  v.sub("to_logits", to_logits);
}

// ---- gradient checks: whole models, every parameter a checked leaf -------------------------

namespace {

using gradcheck::Sample;

template <class M>
M& checked_model(Sample& s, TransformerConfig c) {
  return s.once<M>(
      [&] {
        nn::Init init(1234, DType::f64);
        auto m = std::make_shared<M>(init, c);
        // R starts at zero; random rows make the relative path's gradient to q non-trivial.
        Rng rng(99);
        for (TransformerBlock& b : m->layers)
          if (b.rel_pos) b.rel_pos->weight.value = Tensor::randn(b.rel_pos->weight.value.shape(), rng, DType::f64, 0.5);
        return m;
      },
      [](M& m) { return nn::params(m); });
}

const TransformerConfig kTiny{.vocab = 7, .dim = 8, .depth = 2, .heads = 2, .seq_len = 3};

MNEMO_GRADCHECK("arch.transformer", [](Sample& s) {
  Transformer& m = checked_model<Transformer>(s, kTiny);
  const Tensor tokens = s.indices({2, 3}, 7), targets = s.indices({2, 3}, 7);
  SegmentOut o = m.forward(s.tape(), tokens, {});
  return cross_entropy(o.logits, targets);  // the loss the trainer takes, on one segment
});

MNEMO_GRADCHECK("arch.transformer_xl.two_segments", [](Sample& s) {
  TransformerConfig c = kTiny;
  c.mem_len = 2;  // < T: segment 1's memory already evicts, segment 2 sees 2 memories + 3 tokens
  TransformerXL& m = checked_model<TransformerXL>(s, c);
  const Tensor x1 = s.indices({2, 3}, 7), x2 = s.indices({2, 3}, 7);
  MemoryVars mem;
  for (auto& [name, t] : m.initial_memory(2)) mem[name] = s.tape().constant(t);
  SegmentOut o1 = m.forward(s.tape(), x1, mem);
  // segment 2 reads segment 1's memory as Vars: gradient flows back through it
  return m.forward(s.tape(), x2, o1.memory).logits;  // (2, 3, 7)
});

}  // namespace

}  // namespace mnemo::arch
