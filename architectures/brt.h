// Block-Recurrent Transformer (Hutchins, Schlag et al. 2022, arXiv 2203.07852), as the
// lucidrains reference builds it (SPEC.md section 1). A segment of T tokens is processed in
// blocks of W; every layer attends over its XL memory (the previous block's single-head keys
// and values) and the current block (causal); recurrent layers also carry S state vectors:
//
//   per block, layer l (pre-norm):       xn = LN(x);  q = W_q xn;  [k, v] = W_kv xn
//     self-attention    o   = Attn(rot(qkn(q)), rot(qkn([m_k; k])), [m_v; v] | memory visible, causal)
//     read (states s)   sn  = LN_s(s) + P_s;  [ks, vs] = W_skv sn;  r = Attn(W_qs xn, ks, vs)
//     x  = x + W_o [o; r...];   x = x + FF(x)                       (GEGLU, pre-norm)
//     write (layer owns s):  a = Attn(W_sq sn, ks, vs);  b = Attn(W_qf sn, k, v)   (block keys only)
//                            z = W_g W_so [a; b] + b_g;  s' = g z + (1 - g) s,  g = sigmoid(beta)
//   after the block:     m <- MemoryManager(m, [k; v]) only when the block is full (P3), s <- s'
//
// qkn: QK-RMSNorm (l2-normalise, times learned q_scale / k_scale) in recurrent layers (or all);
// logits scaled by qk_rmsnorm_scale (P1: the reference forgets it and uses 1/sqrt(d) instead,
// reproduced under reference_parity). rot: rotary + xPos (SPEC 0.3.2-3) over a table of width
// Wr = 2W (3W with compressed memory); memory keys sit at the positions just before the block.
// States and XL memories flow block to block and segment to segment as Vars (the trainer cuts).
//
// Notation (paper/reference -> code -> shape):
//   x               x, h          (B, m, D)   one block, m <= W tokens
//   m_k, m_v        memory "xl.<l>" (B, W or 0, 2d)   keys | values on the channel axis, unrotated
//   compressed m    memory "xlc.<l>" (B, <= W/2, 2d)  with use_compressed_mem
//   s               memory "state.<i>" (B, S, D); (B, 0, D) = the learned init_state (S, D) (P4)
//   W_q, W_kv, W_o  layers.<l>.attn.to_q / to_kv (D -> 2d, one shared head) / to_out
//   P_s             layers.<l>.attn.state.state_pos_ids (S, D)
//   beta            layers.<l>.attn.state.learned_ema_beta (D)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "architectures/options.h"
#include "architectures/segment_model.h"
#include "layers/compressor.h"
#include "layers/ema_gate.h"
#include "layers/embedding.h"
#include "layers/feed_forward.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/rotary.h"

namespace mnemo::arch {

struct BrtConfig {
  int64_t vocab = 256, dim = 512, depth = 6, heads = 8;
  int64_t dim_head = 0;                         // d; 0: dim / heads
  int64_t seq_len = 1024;                       // T (max_seq_len), a multiple of W
  int64_t block_width = 0;                      // W; 0: seq_len / 2 (seq_len when odd)
  int64_t num_state_vectors = 0;                // S; 0: W
  std::vector<int64_t> recurrent_layers = {};   // 1-based write layers; empty: {max(depth / 2, 1)}
  std::vector<int64_t> read_recurrent_layers = {};  // read layer of each write layer (<= it); empty: same
  bool all_layers_qk_rmsnorm = false;           // QK-RMSNorm everywhere, not only in recurrent layers
  double qk_rmsnorm_scale = 8;                  // logit scale with QK-norm (P1)
  double ff_mult = 4;
  double ff_dropout = 0;                        // inside the feed-forward, after GEGLU (the reference has none)
  double ema_gate_init = 0.5;                   // g0: the state's EMA gate σ(β) starts near it (ema_gate.h)
  bool use_compressed_mem = false;              // second FIFO stage of W/2 conv-compressed slots
  int64_t compressed_mem_factor = 4;            // c
  double rotary_theta = 10000, xpos_scale_base = 512;
  // Reproduce the reference's numerics: P1 (QK-norm logits scaled by 1/sqrt(d)) and
  // right-aligned positions for a partial block (see BlockRecurrentTransformer::positions).
  bool reference_parity = false;

  // The options of model.brt; vocab, dim, depth, heads and seq_len come from model.* and
  // data.segment_len.
  template <class Self, class Visit>
  static void visit_options(Self& c, Visit&& v) {
    v("dim_head", c.dim_head), v("block_width", c.block_width), v("num_state_vectors", c.num_state_vectors);
    v("recurrent_layers", c.recurrent_layers), v("read_recurrent_layers", c.read_recurrent_layers);
    v("all_layers_qk_rmsnorm", c.all_layers_qk_rmsnorm), v("qk_rmsnorm_scale", c.qk_rmsnorm_scale);
    v("ff_mult", c.ff_mult), v("ff_dropout", c.ff_dropout), v("ema_gate_init", c.ema_gate_init);
    v("use_compressed_mem", c.use_compressed_mem);
    v("compressed_mem_factor", c.compressed_mem_factor), v("rotary_theta", c.rotary_theta);
    v("xpos_scale_base", c.xpos_scale_base), v("reference_parity", c.reference_parity);
  }
};

// Fills the derived defaults (dim_head, block_width, num_state_vectors, the recurrent layers)
// and checks every option; throws OptionError naming the option.
BrtConfig resolved(BrtConfig c);

// An attention core with optional QK-RMSNorm (the reference's `Attention`): q, k l2-normalised
// and scaled per feature by q_scale / k_scale (d), logits scaled by `logit_scale`.
struct BrtAttend : nn::Module {
  bool qk_norm;
  double logit_scale;
  Param q_scale, k_scale;  // (d), only with qk_norm

