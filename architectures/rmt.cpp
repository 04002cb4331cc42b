#include "architectures/rmt.h"

#include <cmath>
#include <map>
#include <memory>

#include "autograd/gradcheck/gradcheck.h"

namespace mnemo::arch {

RmtConfig resolved(RmtConfig c) {
  MNEMO_CHECK(c.vocab > 0 && c.dim > 0 && c.depth > 0 && c.heads > 0 && c.seq_len > 0,
              "[rmt] vocab, dim, depth, heads and seq_len must be > 0");
  if (c.dim_head == 0) c.dim_head = default_dim_head(c.dim, c.heads);
  if (c.xl_mem_len == 0) c.xl_mem_len = c.seq_len;
  MNEMO_OPTION_CHECK(c.dim_head > 0, "dim_head", "must be > 0, got " << c.dim_head);
  MNEMO_OPTION_CHECK(c.num_memory_tokens != 0, "num_memory_tokens", "is required (the number of read and write slots)");
  MNEMO_OPTION_CHECK(c.num_memory_tokens > 0, "num_memory_tokens", "must be > 0, got " << c.num_memory_tokens);
  MNEMO_OPTION_CHECK(c.ff_mult > 0, "ff_mult", "must be > 0, got " << c.ff_mult);
  // P11: absolute positions restart every segment, so a cached key from position j of the
  // last segment carries the same position as this segment's token j; rotary positions tell
  // them apart. The reference has absolute positions alone.
  if (!c.rotary_pos_emb) c.rotary_pos_emb = !c.reference_parity;
  MNEMO_OPTION_CHECK(c.abs_pos_emb || *c.rotary_pos_emb, "rotary_pos_emb", "abs_pos_emb or rotary_pos_emb must be true");
  MNEMO_OPTION_CHECK(c.rotary_theta > 0, "rotary_theta", "must be > 0, got " << c.rotary_theta);
  MNEMO_OPTION_CHECK(!*c.rotary_pos_emb || c.dim_head % 2 == 0, "dim_head",
                     "must be even with rotary_pos_emb (on unless reference_parity), got " << c.dim_head);
  MNEMO_OPTION_CHECK(c.xl_mem_len > 0 && c.xl_mem_len <= c.seq_len, "xl_mem_len",
                     "must be in [1, data.segment_len = " << c.seq_len << "], got " << c.xl_mem_len);
  MNEMO_OPTION_CHECK(c.emb_gradient_frac >= 0 && c.emb_gradient_frac <= 1, "emb_gradient_frac",
                     "must be in [0, 1], got " << c.emb_gradient_frac);
  MNEMO_OPTION_CHECK(c.num_residual_streams >= 1, "num_residual_streams", "must be >= 1, got " << c.num_residual_streams);
  check_dropout("attn_dropout", c.attn_dropout);
  check_dropout("ff_dropout", c.ff_dropout);
  return c;
}

namespace {

constexpr int64_t kMemoryPosition = 0;      // every memory slot's rotary position
constexpr int64_t kTokenPosition = 10000;   // the first token's (or XL slot's) rotary position


nn::AttentionConfig attention_config(const RmtConfig& c, int64_t index) {
  return {.dim = c.dim,
          .heads = c.heads,
          .dim_head = c.dim_head,
          .value_residual = c.value_residual && index > 0,  // layer 0 provides the values
          .attn_dropout = c.attn_dropout,
          .out_bias = false};
}

// (B, Hk, T, d) keys and values -> (B, 2, Hk, T, d), the layout of "xl.<l>".
Var stack_kv(Var k, Var v) {
  Shape s{k.dim(0), 1, k.dim(1), k.dim(2), k.dim(3)};
  return concat({reshape(k, s), reshape(v, s)}, 1);
}

// (B, 2, Hk, L, d) -> keys or values (B, Hk, L, d).
Var unstack_kv(Var kv, int64_t which) {
  return reshape(slice(kv, 1, which, 1), {kv.dim(0), kv.dim(2), kv.dim(3), kv.dim(4)});
}

// The last `n` slots along axis 3 of (B, 2, Hk, L, d).
Var last_slots(Var kv, int64_t n) { return n >= kv.dim(3) ? kv : slice(kv, 3, kv.dim(3) - n, n); }

// Rotary tables as the reference computes them: inverse frequencies, angles, cos and sin all
// in f32 (an angle near 10000 rad is only good to ~5e-4 in f32, so double angles move logits).
std::pair<Tensor, Tensor> f32_rotary_tables(const std::vector<int64_t>& pos, int64_t d, double theta, DType dtype,
                                            Device device) {
  const int64_t T = int64_t(pos.size()), half = d / 2;
  std::vector<double> c(size_t(T * d)), s(size_t(T * d));
  for (int64_t i = 0; i < half; ++i) {
    const float inv_freq = 1.0f / std::pow(float(theta), float(2 * i) / float(d));
    for (int64_t t = 0; t < T; ++t) {
      const float angle = float(pos[size_t(t)]) * inv_freq;
      for (int64_t j : {i, i + half}) {
        c[size_t(t * d + j)] = std::cos(angle);
        s[size_t(t * d + j)] = std::sin(angle);
      }
    }
  }
  return {Tensor::from({T, d}, c, dtype, device), Tensor::from({T, d}, s, dtype, device)};
}

Var find_memory(const MemoryVars& memory, const std::string& name) {
  const auto it = memory.find(name);
  return it == memory.end() ? Var{} : it->second;
}

}  // namespace

// ---- layer -----------------------------------------------------------------------------------

RmtLayer::RmtLayer(nn::Init& init, const RmtConfig& c, int64_t index)
    : attn_hc(init, c.dim, c.num_residual_streams, -1, c.reference_parity),
      attn_norm(init, c.dim),
      attn(init, attention_config(c, index)),
      ff_hc(init, c.dim, c.num_residual_streams, -1, c.reference_parity),
      ff(init, c.dim, c.ff_mult, nn::GegluFeedForward::Norm::rms_norm, c.ff_dropout) {
  if (c.null_kv) null_kv = init.normal({2, c.heads, c.dim_head});
}

void RmtLayer::visit(nn::ParamVisitor& v) {
  v.sub("attn_hc", attn_hc);
  v.sub("attn_norm", attn_norm);
  v.sub("attn", attn);
  // Owned here rather than by the attention layer: the null slot goes in front of the keys
  // with the XL cache, where rotary can give it a position. Named as the attention's own.
  if (null_kv.value.defined()) v("attn.null_kv", null_kv);
  v.sub("ff_hc", ff_hc);
  v.sub("ff", ff);
}

// ---- model -----------------------------------------------------------------------------------

RecurrentMemoryTransformer::RecurrentMemoryTransformer(nn::Init& init, RmtConfig c)
    : cfg(resolved(c)),
      token_emb(init, cfg.vocab, cfg.dim),
      pos_emb(cfg.abs_pos_emb ? std::optional<nn::AbsolutePositionEmbedding>(std::in_place, init, cfg.seq_len, cfg.dim)
                              : std::nullopt),
      read_memory_emb(init.normal({cfg.num_memory_tokens, cfg.dim}, 0.02)),
      memory_tokens(init.normal({cfg.num_memory_tokens, cfg.dim}, 0.02)),
      norm(init, cfg.dim),
      to_logits(init, cfg.dim, cfg.vocab, true) {
  layers.reserve(size_t(cfg.depth));
  for (int64_t l = 0; l < cfg.depth; ++l) layers.emplace_back(init, cfg, l);
  // Created after the layers so that turning rotary on leaves every other weight as it was.
  if (*cfg.rotary_pos_emb) rotary.emplace(init, cfg.dim_head, cfg.rotary_theta);
}

Memory RecurrentMemoryTransformer::initial_memory(int64_t batch) const {
  const DType dt = token_emb.weight.value.dtype();
  const Device dev = token_emb.weight.value.device();
  Memory m;
  m[kWrite] = Tensor::zeros({batch, cfg.always_have_read_memories ? cfg.num_memory_tokens : 0, cfg.dim}, dt, dev);
  if (cfg.use_xl_memories)
    for (int64_t l = 0; l < cfg.depth; ++l) m[xl_name(l)] = Tensor::zeros({batch, 2, cfg.heads, 0, cfg.dim_head}, dt, dev);
  return m;
}

int64_t RecurrentMemoryTransformer::xl_source(int64_t l) const {
  // ERNIE-Doc: the cache layer l+1 made from layer l's output; the top layer keeps its own.
  // The reference rotates the list after taking its iterator, so nothing moves (P4).
  if (!cfg.enhanced_xl_recurrence || cfg.reference_parity) return l;
  return std::min(l + 1, cfg.depth - 1);
}

nn::AttentionContext RecurrentMemoryTransformer::mask_context(int64_t read, int64_t write) const {
  nn::AttentionContext c;
  c.causal = cfg.causal;  // an encoder lets every slot see every slot
  if (cfg.causal && cfg.memory_not_causal) {
    c.read_rows = read;    // read rows: the read slots only
    c.write_rows = write;  // write rows: everything
  }  // otherwise one causal triangle over [read, tokens, write] (the reference's broken P5 path, fixed)
  return c;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> RecurrentMemoryTransformer::rotary_positions(
    int64_t read, int64_t n, int64_t write, int64_t xl_len) const {
  std::vector<int64_t> q(size_t(read), kMemoryPosition);
  for (int64_t i = 0; i < n; ++i) q.push_back(kTokenPosition + xl_len + i);
  q.insert(q.end(), size_t(write), kMemoryPosition);
  std::vector<int64_t> k;
  for (int64_t j = 0; j < xl_len; ++j) k.push_back(kTokenPosition + j);
  if (cfg.null_kv) {
    // The null key sits just before the cache. The reference lists its position first while
    // its key comes after the cache, so every cached key is one position late (P3).
    if (cfg.reference_parity) k.insert(k.begin(), kTokenPosition - 1);
    else k.push_back(kTokenPosition - 1);
  }
  k.insert(k.end(), q.begin(), q.end());
  return {q, k};
}

namespace {

// Step 1: token (+ position) embeddings of positions offset.. of the segment; only a fraction f
// of their gradient comes back.
Var embed_tokens(const RecurrentMemoryTransformer& model, Tape& tape, const Tensor& tokens, int64_t offset = 0) {
  const RmtConfig& cfg = model.cfg;
  const int64_t B = tokens.dim(0), n = tokens.dim(1), D = cfg.dim;
  Var x = model.token_emb(tape, tokens);  // (B, n, D)
  if (model.pos_emb) x = x + broadcast_to(reshape((*model.pos_emb)(tape, n, offset), {1, n, D}), {B, n, D});
  if (cfg.emb_gradient_frac != 1) x = scale_gradient(x, cfg.emb_gradient_frac);
  return x;
}

struct MemorySlots {
  Var read;   // Rm (B, m, D), or undefined: no read slots this segment
  Var write;  // Wm (B, m, D)
};

// Steps 2-3 from the carried memory M_tau (undefined on a first segment; (B, 0, D) when the
// model runs without read slots).
MemorySlots memory_slots(const RecurrentMemoryTransformer& model, Tape& tape, const Var& prev, int64_t B) {
  const RmtConfig& cfg = model.cfg;
  const int64_t m = cfg.num_memory_tokens, D = cfg.dim;
  const bool has_prev = prev.defined() && prev.dim(1) == m;
  // Write slots start from the learned memory tokens (plus the last memory).
  Var Wm = broadcast_to(reshape(tape.param(model.memory_tokens), {1, m, D}), {B, m, D});
  if (cfg.add_write_to_next_write_mem && has_prev) Wm = Wm + (cfg.next_write_mem_stop_grad ? stop_gradient(prev) : prev);
  // Read slots = the carried memory plus a learned per-slot position, so that slots stay
  // distinguishable (reference issue #14).
  Var R_emb = broadcast_to(reshape(tape.param(model.read_memory_emb), {1, m, D}), {B, m, D});
  Var Rm = has_prev ? prev + R_emb : (!prev.defined() && cfg.always_have_read_memories) ? R_emb : Var{};
  return {Rm, Wm};
}

// The XL caches entering, per layer (undefined when empty or absent).
std::vector<Var> entering_caches(const RecurrentMemoryTransformer& model, const MemoryVars& memory, int64_t B) {
  const RmtConfig& cfg = model.cfg;
  std::vector<Var> xl_in(size_t(cfg.depth));
  if (!cfg.use_xl_memories) return xl_in;
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const Var c = find_memory(memory, RecurrentMemoryTransformer::xl_name(l));
    MNEMO_CHECK(!c.defined() || (c.rank() == 5 && c.dim(0) == B && c.dim(1) == 2 && c.dim(2) == cfg.heads &&
                                 c.dim(4) == cfg.dim_head),
                "[rmt] expected memory '" << RecurrentMemoryTransformer::xl_name(l) << "' (" << B << ", 2, " << cfg.heads
                                          << ", L, " << cfg.dim_head << "), got " << c.shape());
    if (c.defined() && c.dim(3) > 0) xl_in[size_t(l)] = c;
  }
  return xl_in;
}

// The learned null key and value of a layer, (B, H, 1, d) each; undefined without null_kv.
std::pair<Var, Var> null_kv(const RmtLayer& layer, Tape& tape, int64_t B, int64_t H, int64_t d) {
  if (!layer.null_kv.value.defined()) return {};
  Var nkv = tape.param(layer.null_kv);  // (2, H, d)
  return {broadcast_to(reshape(slice(nkv, 0, 0, 1), {1, H, 1, d}), {B, H, 1, d}),
          broadcast_to(reshape(slice(nkv, 0, 1, 1), {1, H, 1, d}), {B, H, 1, d})};
}

// Steps 5-6 for one layer: keys [xl ; null ; read ; tokens ; write] (the first two seen by
// every row), the read columns hidden under mask_out_read_memories (P7 fixed), rotary.
nn::AttentionContext layer_context(const RecurrentMemoryTransformer& model, const Var& xl, const Var& nk, const Var& nv,
                                   int64_t B, int64_t r, int64_t n, const Var& v_first) {
  const RmtConfig& cfg = model.cfg;
  const int64_t m = cfg.num_memory_tokens, N = r + n + m, L = xl.defined() ? xl.dim(3) : 0;
  nn::AttentionContext ctx = model.mask_context(r, m);
  if (L > 0) {
    ctx.xl_k = nk.defined() ? concat({unstack_kv(xl, 0), nk}, 2) : unstack_kv(xl, 0);  // (B, H, L + 1, d)
    ctx.xl_v = nv.defined() ? concat({unstack_kv(xl, 1), nv}, 2) : unstack_kv(xl, 1);
  } else {
    ctx.xl_k = nk;
    ctx.xl_v = nv;
  }
  const int64_t prefix = L + (nk.defined() ? 1 : 0);
  if (cfg.mask_out_read_memories && r > 0) {
    Tensor kp = Tensor::full({B, prefix + N}, 1.0, DType::u8);
    uint8_t* p = kp.data<uint8_t>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < r; ++j) p[b * (prefix + N) + prefix + j] = 0;
    ctx.key_padding = kp;
  }
  ctx.v_first = v_first;
  if (model.rotary) {
    ctx.rotate = [&model, r, n, m, L](Var q, Var k) -> std::pair<Var, Var> {
      const auto [q_pos, k_pos] = model.rotary_positions(r, n, m, L);
      return model.rotate(q, k, q_pos, k_pos);
    };
  }
  return ctx;
}

// Step 9's cache, stop-gradient as in Transformer-XL: keys/values (value-mixed, before
// rotary) of the last xl_mem_len tokens, fed by the layer's own previous cache `own`.
Var next_cache(const RmtConfig& cfg, const nn::AttentionOutput& a, const Var& nk, const Var& nv, const Var& own,
               int64_t r, int64_t n) {
  if (cfg.reference_parity) {  // P8: the last slots of [null, read, tokens, write]
    Var k_all = nk.defined() ? concat({nk, a.k}, 2) : a.k;  // (B, H, N + 1, d)
    Var v_all = nv.defined() ? concat({nv, a.v}, 2) : a.v;
    return stop_gradient(last_slots(stack_kv(k_all, v_all), cfg.xl_mem_len));
  }
  Var fresh = stack_kv(slice(a.k, 2, r, n), slice(a.v, 2, r, n));  // (B, 2, H, n, d)
  return stop_gradient(last_slots(own.defined() ? concat({own, fresh}, 3) : fresh, cfg.xl_mem_len));
}

}  // namespace

