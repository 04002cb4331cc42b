#include "architectures/brt.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "architectures/brt_memory.h"
#include "layers/attention.h"

namespace mnemo::arch {

BrtConfig resolved(BrtConfig c) {
  MNEMO_CHECK(c.vocab > 0 && c.dim > 0 && c.depth > 0 && c.heads > 0 && c.seq_len > 0,
              "[brt] vocab, dim, depth, heads and seq_len must be > 0");
  if (c.dim_head == 0) c.dim_head = default_dim_head(c.dim, c.heads);
  MNEMO_OPTION_CHECK(c.dim_head > 0 && c.dim_head % 2 == 0, "dim_head", "must be even and > 0 (rotary), got " << c.dim_head);
  if (c.block_width == 0) c.block_width = c.seq_len % 2 == 0 ? c.seq_len / 2 : c.seq_len;
  MNEMO_OPTION_CHECK(c.block_width > 0, "block_width", "must be > 0, got " << c.block_width);
  MNEMO_OPTION_CHECK(c.seq_len % c.block_width == 0, "block_width",
                     "must divide data.segment_len = " << c.seq_len << ", got " << c.block_width);
  if (c.num_state_vectors == 0) c.num_state_vectors = c.block_width;
  MNEMO_OPTION_CHECK(c.num_state_vectors > 0, "num_state_vectors", "must be > 0, got " << c.num_state_vectors);
  MNEMO_OPTION_CHECK(c.ema_gate_init > 0 && c.ema_gate_init < 1, "ema_gate_init",
                     "must be in (0, 1) (the state gate's initial value), got " << c.ema_gate_init);
  if (c.recurrent_layers.empty()) c.recurrent_layers = {std::max<int64_t>(c.depth / 2, 1)};
  if (c.read_recurrent_layers.empty()) c.read_recurrent_layers = c.recurrent_layers;
  MNEMO_OPTION_CHECK(c.read_recurrent_layers.size() == c.recurrent_layers.size(), "read_recurrent_layers",
                     "needs one entry per recurrent layer (" << c.recurrent_layers.size() << "), got "
                                                              << c.read_recurrent_layers.size());
  std::set<int64_t> seen;
  for (size_t i = 0; i < c.recurrent_layers.size(); ++i) {
    const int64_t w = c.recurrent_layers[i], r = c.read_recurrent_layers[i];
    MNEMO_OPTION_CHECK(w >= 1 && w <= c.depth, "recurrent_layers",
                       "layers are 1-based in 1.." << c.depth << ", got " << w);
    MNEMO_OPTION_CHECK(r >= 1 && r <= c.depth, "read_recurrent_layers",
                       "layers are 1-based in 1.." << c.depth << ", got " << r);
    MNEMO_OPTION_CHECK(r <= w, "read_recurrent_layers",
                       "a state is read at or below the layer that writes it, got read " << r << " > write " << w);
    MNEMO_OPTION_CHECK(seen.insert(w).second, "recurrent_layers", "layer " << w << " is listed twice");
  }
  MNEMO_OPTION_CHECK(c.ff_mult > 0, "ff_mult", "must be > 0, got " << c.ff_mult);
  check_dropout("ff_dropout", c.ff_dropout);
  MNEMO_OPTION_CHECK(!(c.reference_parity && c.ff_dropout > 0), "ff_dropout",
                     "the reference has no feed-forward dropout; reference_parity needs 0, got " << c.ff_dropout);
  MNEMO_OPTION_CHECK(c.qk_rmsnorm_scale > 0, "qk_rmsnorm_scale", "must be > 0, got " << c.qk_rmsnorm_scale);
  MNEMO_OPTION_CHECK(c.compressed_mem_factor >= 1, "compressed_mem_factor", "must be >= 1, got " << c.compressed_mem_factor);
  MNEMO_OPTION_CHECK(!c.use_compressed_mem || c.block_width >= 2, "use_compressed_mem", "needs block_width >= 2");
  MNEMO_OPTION_CHECK(c.rotary_theta > 0, "rotary_theta", "must be > 0, got " << c.rotary_theta);
  MNEMO_OPTION_CHECK(c.xpos_scale_base > 0, "xpos_scale_base", "must be > 0, got " << c.xpos_scale_base);
  return c;
}

namespace {


// (B, N, 2d) [k | v] -> k, v (B, 1, N, d): the single shared key/value head.
std::pair<Var, Var> split_kv(Var kv) {
  const int64_t B = kv.dim(0), N = kv.dim(1), d = kv.dim(2) / 2;
  const int64_t halves[] = {d, d};
  std::vector<Var> p = split(reshape(kv, {B, 1, N, 2 * d}), -1, halves);
  return {p[0], p[1]};
}

// (S, H d) or (B, S, H d) -> (B, H, S, d): state queries, broadcast over the batch (P4).
Var state_heads(Var x, int64_t heads, int64_t batch) {
  if (x.rank() == 3) return nn::split_heads(x, heads);
  Var h = nn::split_heads(reshape(x, {1, x.dim(0), x.dim(1)}), heads);  // (1, H, S, d)
  return broadcast_to(h, {batch, h.dim(1), h.dim(2), h.dim(3)});
}

std::vector<int64_t> iota_from(int64_t start, int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

}  // namespace

// ---- BrtAttend -------------------------------------------------------------------------------

BrtAttend::BrtAttend(nn::Init& init, int64_t d, bool qkn, double scale) : qk_norm(qkn), logit_scale(scale) {
  if (qk_norm) {
    q_scale = init.ones({d});
    k_scale = init.ones({d});
  }
}

std::pair<Var, Var> BrtAttend::normalize(Var q, Var k) const {
  if (!qk_norm) return {q, k};
  Tape& t = q.tape();
  return {l2_normalize(q) * t.param(q_scale), l2_normalize(k) * t.param(k_scale)};
}

Var BrtAttend::operator()(Var q, Var k, Var v) const {
  std::tie(q, k) = normalize(q, k);
  return attention(q, k, v, {.scale = logit_scale});  // every state / token visible: no mask
}

void BrtAttend::visit(nn::ParamVisitor& v) {
  if (!qk_norm) return;
  v("q_scale", q_scale);
  v("k_scale", k_scale);
}

// ---- BrtStateContainer -----------------------------------------------------------------------

BrtStateContainer::BrtStateContainer(nn::Init& init, const BrtConfig& c, int64_t d, double scale)
    : heads(c.heads),
      dim_head(d),
      state_norm(init, c.dim, nn::LayerNorm::Affine::gain_only),
      q_to_state(init, c.dim, c.heads * d, false),
      q_from_state(init, c.dim, c.heads * d, false),
      state_to_q(init, c.dim, c.heads * d, false),
      state_to_kv(init, c.dim, 2 * d, false),
      to_state_out(init, 2 * c.heads * d, c.dim, false),
      state_out_to_gate(init, c.dim, c.dim, true),
      to_state_cross_attn(init, d, true, scale),
      state_self_attn(init, d, true, scale),
      from_state_cross_attn(init, d, true, scale),
      gate(init, c.dim, c.ema_gate_init),
      init_state(init.normal({c.num_state_vectors, c.dim}, 0.1)),
      state_pos_ids(init.normal({c.num_state_vectors, c.dim}, 1.0)) {}

BrtStateContainer::Prepared BrtStateContainer::prepare(Var s, int64_t B) const {
  Prepared p{.s = s};
  // the position ids are added after the norm, so they keep unit scale
  p.sn = state_norm(s) + s.tape().param(state_pos_ids);  // (S, D) or (B, S, D)
  Var kv = state_to_kv(p.sn);                             // (..., S, 2d)
  if (kv.rank() == 2) kv = broadcast_to(reshape(kv, {1, kv.dim(0), kv.dim(1)}), {B, kv.dim(0), kv.dim(1)});
  std::tie(p.ks, p.vs) = split_kv(kv);                    // (B, 1, S, d)
  return p;
}

Var BrtStateContainer::read(const Prepared& p, Var xn) const {
  Var q = nn::split_heads(q_to_state(xn), heads);             // (B, H, n, d) tokens ask the states
  return nn::merge_heads(to_state_cross_attn(q, p.ks, p.vs));  // (B, n, H d), no mask, no rotary
}

Var BrtStateContainer::write(const Prepared& p, Var k_blk, Var v_blk) const {
  const int64_t B = k_blk.dim(0);
  Var q_self = state_heads(state_to_q(p.sn), heads, B);    // (B, H, S, d)
  Var q_from = state_heads(q_from_state(p.sn), heads, B);  // (B, H, S, d)
  Var a = state_self_attn(q_self, p.ks, p.vs);             // (B, H, S, d) states attend to states
  Var b = from_state_cross_attn(q_from, k_blk, v_blk);     // (B, H, S, d) ... and to this block's tokens
  Var y = to_state_out(nn::merge_heads(concat({a, b}, -1)));  // (B, S, D), per head [a_h, b_h]
  Var z = state_out_to_gate(y);                               // (B, S, D)
  Var s = p.s.rank() == 2 ? broadcast_to(p.s, z.shape()) : p.s;
  return gate(s, z);                                          // g z + (1 - g) s
}

void BrtStateContainer::visit(nn::ParamVisitor& v) {
  v("init_state", init_state);
  v("state_pos_ids", state_pos_ids);
  v("learned_ema_beta", gate.learned_ema_beta);  // the reference's name, at container level
  v.sub("state_norm", state_norm);
  v.sub("q_to_state", q_to_state);
  v.sub("q_from_state", q_from_state);
  v.sub("state_to_q", state_to_q);
  v.sub("state_to_kv", state_to_kv);
  v.sub("to_state_out", to_state_out);
  v.sub("to_state_cross_attn", to_state_cross_attn);
  v.sub("state_self_attn", state_self_attn);
  v.sub("from_state_cross_attn", from_state_cross_attn);
  v.sub("state_out_to_gate", state_out_to_gate);
}

// ---- BrtLayer ------------------------------------------------------------------------------

namespace {
double logit_scale(const BrtConfig& c, bool qk_norm) {
  // P1: the reference computes the QK-norm scale but its kernel always uses 1/sqrt(d)
  return qk_norm && !c.reference_parity ? c.qk_rmsnorm_scale : 1.0 / std::sqrt(double(c.dim_head));
}
}  // namespace

BrtLayer::BrtLayer(nn::Init& init, const BrtConfig& c, bool qk_norm, bool writes, int64_t reads)
    : norm(init, c.dim, nn::LayerNorm::Affine::gain_only),
      to_q(init, c.dim, c.heads * c.dim_head, false),
      to_kv(init, c.dim, 2 * c.dim_head, false),
      to_out(init, c.heads * c.dim_head * (1 + reads), c.dim, false),
      attn(init, c.dim_head, qk_norm, logit_scale(c, qk_norm)),
      ff(init, c.dim, c.ff_mult, nn::GegluFeedForward::Norm::layer_norm, c.ff_dropout) {
  if (writes) state.emplace(init, c, c.dim_head, logit_scale(c, qk_norm));
  if (c.use_compressed_mem) {
    mem_compress.emplace(init, 2 * c.dim_head, c.compressed_mem_factor, 2, true);
    mem_compress->drop_remainder = true;  // the oldest E mod c evicted slots are dropped
  }
}

void BrtLayer::visit(nn::ParamVisitor& v) {
  v.sub("attn.norm", norm);
  v.sub("attn.to_q", to_q);
  v.sub("attn.to_kv", to_kv);
  v.sub("attn", attn);
  v.sub("attn.to_out", to_out);
  if (state) v.sub("attn.state", *state);
  v.sub("ff", ff);
  if (mem_compress) v.sub("mem_compress", *mem_compress);
}

// ---- BlockRecurrentTransformer ---------------------------------------------------------------

BlockRecurrentTransformer::BlockRecurrentTransformer(nn::Init& init, BrtConfig c)
    : cfg(resolved(std::move(c))),
      token_emb(init, cfg.vocab, cfg.dim),
      norm(init, cfg.dim, nn::LayerNorm::Affine::gain_only),
      to_logits(init, cfg.dim, cfg.vocab, false),
      rotary(init, cfg.dim_head, cfg.rotary_theta, true, cfg.xpos_scale_base, rotary_width()) {
  // states in ascending write-layer order (the order the reference lists them in)
  std::vector<size_t> order(cfg.recurrent_layers.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cfg.recurrent_layers[a] < cfg.recurrent_layers[b]; });
  reads_at.resize(size_t(cfg.depth));
  for (size_t i : order) {
    write_layer.push_back(cfg.recurrent_layers[i] - 1);
    read_layer.push_back(cfg.read_recurrent_layers[i] - 1);
    reads_at[size_t(read_layer.back())].push_back(int64_t(write_layer.size()) - 1);
  }
  layers.reserve(size_t(cfg.depth));
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const bool writes = std::count(write_layer.begin(), write_layer.end(), l) > 0;
    layers.emplace_back(init, cfg, cfg.all_layers_qk_rmsnorm || writes, writes, int64_t(reads_at[size_t(l)].size()));
  }
}

