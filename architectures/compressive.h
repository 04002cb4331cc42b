// Compressive Transformer (Rae et al. 2020; SPEC §3) as a SegmentModel, arch "compressive".
// A Transformer-XL whose evicted memory slots are not dropped but compressed c:1 by a learned
// Conv1d into a second, longer-reaching memory, trained by an attention-reconstruction loss.
//
// Per segment tau (n <= T tokens), layer l (pre-norm; Gate = GRU gate, or a residual add):
//   u      = LN_l(h)                                        the layer's normalised input
//   [cm; m] = the memories layer l reads (memory layers only; see "enhanced recurrence")
//   q = u W_q;  k, v = [cm; m; u] W_kv                      memories re-projected by current weights
//   A_ij = q_i k_j / sqrt(d) + q_i R[row(i - j)] / sqrt(d)  (causal: all memories, tokens <= i)
//   h = Gate(h, Attn(u) W_out + b_out);  h = Gate(h, FF(LN'_l(h)))
// logits = W_o [LN_f] h                                     LN_f: the final norm (P6), optional
//
// Memory update of memory layer l, on full segments (n = T) only:
//   [m'; e] = FIFO(m, u, mem_len)          m' the newest mem_len slots, e the evicted oldest
//   cm'     = last cmem_len of [cm; SG(f_c(SG(e)))]   f_c: Conv1d(kernel = stride = c) on time
//            (compressor_task_grad: [cm; f_c(SG(e))], the task loss trains f_c as well)
//   L_aux   = || Attn(SG q, SG K(e), SG V(e)) - Attn(SG q, K(f_c(SG e)), V(f_c(SG e))) ||^2 (mean)
//            where K, V use SG(W_kv): the reconstruction loss trains the compressor only, and
//            W_kv keeps training on the task loss (P1: the reference freezes W_kv instead).
//   aux = reconstruction_loss_weight * sum_l L_aux / (number of memory layers)   (training only)
// The compressed memory is stop-gradient on return, so the task loss never reaches f_c; m' keeps
// its graph (the trainer cuts it at BPTT window edges), except under reference_parity, where
// both are detached as the reference does.
//
// Enhanced recurrence (ERNIE-Doc, default on): memory layer j reads, next segment, what memory
// layer j + 1 stored (its normalised input, i.e. about layer j's own output). The top memory
// layer has no layer above: it reads its own memory. The reference wraps around instead (P5:
// the top layer reads the bottom layer's memory), reproduced under reference_parity.
//
// Relative positions: one table R (H, P = T + mem_len + cmem_len, d) shared by all layers, zero-init;
// a key at distance dist reads row P - 1 - dist at every memory fill level (P2: the reference uses
// row M + T - 1 - dist, M the memory slots held right now; reproduced under reference_parity).
//
// Notation (paper -> code -> shape):
//   x         tokens                                    (B, n) i32, n <= T
//   E         token_emb.weight (+ to_model_dim)         (V, E) [E -> D]
//   h, u      h, u                                      (B, n, D)
//   m, cm     memory "mem", "cmem", stacked by memory   (Lm, B, <= mem_len, D), (Lm, B, <= cmem_len, D)
//             layer (bottom first); empty at the start
//   R         pos_emb                                   (H, T + mem_len + cmem_len, d)
//   W_q, W_kv, W_out   attn_layers.<l>.fn.fn.to_q / to_kv / to_out
//   f_c       attn_layers.<l>.fn.fn.compress_mem_fn.conv (weight (D, D, c), bias (D))
//   LN_l, LN'_l  attn_layers.<l>.fn.norm, ff_layers.<l>.fn.norm
//   FF        ff_layers.<l>.fn.fn.w1 / w2
//   Gate      attn_layers.<l>.gru (+ .mogrify), ff_layers.<l>.gru
//   W_o       [to_logits.0 (D -> E)] to_logits.1 (E -> V);  LN_f: norm
// Parameter names are the reference's state-dict names, so its weights import as they are.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "architectures/options.h"
#include "architectures/segment_model.h"
#include "layers/attention.h"
#include "layers/compressor.h"
#include "layers/embedding.h"
#include "layers/feed_forward.h"
#include "layers/gru_gate.h"
#include "layers/norm.h"
#include "layers/relative_bias.h"

namespace mnemo::arch {

struct CompressiveConfig {
  int64_t vocab = 256, dim = 512, depth = 8, heads = 8, seq_len = 512;  // V, D, L, H, T
  int64_t emb_dim = 0;                 // E, ALBERT factorisation; 0: = dim (no factorisation)
  std::vector<int64_t> memory_layers = {};  // 1-based layers that keep memories; empty: all
  bool enhanced_recurrence = true;     // ERNIE-Doc: memory layer j reads layer j + 1's memory
  int64_t mem_len = 0;                 // FIFO slots per memory layer; 0: = seq_len (>= seq_len)
  int64_t cmem_len = -1;               // compressed slots per memory layer; -1: mem_len / cmem_ratio
  int64_t cmem_ratio = 4;              // c
  bool gru_gated_residual = true;      // GRU gate instead of the residual add, both sub-layers
  bool mogrify_gru = false;            // Mogrifier before each GRU gate
  std::optional<double> gate_bias_init = {};  // P7: added to the GRU update-gate bias; unset: 2 (identity-
                                       // favouring), 0 under reference_parity
  bool ff_glu = false;
  double attn_dropout = 0, ff_dropout = 0, attn_layer_dropout = 0, reconstruction_attn_dropout = 0;
  double reconstruction_loss_weight = 1;
  // The paper stops the task loss at the compressed memory, so only the reconstruction loss
  // trains f_c. true lets the task loss of later segments reach f_c too (its input, the evicted
  // slots, stays stop-gradient): an ablation of that choice. Not with reference_parity.
  bool compressor_task_grad = false;
  std::optional<bool> final_norm = {}; // P6: LayerNorm before the output projection; unset: !reference_parity
  // The reference's numerics: P2 relative rows, P3 padding, P4 reconstruction target, P5 wrap-
  // around, detached memories and rotated memories returned by partial segments; final_norm and
  // gate_bias_init then default to off (P6, P7). P1's W_kv freeze is never reproduced.
  bool reference_parity = false;
  // Gradient checks only: false lets every path carry gradient (no stop-gradient anywhere), so
  // finite differences can check the whole computation, the reconstruction loss included.
  bool stop_gradients = true;