SegmentOut RecurrentMemoryTransformer::forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const {
  MNEMO_CHECK(tokens.rank() == 2 && tokens.dim(1) >= 1 && tokens.dim(1) <= cfg.seq_len,
              "[rmt] expected tokens (B, 1.." << cfg.seq_len << "), got " << tokens.shape());
  const int64_t B = tokens.dim(0), n = tokens.dim(1), D = cfg.dim, m = cfg.num_memory_tokens;
  const Var prev = find_memory(memory, kWrite);  // M_tau (B, m, D), or (B, 0, D): no read slots
  MNEMO_CHECK(!prev.defined() || (prev.rank() == 3 && prev.dim(0) == B && prev.dim(2) == D &&
                                  (prev.dim(1) == m || prev.dim(1) == 0)),
              "[rmt] expected memory 'write' (" << B << ", " << m << " or 0, " << D << "), got " << prev.shape());

  const Var x = embed_tokens(*this, tape, tokens);                  // step 1: (B, n, D)
  const MemorySlots slots = memory_slots(*this, tape, prev, B);     // steps 2-3
  const int64_t r = slots.read.defined() ? m : 0;
  const Var h = r > 0 ? concat({slots.read, x, slots.write}, 1) : concat({x, slots.write}, 1);  // step 4: (B, N, D)
  const std::vector<Var> xl_in = entering_caches(*this, memory, B);

  SegmentOut out;
  Var Hs = nn::expand_streams(h, cfg.num_residual_streams);  // (B, N, S, D)
  Var v_first;                                               // (B, H, N, d) layer 0's values
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const RmtLayer& layer = layers[size_t(l)];
    const auto [nk, nv] = null_kv(layer, tape, B, cfg.heads, cfg.dim_head);
    const nn::AttentionContext ctx = layer_context(*this, xl_in[size_t(xl_source(l))], nk, nv, B, r, n, v_first);

    // Step 7: the hyper-connected attention branch, then the feed-forward branch.
    const nn::HyperConnections::Width w = layer.attn_hc.width(Hs);
    const nn::AttentionOutput a = layer.attn(layer.attn_norm(w.branch_input), ctx);
    if (l == 0) v_first = a.v_raw;
    Hs = layer.attn_hc.depth(w, a.out);  // (B, N, S, D)
    if (cfg.use_xl_memories) out.memory[xl_name(l)] = next_cache(cfg, a, nk, nv, xl_in[size_t(l)], r, n);
    const nn::HyperConnections::Width f = layer.ff_hc.width(Hs);
    Hs = layer.ff_hc.depth(f, layer.ff(f.branch_input));  // (B, N, S, D)
  }

  // Step 8: sum the streams, normalise, unpack. Step 9: logits and the next memory.
  Var y = norm(nn::reduce_streams(Hs, cfg.num_residual_streams));  // (B, N, D)
  out.logits = to_logits(slice(y, 1, r, n));                       // (B, n, V)
  out.memory[kWrite] = slice(y, 1, r + n, m);                      // (B, m, D), keeps its graph
  return out;
}