  BrtAttend(nn::Init& init, int64_t dim_head, bool qk_norm, double logit_scale);
  std::pair<Var, Var> normalize(Var q, Var k) const;  // identity without qk_norm
  // Unmasked attention of q (B, H, n, d) over k, v (B, 1, Tk, d): normalise, attend.
  Var operator()(Var q, Var k, Var v) const;
  void visit(nn::ParamVisitor& v) override;
};

// The recurrent state of one write layer (the reference's StateContainer).
struct BrtStateContainer : nn::Module {
  // What a block's read computes from the states entering it; the write reuses it.
  struct Prepared {
    Var s = {};           // (S, D) init_state or (B, S, D)
    Var sn = {};          // (S, D) or (B, S, D): LN_s(s) + P_s
    Var ks = {}, vs = {};  // (B, 1, S, d) single-head state keys / values
  };

  int64_t heads, dim_head;
  nn::LayerNorm state_norm;
  nn::Linear q_to_state, q_from_state, state_to_q, state_to_kv, to_state_out, state_out_to_gate;
  BrtAttend to_state_cross_attn, state_self_attn, from_state_cross_attn;
  nn::EMAGate gate;
  Param init_state, state_pos_ids;  // (S, D) each

  BrtStateContainer(nn::Init& init, const BrtConfig& c, int64_t dim_head, double logit_scale);
  Prepared prepare(Var s, int64_t batch) const;
  Var read(const Prepared& p, Var xn) const;                  // xn (B, n, D) -> (B, n, H d)
  Var write(const Prepared& p, Var k_blk, Var v_blk) const;   // k, v (B, 1, m, d) -> s' (B, S, D)
  void visit(nn::ParamVisitor& v) override;
};

// One layer: attention block (with its optional state container) and the GEGLU feed-forward.
struct BrtLayer : nn::Module {
  nn::LayerNorm norm;                        // attn.norm
  nn::Linear to_q, to_kv, to_out;            // to_out: H d (1 + reads) -> D
  BrtAttend attn;                            // q_scale / k_scale at attn.*
  std::optional<BrtStateContainer> state;    // write layers only
  nn::GegluFeedForward ff;
  std::optional<nn::Compressor> mem_compress;  // (2d, 2d, c), groups 2, with use_compressed_mem

  BrtLayer(nn::Init& init, const BrtConfig& c, bool qk_norm, bool writes, int64_t reads);
  void visit(nn::ParamVisitor& v) override;
};

class BlockRecurrentTransformer : public SegmentModel {
 public:
  BrtConfig cfg;  // resolved: dim_head, S, layer lists filled in
  nn::Embedding token_emb;
  std::vector<BrtLayer> layers;
  nn::LayerNorm norm;
  nn::Linear to_logits;
  nn::Rotary rotary;                              // d, theta, xPos centred on Wr / 2
  std::vector<int64_t> write_layer;               // state i -> 0-based write layer (ascending)
  std::vector<int64_t> read_layer;                // state i -> 0-based read layer
  std::vector<std::vector<int64_t>> reads_at;     // layer -> states it reads, in state order

  BlockRecurrentTransformer(nn::Init& init, BrtConfig cfg);
  // "xl.<l>" (B, 0, 2d) per layer, "xlc.<l>" likewise with compressed memory, "state.<i>" (B, 0, D).
  Memory initial_memory(int64_t batch) const override;
  SegmentOut forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const override;
  std::vector<AttentionLayout> attention_layout(const Memory& memory, int64_t tokens) const override;
  // Per-block key/value cache (brt_generate.cpp), for seg_len = cfg.seq_len.
  std::unique_ptr<Generator> cached_generator(const Memory& memory, int64_t batch, int64_t seg_len) const override;
  void visit(nn::ParamVisitor& v) override;

  // ---- the pieces forward is made of (generation reuses them with a per-block cache) ----
  struct Carry {                   // what flows from block to block
    std::vector<Var> xl, xlc;      // per layer (B, M, 2d) / (B, Mc, 2d); undefined = empty
    std::vector<Var> states;       // per state (S, D) init_state or (B, S, D)
  };
  Carry carry_in(Tape& tape, const MemoryVars& memory, int64_t batch) const;
  MemoryVars carry_out(Tape& tape, const Carry& c, int64_t batch) const;
  // Tokens [j0, j0 + n) of a block at layer l: x (B, n, D); `cached` holds the block's keys
  // and values of tokens [0, j0) at this layer (undefined when j0 = 0); `block_len` is the
  // block's length for positions (W, or the partial length m). Returns x after the layer and
  // this chunk's unrotated [k | v] (B, n, 2d) through kv_out.
  Var layer_forward(int64_t l, Var x, const Carry& c, Var cached, int64_t j0, int64_t block_len,
                    const std::vector<BrtStateContainer::Prepared>& prep, Var* kv_out) const;
  std::vector<BrtStateContainer::Prepared> prepare_states(const Carry& c, int64_t batch) const;
  // After a block with per-layer keys/values kv (B, m, 2d): states written, XL pushed if m = W.
  void end_block(Carry& c, const std::vector<Var>& kv, const std::vector<BrtStateContainer::Prepared>& prep) const;
  Var logits(Var h) const { return to_logits(norm(h)); }

  int64_t rotary_width() const { return (cfg.use_compressed_mem ? 3 : 2) * cfg.block_width; }
  static std::string xl_name(int64_t l) { return "xl." + std::to_string(l); }
  static std::string xlc_name(int64_t l) { return "xlc." + std::to_string(l); }
  static std::string state_name(int64_t i) { return "state." + std::to_string(i); }
};

}  // namespace mnemo::arch
