// Memory Transformer-XL (arch "memxl", SPEC section 4): Transformer-XL short-term memory plus
// one set of long-term memory slots, rewritten after every full segment by a linear-attention
// "memory attention network" with an nBRC gate, and optional persistent memory key/values.
//
// Per segment tau (tokens x, t <= T), layer l (1-based; "memory layers" M_L a subset):
//   h^0        = E[x] (W_e if factorised)
//   s^l        = short memory of layer l    (B, Ls, D)   raw residual-stream inputs of earlier segments
//   m          = long memory                (B, Ll, D)   shared by all memory layers
//   n(z)       = LN_l(z)                                 the layer's pre-norm
//   a^l        = Attn(q = n(h^{l-1}) W_q,  k, v = [P_l; n(m); n(s^l); n(h^{l-1})] W_kv)   (l in M_L)
//                Attn(q = n(h^{l-1}) W_q,  k, v = [P_l; n(h^{l-1})] W_kv)                  (otherwise)
//                logits q k / sqrt(d) + q R_{dist} / sqrt(d), P_l persistent slots (no position),
//                causal bottom-right: every memory slot, tokens up to i
//   h^l        = G_a(h^{l-1}, a^l);   h^l = G_f(h^l, FF(LN(h^l)))      G: nBRC gate (or residual add)
//   logits     = W_o h^L                                                no final norm
// Memory write, only after a full segment (t = T):
//   s^l'       = last mem_len of [s^l; SG(h^{l-1})]                      SG: stop-gradient (SPEC 4.2)
//   c          = [ [s^l; SG(h^{l-1})] + delta_l  for l in M_L ;  P_w ]   (B, |M_L| (Ls + t) + Pw, D)
//   m_0        = (m, or init_lmem broadcast when empty) + E_pos          positions re-injected each write
//   m_{i+1}    = nBRC(LinAttn(m_i, c), m_i),  i < mem_write_iters       m' = m_K keeps its graph
// The long memory is returned on the tape, so the loss of a later segment in the same BPTT
// window reaches the writer (and earlier long memories); the trainer cuts it at window edges.
//
// Notation (paper/SPEC -> code -> shape):
//   E, W_e         token_emb.weight (V, E), to_model_dim.{weight,bias}     emb_dim != dim only
//   W_o            to_emb_dim (E != D), to_logits.{weight,bias} (V, E)
//   R              pos_emb (H, T + mem_len + lmem_len, d)                  zero-init, shared by layers
//   W_q, W_kv      attn_layers.<l>.fn.fn.{to_q,to_kv,to_out}               0-based in names
//   P_l            attn_layers.<l>.fn.fn.mem_kv (1, num_mem_kv, D)
//   LN_l           attn_layers.<l>.fn.norm;  FF: ff_layers.<l>.fn.{norm,fn.w1,fn.w2}
//   G_a, G_f       attn_layers.<l>.gru.*, ff_layers.<l>.gru.* (+ .mogrify.*)
//   delta_l        memory_network.depth_emb (|M_L|, 1, 1, 1)              one scalar per memory layer
//   init_lmem      memory_network.init_lmem (1, 1, D);  E_pos: memory_network.lmem_pos_emb (1, Ll, D)
//   P_w            memory_network.mem_kv (1, num_mem_kv, D)
//   LinAttn        memory_network.attn.{to_q,to_kv,to_out} (x W form), 4 heads
//   nBRC (writer)  memory_network.gate.{Ua,Wa,Uc,Wc,U}
//   memory         "short" (|M_L|, B, Ls, D), Ls <= mem_len;  "long" (B, Ll, D) or (B, 0, D) at first
//
// Intended behaviour (default) vs reference_parity (SPEC 4.5):
//   P1  memories are stored raw (un-normalised) and every attention layer normalises them with
//       its own pre-norm when it projects them, as it does its tokens. Parity: raw slots projected.
//   P2  the writer merges heads as o[b, h, s, e] -> [b, s, h d + e]. Parity: the reference's
//       transposed read (layers/linear_attention.h).
//   P4  R row = P - 1 - distance, persistent slots unpositioned. Parity: the reference's window,
//       which reads the long memory's feature size for its slot count (rows shift in segment 0).
//   P5  memories are written only after a full segment (t = T). Parity: whenever t >= mem_len.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "architectures/options.h"
#include "architectures/segment_model.h"
#include "layers/attention.h"
#include "layers/embedding.h"
#include "layers/feed_forward.h"
#include "layers/linear_attention.h"
#include "layers/nbrc_gate.h"
#include "layers/norm.h"

namespace mnemo::arch {

struct MemXLConfig {
  int64_t vocab = 256, dim = 256, depth = 4, heads = 4, seq_len = 256;  // V, D, L, H, T
  int64_t emb_dim = 0;                   // E: factorised embedding when != dim; 0 = dim
  std::vector<int64_t> memory_layers = {};  // 1-based as the reference; empty = every layer
  int64_t mem_len = -1;                  // Ls: short memory per memory layer (0: none); -1: seq_len
  int64_t lmem_len = 0;                  // Ll: long-memory slots (>= 1); 0: max(mem_len, 1)
  bool gated_residual = true;            // nBRC gates on both sub-layers; false: x + f(x)
  bool mogrify = false;                  // mogrifier before each gate
  double attn_dropout = 0, ff_dropout = 0, attn_layer_dropout = 0;
  bool ff_glu = false;
  bool one_kv_head = false;              // one key/value head shared by all query heads
  int64_t num_mem_kv = 0;                // persistent key/values in each layer and in the writer
  int64_t mem_write_iters = 2;           // linear-attention + gate rounds per write
  double writer_keep_init = 0.5;         // the writer's nBRC keep gate starts near it (0.5: the reference's)
  // The writer's hiddens and the short memory enter as data (stop-gradient, SPEC 4.2 and
  // Transformer-XL); false lets them carry gradient like the long memory, so the BPTT window
  // is the only cut (the whole-model gradient check needs that to compare with differences).
  bool detach_hiddens = true;
  bool reference_parity = false;         // reproduce the reference's P1, P2, P4, P5