Memory BlockRecurrentTransformer::initial_memory(int64_t B) const {
  const DType dt = token_emb.weight.value.dtype();
  const Device dev = token_emb.weight.value.device();
  Memory m;
  for (int64_t l = 0; l < cfg.depth; ++l) {
    m[xl_name(l)] = Tensor::zeros({B, 0, 2 * cfg.dim_head}, dt, dev);
    if (cfg.use_compressed_mem) m[xlc_name(l)] = Tensor::zeros({B, 0, 2 * cfg.dim_head}, dt, dev);
  }
  // empty: the first block reads the learned, batch-free init_state (P4)
  for (size_t i = 0; i < write_layer.size(); ++i) m[state_name(int64_t(i))] = Tensor::zeros({B, 0, cfg.dim}, dt, dev);
  return m;
}

BlockRecurrentTransformer::Carry BlockRecurrentTransformer::carry_in(Tape& tape, const MemoryVars& memory,
                                                                     int64_t B) const {
  const auto non_empty = [&](const std::string& name, int64_t width, int64_t max_len) -> Var {
    const auto it = memory.find(name);
    if (it == memory.end() || it->second.dim(1) == 0) return {};
    const Var& v = it->second;
    MNEMO_CHECK(v.rank() == 3 && v.dim(0) == B && v.dim(1) <= max_len && v.dim(2) == width,
                "[brt] expected memory " << name << " (" << B << ", <= " << max_len << ", " << width << "), got "
                                         << v.shape());
    return v;
  };
  Carry c;
  for (int64_t l = 0; l < cfg.depth; ++l) {
    c.xl.push_back(non_empty(xl_name(l), 2 * cfg.dim_head, cfg.block_width));
    c.xlc.push_back(cfg.use_compressed_mem ? non_empty(xlc_name(l), 2 * cfg.dim_head, cfg.block_width / 2) : Var{});
  }
  for (size_t i = 0; i < write_layer.size(); ++i) {
    Var s = non_empty(state_name(int64_t(i)), cfg.dim, cfg.num_state_vectors);
    MNEMO_CHECK(!s.defined() || s.dim(1) == cfg.num_state_vectors,
                "[brt] expected " << state_name(int64_t(i)) << " with " << cfg.num_state_vectors << " states, got "
                                  << s.shape());
    c.states.push_back(s.defined() ? s : tape.param(layers[size_t(write_layer[i])].state->init_state));
  }
  return c;
}