// Keys per layer (steps 4-6): [xl ; null ; read ; tokens ; write]; token rows after the read rows.
std::vector<AttentionLayout> RecurrentMemoryTransformer::attention_layout(const Memory& memory, int64_t n) const {
  const int64_t m = cfg.num_memory_tokens;
  const auto it = memory.find(kWrite);
  const int64_t r = (it == memory.end() ? cfg.always_have_read_memories : it->second.dim(1) == m) ? m : 0;
  std::vector<AttentionLayout> calls;
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const auto xl = cfg.use_xl_memories ? memory.find(xl_name(xl_source(l))) : memory.end();
    const int64_t L = xl == memory.end() ? 0 : xl->second.dim(3), null = layers[size_t(l)].null_kv.value.defined();
    calls.push_back({.name = "layer " + std::to_string(l),
                     .keys = {{"xl_cache", L}, {"null", null}, {"memory", r}, {"segment", n}, {"segment.write", m}},
                     .row0 = r, .rows = n});
  }
  return calls;
}

std::pair<Var, Var> RecurrentMemoryTransformer::rotate(Var q, Var k, const std::vector<int64_t>& q_pos,
                                                      const std::vector<int64_t>& k_pos) const {
  if (cfg.reference_parity) {
    auto [qc, qs] = f32_rotary_tables(q_pos, cfg.dim_head, cfg.rotary_theta, q.dtype(), q.value().device());
    auto [kc, ks] = f32_rotary_tables(k_pos, cfg.dim_head, cfg.rotary_theta, k.dtype(), k.value().device());
    return {nn::apply_rotary(q, qc, qs), nn::apply_rotary(k, kc, ks)};
  }
  return (*rotary)(q, k, q_pos, k_pos);
}