  int64_t embedding_dim() const { return emb_dim > 0 ? emb_dim : dim; }

  // The options of model.memxl (the reference's constructor arguments; gated_residual and
  // mogrify under the reference's names); vocab, dim, depth, heads and seq_len come from
  // model.* and data.segment_len.
  template <class Self, class Visit>
  static void visit_options(Self& c, Visit&& v) {
    v("emb_dim", c.emb_dim), v("memory_layers", c.memory_layers), v("mem_len", c.mem_len);
    v("lmem_len", c.lmem_len), v("gru_gated_residual", c.gated_residual), v("mogrify_gru", c.mogrify);
    v("attn_dropout", c.attn_dropout), v("ff_dropout", c.ff_dropout), v("attn_layer_dropout", c.attn_layer_dropout);
    v("ff_glu", c.ff_glu), v("one_kv_head", c.one_kv_head), v("num_mem_kv", c.num_mem_kv);
    v("mem_write_iters", c.mem_write_iters), v("writer_keep_init", c.writer_keep_init);
    v("detach_hiddens", c.detach_hiddens);
    v("reference_parity", c.reference_parity);
  }
};

// Fills the derived defaults (emb_dim, mem_len, lmem_len, memory_layers) and checks every
// option; throws OptionError naming the option.
MemXLConfig resolved(MemXLConfig c);

inline constexpr int64_t kMemXLWriterHeads = 4;  // fixed in the reference (P6)

// "fn" = PreNorm(branch): the layer norm and the branch; "gru" (+ "mogrify") = the nBRC gate.
template <class Branch>
struct MemXLSublayer : nn::Module {
  nn::LayerNorm norm;
  Branch fn;
  std::optional<nn::NBRCGate> gate;

  template <class... A>
  MemXLSublayer(nn::Init& init, const MemXLConfig& c, A&&... branch_args)
      : norm(init, c.dim), fn(init, std::forward<A>(branch_args)...) {
    if (c.gated_residual) gate.emplace(init, c.dim, nn::NBRCGateOptions{.mogrify = c.mogrify});
  }
  // x' = G(x, y) with the gate, x + y without
  Var combine(Var x, Var y) const { return gate ? (*gate)(x, y) : x + y; }

  void visit(nn::ParamVisitor& v) override {
    v.sub("fn.norm", norm);
    v.sub("fn.fn", fn);
    if (gate) gate->visit(v);  // "gru.Ua.weight", "mogrify.Q.0.weight" as GRUGating's
  }
};

// The memory attention network: writes the long memory from the short memories and the new
// hiddens. Names as the reference's "memory_network.*".
struct MemXLWriter : nn::Module {
  Param depth_emb, init_lmem, lmem_pos_emb, mem_kv;  // mem_kv only when num_mem_kv > 0
  nn::LinearSelfAttention attn;
  nn::NBRCCell gate;
  int64_t num_mem_kv, lmem_len, iters;

  MemXLWriter(nn::Init& init, const MemXLConfig& c, int64_t memory_depth);
  // long (B, 0 or Ll, D); short_and_hiddens (|M_L|, B, N, D) already detached -> (B, Ll, D)
  Var operator()(Var long_mem, Var short_and_hiddens) const;
  void visit(nn::ParamVisitor& v) override;
};

class MemoryTransformerXL : public SegmentModel {
 public:
  MemXLConfig cfg;
  nn::FactorizedEmbedding emb;
  Param pos_emb;  // R (H, T + mem_len + lmem_len, d), zero-init
  std::vector<MemXLSublayer<nn::MultiheadAttention>> attn_layers;
  std::vector<MemXLSublayer<nn::FeedForward>> ff_layers;
  nn::LogitsHead head;
  MemXLWriter writer;

  MemoryTransformerXL(nn::Init& init, MemXLConfig cfg);

  // "short" (|M_L|, B, 0, D) and "long" (B, 0, D): the writer starts from init_lmem.
  Memory initial_memory(int64_t batch) const override;
  SegmentOut forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const override;
  std::vector<AttentionLayout> attention_layout(const Memory& memory, int64_t tokens) const override;
  // Per-token key/value cache (memxl_generate.cpp), for seg_len <= cfg.seq_len.
  std::unique_ptr<Generator> cached_generator(const Memory& memory, int64_t batch, int64_t seg_len) const override;
  void visit(nn::ParamVisitor& v) override;

  int64_t memory_depth() const { return int64_t(cfg.memory_layers.size()); }
  // The index in "short" of 0-based layer l, or -1 when l does not use memory.
  int64_t memory_index(int64_t layer) const;

  // The row of R that the key at `key` of `n_keys` reads for query `r` of `t` (the last t keys
  // are the queries), given Ls short-memory slots; -1: no positional term. Public for tests.
  int64_t position_row(int64_t r, int64_t key, int64_t t, int64_t n_keys, int64_t short_len) const;

  // Tests only: the cached generator hands attention the relative term as the dense (B, H, n,
  // n_keys) logits gathered from q R^T, the path before the band, so that tests can compare the two.
  bool dense_relative_term = false;
};

}  // namespace mnemo::arch