MemoryVars BlockRecurrentTransformer::carry_out(Tape& tape, const Carry& c, int64_t B) const {
  const DType dt = token_emb.weight.value.dtype();
  const Device dev = token_emb.weight.value.device();
  const auto or_empty = [&](const Var& v, int64_t width) {
    return v.defined() && v.rank() == 3 ? v : tape.constant(Tensor::zeros({B, 0, width}, dt, dev));
  };
  MemoryVars m;
  for (int64_t l = 0; l < cfg.depth; ++l) {
    m[xl_name(l)] = or_empty(c.xl[size_t(l)], 2 * cfg.dim_head);
    if (cfg.use_compressed_mem) m[xlc_name(l)] = or_empty(c.xlc[size_t(l)], 2 * cfg.dim_head);
  }
  for (size_t i = 0; i < c.states.size(); ++i) m[state_name(int64_t(i))] = or_empty(c.states[i], cfg.dim);
  return m;
}

std::vector<BrtStateContainer::Prepared> BlockRecurrentTransformer::prepare_states(const Carry& c, int64_t B) const {
  std::vector<BrtStateContainer::Prepared> p;
  for (size_t i = 0; i < write_layer.size(); ++i) p.push_back(layers[size_t(write_layer[i])].state->prepare(c.states[i], B));
  return p;
}

