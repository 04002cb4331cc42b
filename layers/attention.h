// Multi-head attention (SPEC 0.4) on the fused attention op.
//   q = x W_q;  k, v = [mem_kv; memory; x] W_kv        (persistent slots, re-projected memory, tokens)
//   k, v = [xl_k; k], [xl_v; v]                         (per-layer XL key/value caches in front)
//   QK-RMSNorm: q = l2norm(q) q_scale, k = l2norm(k) k_scale, logits scaled by qk_norm_scale
//   value residual: v = v + m (v_first - v),  m = sigmoid(x W_mix)  (layers after the first)
//   o = softmax(scale q k^T + bias | mask) v;  y = dropout(o W_out + b_out)
// Names follow the reference state dicts: to_q, to_kv, to_out, null_kv, mem_kv, q_scale,
// k_scale, to_value_residual_mix.
#pragma once

#include <functional>
#include <optional>

#include "layers/dropout.h"
#include "layers/linear.h"

namespace mnemo::nn {

struct AttentionConfig {
  int64_t dim = 0, heads = 8, dim_head = 0;  // dim_head 0: dim / heads
  bool shared_kv = false;                    // one key/value head for all query heads
  bool qk_norm = false;
  double qk_norm_scale = 8;                  // honoured (BRT P1 is the reference not doing so)
  bool null_kv = false;                      // learned (2, Hk, d) slot every query sees
  int64_t num_mem_kv = 0;                    // persistent memory slots (MemXL)
  bool value_residual = false;               // mix in the first layer's values
  double attn_dropout = 0, out_dropout = 0;
  bool out_bias = true;
};

// What one call attends over, besides its own tokens x (B, T, D).
struct AttentionContext {
  Var memory = {};             // (B, M, D) states re-projected by this layer (TXL, CT, MemXL)
  Var xl_k = {}, xl_v = {};    // (B, Hk, L, d) cached keys/values (RMT, BRT)
  Var v_first = {};            // (B, Hk, T, d) the first layer's values, for value_residual
  Var bias = {};               // (H, T, Tk) or (B, H, T, Tk) additive logits (positions)
  bool causal = true;
  int64_t window = 0, read_rows = 0, write_rows = 0;
  Tensor key_padding = {};     // u8 (B, Tk) over all keys but the null slot
  // Applied to (q, k) after projection and caches, before the logits (rotary, xPos).
  std::function<std::pair<Var, Var>(Var, Var)> rotate = {};
  // A query-dependent logit term (the learned relative table of CT/MemXL): given q
  // (B, H, T, d) and the number of keys Tk (memories and caches included), returns
  // (B, H, T, Tk), added to `bias`.
  std::function<Var(Var, int64_t)> q_bias = {};
  // The same kind of term as a band (AttentionSpec::band_bias), never expanded to (T, Tk).
  std::function<BandBias(Var, int64_t)> q_band = {};
};

struct AttentionOutput {
  Var out;       // (B, T, D)
  Var k, v;      // (B, Hk, T, d): this call's keys/values, to extend XL caches
  Var v_raw;     // (B, Hk, T, d): values before the residual mix (the first layer's v_first)
};

struct MultiheadAttention : Module {
  AttentionConfig cfg;
  Linear to_q, to_kv, to_out;
  std::optional<Linear> to_value_residual_mix;
  Param null_kv, mem_kv, q_scale, k_scale;
  Dropout out_drop;

  MultiheadAttention(Init& init, AttentionConfig cfg);
  AttentionOutput operator()(Var x, const AttentionContext& ctx = {}) const;

  int64_t kv_heads() const { return cfg.shared_kv ? 1 : cfg.heads; }
  void visit(ParamVisitor& v) override;
};

// (B, T, H d) <-> (B, H, T, d)
Var split_heads(Var x, int64_t heads);
Var merge_heads(Var x);

}  // namespace mnemo::nn
