#include "layers/attention.h"

#include <cmath>

#include "layers/testing.h"

namespace mnemo::nn {

Var split_heads(Var x, int64_t heads) {  // (B, T, H d) -> (B, H, T, d)
  const int64_t B = x.dim(0), T = x.dim(1), d = x.dim(2) / heads;
  return permute(reshape(x, {B, T, heads, d}), {0, 2, 1, 3});
}

Var merge_heads(Var x) {  // (B, H, T, d) -> (B, T, H d)
  const int64_t B = x.dim(0), H = x.dim(1), T = x.dim(2), d = x.dim(3);
  return reshape(permute(x, {0, 2, 1, 3}), {B, T, H * d});
}

namespace {

AttentionConfig checked(AttentionConfig c) {
  if (c.dim_head == 0) c.dim_head = c.dim / std::max<int64_t>(c.heads, 1);
  MNEMO_CHECK(c.dim > 0 && c.heads > 0 && c.dim_head > 0,
              "[attention] needs dim, heads and dim_head > 0, got " << c.dim << ", " << c.heads << ", " << c.dim_head);
  MNEMO_CHECK(c.num_mem_kv >= 0, "[attention] num_mem_kv must be >= 0");
  return c;
}

}  // namespace

MultiheadAttention::MultiheadAttention(Init& init, AttentionConfig c)
    : cfg(checked(c)),
      to_q(init, cfg.dim, cfg.heads * cfg.dim_head, false),
      to_kv(init, cfg.dim, 2 * (cfg.shared_kv ? 1 : cfg.heads) * cfg.dim_head, false),
      to_out(init, cfg.heads * cfg.dim_head, cfg.dim, cfg.out_bias),
      out_drop(cfg.out_dropout) {
  const int64_t Hk = kv_heads(), d = cfg.dim_head;
  if (cfg.value_residual) to_value_residual_mix.emplace(init, cfg.dim, cfg.heads, false);
  if (cfg.null_kv) null_kv = init.normal({2, Hk, d});
  if (cfg.num_mem_kv > 0) mem_kv = init.uniform({1, cfg.num_mem_kv, cfg.dim}, 1.0 / std::sqrt(double(cfg.dim)));
  if (cfg.qk_norm) {
    q_scale = init.ones({d});
    k_scale = init.ones({d});
  }
}

void MultiheadAttention::visit(ParamVisitor& v) {
  v.sub("to_q", to_q);
  v.sub("to_kv", to_kv);
  v.sub("to_out", to_out);
  if (to_value_residual_mix) v.sub("to_value_residual_mix", *to_value_residual_mix);
  if (cfg.null_kv) v("null_kv", null_kv);
  if (cfg.num_mem_kv > 0) v("mem_kv", mem_kv);
  if (cfg.qk_norm) {
    v("q_scale", q_scale);
    v("k_scale", k_scale);
  }
  v.sub("out_drop", out_drop);
}

AttentionOutput MultiheadAttention::operator()(Var x, const AttentionContext& c) const {
  MNEMO_CHECK(x.rank() == 3 && x.dim(2) == cfg.dim, "[attention] expected x (B, T, " << cfg.dim << "), got " << x.shape());
  Tape& tape = x.tape();
  const int64_t B = x.dim(0), T = x.dim(1), H = cfg.heads, Hk = kv_heads(), d = cfg.dim_head;

  // keys/values come from [persistent slots; memory; tokens]
  std::vector<Var> kv_in;
  if (cfg.num_mem_kv > 0) kv_in.push_back(broadcast_to(tape.param(mem_kv), {B, cfg.num_mem_kv, cfg.dim}));
  if (c.memory.defined()) kv_in.push_back(c.memory);
  kv_in.push_back(x);
  int64_t n_prefix_slots = 0;  // persistent slots + memory in front of the tokens
  for (size_t i = 0; i + 1 < kv_in.size(); ++i) n_prefix_slots += kv_in[i].dim(1);
  Var kv = to_kv(kv_in.size() > 1 ? concat(kv_in, 1) : x);                // (B, P + M + T, 2 Hk d)
  const int64_t halves[] = {Hk * d, Hk * d};
  std::vector<Var> kv_parts = split(kv, -1, halves);
  Var q = split_heads(to_q(x), H);                                         // (B, H, T, d)
  Var k = split_heads(kv_parts[0], Hk);                                    // (B, Hk, N, d)
  Var v = split_heads(kv_parts[1], Hk);

  AttentionOutput out;
  out.v_raw = slice(v, 2, n_prefix_slots, T);
  if (cfg.value_residual && c.v_first.defined()) {
    MNEMO_CHECK(n_prefix_slots == 0 && c.v_first.shape() == v.shape(),
                "[attention] value residual needs v_first " << v.shape() << " and no memory slots, got "
                                                            << c.v_first.shape());
    Var m = permute(sigmoid((*to_value_residual_mix)(x)), {0, 2, 1});     // (B, H, T)
    m = reshape(Hk == 1 ? mean(m, 1, true) : m, {B, Hk, T, 1});
    v = v + m * (c.v_first - v);
  }
  if (cfg.qk_norm) {
    q = l2_normalize(q) * tape.param(q_scale);
    k = l2_normalize(k) * tape.param(k_scale);
  }
  out.k = slice(k, 2, n_prefix_slots, T);
  out.v = slice(v, 2, n_prefix_slots, T);
  int64_t prefix = n_prefix_slots;
  if (c.xl_k.defined()) {
    MNEMO_CHECK(c.xl_v.defined() && c.xl_k.rank() == 4 && c.xl_k.dim(1) == Hk && c.xl_k.dim(3) == d,
                "[attention] xl caches must be (B, " << Hk << ", L, " << d << "), got " << c.xl_k.shape());
    k = concat({c.xl_k, k}, 2);
    v = concat({c.xl_v, v}, 2);
    prefix += c.xl_k.dim(2);
  }
  if (c.rotate) std::tie(q, k) = c.rotate(q, k);

  AttentionSpec spec;
  spec.scale = cfg.qk_norm ? cfg.qk_norm_scale : 1.0 / std::sqrt(double(d));
  spec.prefix = prefix;
  spec.causal = c.causal;
  spec.window = c.window;
  spec.read_rows = c.read_rows;
  spec.write_rows = c.write_rows;
  spec.key_padding = c.key_padding;
  spec.bias = c.bias;
  if (c.q_bias) {
    Var qb = c.q_bias(q, k.dim(2));  // (B, H, T, Tk)
    spec.bias = c.bias.defined() ? qb + c.bias : qb;
  }
  if (c.q_band) spec.band_bias = c.q_band(q, k.dim(2));
  if (cfg.null_kv) {
    Var nkv = tape.param(null_kv);
    spec.null_k = reshape(slice(nkv, 0, 0, 1), {Hk, d});
    spec.null_v = reshape(slice(nkv, 0, 1, 1), {Hk, d});
  }
  if (training && cfg.attn_dropout > 0) {
    spec.dropout = cfg.attn_dropout;
    spec.dropout_seed = tape.next_seed();
  }
  Var o = attention(q, k, v, spec);                                        // (B, H, T, d)
  out.out = out_drop(to_out(merge_heads(o)));                              // (B, T, D)
  return out;
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.attention.q_bias_hook", [](Sample& s) {
  auto& a = checked_layer<MultiheadAttention>(s, AttentionConfig{.dim = 4, .heads = 2, .null_kv = true});
  Var x = s.input({1, 3, 4}), r = s.input({2, 5, 2});
  AttentionContext c{.memory = s.input({1, 2, 4})};
  c.q_bias = [r](Var q, int64_t n_keys) {  // a stand-in relative term: q . r[:, j]
    return matmul(q, reshape(slice(r, 1, 0, n_keys), {1, 2, n_keys, 2}) * 1.0, {.trans_b = true});
  };
  return a(x, c).out;
});
MNEMO_GRADCHECK("layers.attention", [](Sample& s) {
  auto& a = checked_layer<MultiheadAttention>(s, AttentionConfig{.dim = 4, .heads = 2});
  return a(s.input({2, 3, 4})).out;
});
MNEMO_GRADCHECK("layers.attention.memory_null_qknorm", [](Sample& s) {
  auto& a = checked_layer<MultiheadAttention>(
      s, AttentionConfig{.dim = 4, .heads = 2, .shared_kv = true, .qk_norm = true, .null_kv = true, .num_mem_kv = 2});
  Var x = s.input({1, 3, 4});
  return a(x, {.memory = s.input({1, 2, 4})}).out;
});
MNEMO_GRADCHECK("layers.attention.xl_cache_value_residual", [](Sample& s) {
  auto& a = checked_layer<MultiheadAttention>(s, AttentionConfig{.dim = 4, .heads = 2, .value_residual = true});
  Var x = s.input({1, 3, 4});
  AttentionContext c{.xl_k = s.input({1, 2, 2, 2}), .xl_v = s.input({1, 2, 2, 2}), .v_first = s.input({1, 2, 3, 2})};
  return a(x, c).out;
});

}  // namespace mnemo::nn