Var BlockRecurrentTransformer::layer_forward(int64_t l, Var x, const Carry& c, Var cached, int64_t j0,
                                             int64_t block_len, const std::vector<BrtStateContainer::Prepared>& prep,
                                             Var* kv_out) const {
  const BrtLayer& L = layers[size_t(l)];
  const int64_t n = x.dim(1);
  Var xn = L.norm(x);                                  // (B, n, D)
  Var q = nn::split_heads(L.to_q(xn), cfg.heads);      // (B, H, n, d)
  Var kv = L.to_kv(xn);                                // (B, n, 2d): unrotated, the next XL memory (P2)
  *kv_out = kv;
  // keys/values: [compressed memory; memory; this block's earlier tokens; this chunk]
  std::vector<Var> parts;
  for (const Var& p : {c.xlc[size_t(l)], c.xl[size_t(l)], cached})
    if (p.defined() && p.dim(1) > 0) parts.push_back(p);
  parts.push_back(kv);
  Var all = parts.size() == 1 ? kv : concat(parts, 1);  // (B, P + n, 2d)
  const int64_t P = all.dim(1) - n;                      // visible to every query of the chunk
  auto [k, v] = split_kv(all);                           // (B, 1, P + n, d)
  std::tie(q, k) = L.attn.normalize(q, k);
  // Block token j sits at pos0 + j, memory slots just before it. The reference right-aligns a
  // partial block (pos0 = Wr - m); by default its tokens keep the positions they have in a
  // full block, so a block's prefix computes the same whatever follows it (P3, generation).
  const int64_t pos0 = rotary_width() - (cfg.reference_parity ? block_len : cfg.block_width);
  const std::vector<int64_t> q_pos = iota_from(pos0 + j0, n), k_pos = iota_from(pos0 + j0 - P, P + n);
  std::tie(q, k) = rotary(q, k, q_pos, k_pos);
  // bottom-right causal (P5): every memory and cached key visible, the chunk causally
  Var o = nn::merge_heads(attention(q, k, v, {.scale = L.attn.logit_scale, .prefix = P, .causal = true}));
  std::vector<Var> outs{o};                            // (B, n, H d) each
  for (int64_t i : reads_at[size_t(l)]) outs.push_back(layers[size_t(write_layer[size_t(i)])].state->read(prep[size_t(i)], xn));
  x = x + L.to_out(outs.size() == 1 ? o : concat(outs, -1));  // (B, n, D)
  return x + L.ff(x);
}