// ---- the pieces of forward() the cached decoder (rmt_generate.cpp) runs ----------------------

Var RecurrentMemoryTransformer::embed(Tape& tape, const Tensor& tokens, int64_t offset) const {
  return embed_tokens(*this, tape, tokens, offset);
}

Var RecurrentMemoryTransformer::read_slots(Tape& tape, const MemoryVars& memory, int64_t batch) const {
  return memory_slots(*this, tape, find_memory(memory, kWrite), batch).read;
}

std::vector<Var> RecurrentMemoryTransformer::xl_caches(const MemoryVars& memory, int64_t batch) const {
  return entering_caches(*this, memory, batch);
}

std::pair<Var, Var> RecurrentMemoryTransformer::null_key_value(int64_t layer, Tape& tape, int64_t batch) const {
  return null_kv(layers[size_t(layer)], tape, batch, cfg.heads, cfg.dim_head);
}

void RecurrentMemoryTransformer::visit(nn::ParamVisitor& v) {
  v.sub("token_emb", token_emb);
  if (pos_emb) v.sub("pos_emb", *pos_emb);
  v("read_memory_emb", read_memory_emb);
  v("memory_tokens", memory_tokens);
  for (size_t l = 0; l < layers.size(); ++l) v.sub("layers." + std::to_string(l), layers[l]);
  v.sub("norm", norm);
  v.sub("to_logits", to_logits);
}