  // The options of model.compressive; vocab, dim, depth, heads and seq_len come from model.*
  // and data.segment_len. stop_gradients is for gradient checks, not a user option.
  template <class Self, class Visit>
  static void visit_options(Self& c, Visit&& v) {
    v("reference_parity", c.reference_parity), v("emb_dim", c.emb_dim), v("memory_layers", c.memory_layers);
    v("enhanced_recurrence", c.enhanced_recurrence), v("mem_len", c.mem_len), v("cmem_ratio", c.cmem_ratio);
    v("cmem_len", c.cmem_len), v("gru_gated_residual", c.gru_gated_residual), v("mogrify_gru", c.mogrify_gru);
    v("ff_glu", c.ff_glu), v("attn_dropout", c.attn_dropout), v("ff_dropout", c.ff_dropout);
    v("attn_layer_dropout", c.attn_layer_dropout), v("reconstruction_attn_dropout", c.reconstruction_attn_dropout);
    v("reconstruction_loss_weight", c.reconstruction_loss_weight), v("final_norm", c.final_norm);
    v("gate_bias_init", c.gate_bias_init), v("compressor_task_grad", c.compressor_task_grad);
  }
};

// attn_layers.<l>: x <- Gate(x, Attn(LN(x))), or x + Attn(LN(x)). Visited as the reference's
// GRUGating(PreNorm(SelfAttention)): "fn.norm", "fn.fn.to_q/to_kv/to_out",
// "fn.fn.compress_mem_fn.conv", "gru" (+ "mogrify").
struct GatedAttention : nn::Module {
  nn::LayerNorm norm;
  nn::MultiheadAttention attn;
  nn::Compressor compress;
  std::optional<nn::GRUGate> gate;
  GatedAttention(nn::Init& init, const CompressiveConfig& cfg);
  void visit(nn::ParamVisitor& v) override;
};

struct GatedFeedForward : nn::Module {
  nn::LayerNorm norm;
  nn::FeedForward fn;
  std::optional<nn::GRUGate> gate;
  GatedFeedForward(nn::Init& init, const CompressiveConfig& cfg);
  Var operator()(Var h) const;  // (B, n, D) -> (B, n, D)
  void visit(nn::ParamVisitor& v) override;
};

class CompressiveTransformer : public SegmentModel {
 public:
  CompressiveConfig cfg;
  nn::FactorizedEmbedding emb;            // token_emb [+ to_model_dim]
  nn::RelativePositionTable rel;          // pos_emb
  std::vector<GatedAttention> attn_layers;
  std::vector<GatedFeedForward> ff_layers;
  std::optional<nn::LayerNorm> norm;      // final norm (P6)
  nn::LogitsHead head;                    // to_logits.0 (E != D), to_logits.1

  CompressiveTransformer(nn::Init& init, CompressiveConfig cfg);
  // "mem" (Lm, B, 0, D) and "cmem" (Lm, B, 0, D), Lm = number of memory layers.
  Memory initial_memory(int64_t batch) const override;
  // aux_loss: the weighted reconstruction loss, defined only while training and only on
  // segments that compressed something.
  SegmentOut forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const override;
  std::vector<AttentionLayout> attention_layout(const Memory& memory, int64_t tokens) const override;
  // Per-token key/value cache (compressive_generate.cpp), for seg_len <= cfg.seq_len.
  std::unique_ptr<Generator> cached_generator(const Memory& memory, int64_t batch, int64_t seg_len) const override;
  void visit(nn::ParamVisitor& v) override;

  int64_t num_memory_layers() const { return int64_t(cfg.memory_layers.size()); }
  // Memory layer j (0-based, bottom first) of layer l, or -1 for a layer without memory.
  int64_t memory_slot(int64_t layer) const { return memory_slot_[size_t(layer)]; }
  // Which stored memory memory layer j reads (enhanced recurrence, P5).
  int64_t memory_source(int64_t j) const;
  // The row of pos_emb a key at distance dist reads with n_memories slots in front (P2).
  int64_t relative_row(int64_t dist, int64_t n_memories) const { return rel.row(dist, n_memories); }
  // Per (query, key): the rows read by the last n of n_keys keys as queries, the model holding
  // n_memories slots; under reference_parity a memory-less layer's rows read that count too (P2).
  std::vector<int64_t> relative_rows(int64_t n, int64_t n_keys, int64_t n_memories) const;

  // Tests only: hand attention the relative term as the dense (B, H, n, n_keys) logits gathered
  // from q R^T, the path before the band, so that tests can compare the two.
  bool dense_relative_term = false;

 private:
  struct LayerMemory;
  LayerMemory update_memory(const GatedAttention& a, Var mem, Var cmem, Var u) const;
  Var reconstruction_loss(const GatedAttention& a, Var u, Var target, Var compressed) const;

  std::vector<int64_t> memory_slot_;  // per layer
};

// Fills the derived defaults (emb_dim, mem_len, cmem_len, memory_layers, final_norm,
// gate_bias_init) and checks every option; throws OptionError naming the option.
CompressiveConfig resolved(CompressiveConfig c);

}  // namespace mnemo::arch