void BlockRecurrentTransformer::end_block(Carry& c, const std::vector<Var>& kv,
                                          const std::vector<BrtStateContainer::Prepared>& prep) const {
  for (size_t i = 0; i < write_layer.size(); ++i) {
    auto [k, v] = split_kv(kv[size_t(write_layer[i])]);  // (B, 1, m, d): this block's keys only
    c.states[i] = layers[size_t(write_layer[i])].state->write(prep[i], k, v);  // (B, S, D), also after a partial block
  }
  if (kv.at(0).dim(1) != cfg.block_width) return;  // P3: a partial block does not enter the XL memory
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const BrtLayer& L = layers[size_t(l)];
    BrtMemory m = brt_push_memory(c.xl[size_t(l)], c.xlc[size_t(l)], kv[size_t(l)], cfg.block_width,
                                  L.mem_compress ? &*L.mem_compress : nullptr);
    c.xl[size_t(l)] = m.xl;
    c.xlc[size_t(l)] = m.xlc;
  }
}

SegmentOut BlockRecurrentTransformer::forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const {
  MNEMO_CHECK(tokens.rank() == 2 && tokens.dim(1) >= 1 && tokens.dim(1) <= cfg.seq_len,
              "[brt] expected tokens (B, 1 <= T <= " << cfg.seq_len << "), got " << tokens.shape());
  const int64_t B = tokens.dim(0), T = tokens.dim(1), W = cfg.block_width;
  Carry c = carry_in(tape, memory, B);
  Var x = token_emb(tape, tokens);  // (B, T, D)
  std::vector<Var> out;
  for (int64_t t0 = 0; t0 < T; t0 += W) {  // block by block: states and memories advance per block
    const int64_t m = std::min(W, T - t0);
    Var h = m == T ? x : slice(x, 1, t0, m);  // (B, m, D)
    const std::vector<BrtStateContainer::Prepared> prep = prepare_states(c, B);
    std::vector<Var> kv(size_t(cfg.depth));
    for (int64_t l = 0; l < cfg.depth; ++l) h = layer_forward(l, h, c, Var{}, 0, m, prep, &kv[size_t(l)]);
    end_block(c, kv, prep);
    out.push_back(h);
  }
  Var h = out.size() == 1 ? out[0] : concat(out, 1);  // (B, T, D)
  return {logits(h), carry_out(tape, c, B)};          // logits (B, T, V)
}