// ---- gradient checks: the whole model over three segments, every parameter checked --------

namespace {

using gradcheck::Sample;

// Every parameter moved off its init (zero dynamic hyper-connection weights, unit gains),
// so that no gradient path hides behind a constant.
RecurrentMemoryTransformer& checked_model(Sample& s, const RmtConfig& c) {
  return s.once<RecurrentMemoryTransformer>(
      [&] {
        nn::Init init(4321, DType::f64);
        auto m = std::make_shared<RecurrentMemoryTransformer>(init, c);
        Rng rng(77);
        for (Param* p : nn::params(*m)) {
          double* v = p->value.data<double>();
          for (int64_t i = 0; i < p->value.numel(); ++i) v[i] += rng.uniform(-0.2, 0.2);
        }
        return m;
      },
      [](RecurrentMemoryTransformer& m) { return nn::params(m); });
}

// Three segments on one tape: the write memory carries gradient from segment 3 back to 1.
// The XL caches are stop-gradient by design, which finite differences cannot see, so each
// segment reads caches given as data (full-length, as after a previous segment) instead of
// the previous segment's. The embedding gradient fraction is 1 for the same reason.
Var three_segments(Sample& s, RmtConfig c) {
  c.emb_gradient_frac = 1;
  RecurrentMemoryTransformer& m = checked_model(s, c);
  const int64_t B = 2, n = 3;
  MemoryVars mem;
  for (auto& [name, t] : m.initial_memory(B)) mem[name] = s.tape().constant(t);
  std::vector<Var> logits;
  for (int i = 0; i < 3; ++i) {
    if (i > 0)
      for (int64_t l = 0; l < c.depth; ++l)
        mem[RecurrentMemoryTransformer::xl_name(l)] =
            s.tape().constant(s.data({B, 2, c.heads, std::min(c.xl_mem_len, n), c.dim_head}));
    SegmentOut o = m.forward(s.tape(), s.indices({B, n}, int32_t(c.vocab)), mem);
    logits.push_back(reshape(o.logits, {o.logits.value().numel()}));
    mem = o.memory;
  }
  return concat(logits, 0);
}

const RmtConfig kTiny{.vocab = 7, .dim = 8, .depth = 2, .heads = 2, .dim_head = 4, .seq_len = 3,
                      .num_memory_tokens = 2, .ff_mult = 1, .xl_mem_len = 2, .num_residual_streams = 2};

MNEMO_GRADCHECK("arch.rmt.three_segments", [](Sample& s) {
  RmtConfig c = kTiny;
  c.rotary_pos_emb = false;  // the reference's positions (rotary alone in the next check, both in .parity)
  return three_segments(s, c);
});

MNEMO_GRADCHECK("arch.rmt.three_segments.rotary_recurrent_write", [](Sample& s) {
  RmtConfig c = kTiny;
  c.abs_pos_emb = false;
  c.rotary_pos_emb = true;
  c.rotary_theta = 10;  // small positions' angles should differ visibly
  c.enhanced_xl_recurrence = true;
  c.add_write_to_next_write_mem = true;
  c.next_write_mem_stop_grad = false;
  c.num_residual_streams = 1;
  return three_segments(s, c);
});

MNEMO_GRADCHECK("arch.rmt.three_segments.parity", [](Sample& s) {
  RmtConfig c = kTiny;
  c.reference_parity = true;
  c.rotary_pos_emb = true;
  c.rotary_theta = 10;
  c.xl_mem_len = 3;
  return three_segments(s, c);
});

}  // namespace

}  // namespace mnemo::arch