// Per block of m tokens at t0: each layer's self-attention over [compressed m ; memory m ; block]
// and its state reads (keys: the S states); after the block each write layer's state attends to
// the states and to the block (state queries). The memories advance as brt_push_memory does.
std::vector<AttentionLayout> BlockRecurrentTransformer::attention_layout(const Memory& memory, int64_t T) const {
  const int64_t W = cfg.block_width, S = cfg.num_state_vectors;
  std::vector<int64_t> xl(size_t(cfg.depth)), xlc(size_t(cfg.depth));
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const auto xl_it = memory.find(xl_name(l)), xlc_it = memory.find(xlc_name(l));
    xl[size_t(l)] = xl_it == memory.end() ? 0 : xl_it->second.dim(1);
    xlc[size_t(l)] = cfg.use_compressed_mem && xlc_it != memory.end() ? xlc_it->second.dim(1) : 0;
  }
  std::vector<AttentionLayout> calls;
  for (int64_t t0 = 0; t0 < T; t0 += W) {
    const int64_t m = std::min(W, T - t0);
    for (int64_t l = 0; l < cfg.depth; ++l) {
      const std::string name = "layer " + std::to_string(l);
      calls.push_back({.name = name, .keys = {{"compressed", xlc[size_t(l)]}, {"xl_cache", xl[size_t(l)]}, {"segment", m}},
                       .rows = m, .pos0 = t0});
      for (int64_t i : reads_at[size_t(l)])
        calls.push_back({.name = name + " state " + std::to_string(i) + " read", .keys = {{"state", S}}, .rows = m,
                         .pos0 = t0});
    }
    for (size_t i = 0; i < write_layer.size(); ++i) {
      const std::string name = "state " + std::to_string(i) + " write";
      calls.push_back({.name = name + " (states)", .keys = {{"state", S}}});
      calls.push_back({.name = name + " (block)", .keys = {{"segment", m}}});
    }
    if (m != W) continue;  // a partial block leaves the memories as they were
    for (int64_t l = 0; l < cfg.depth; ++l) {
      const nn::Compressor* f = layers[size_t(l)].mem_compress ? &*layers[size_t(l)].mem_compress : nullptr;
      const int64_t evicted = xl[size_t(l)];  // [xl; block] keeps the newest W
      if (f && evicted >= f->ratio) xlc[size_t(l)] = std::min(xlc[size_t(l)] + evicted / f->ratio, W / 2);
      xl[size_t(l)] = W;
    }
  }
  return calls;
}

void BlockRecurrentTransformer::visit(nn::ParamVisitor& v) {
  v.sub("token_emb", token_emb);
  for (size_t l = 0; l < layers.size(); ++l) v.sub("layers." + std::to_string(l), layers[l]);
  v.sub("norm", norm);
  v.sub("to_logits", to_logits);
}

}  // namespace mnemo::arch
