// Recurrent Memory Transformer (Bulatov, Kuratov & Burtsev 2022, "Recurrent Memory
// Transformer", NeurIPS) as lucidrains/recurrent-memory-transformer-pytorch builds it
// (SPEC section 2): m memory slots are read in front of every segment and written behind it,
// the written slots become the next segment's read slots, and the gradient runs through that
// recurrence for as many segments as the trainer's BPTT window spans. Per segment tau:
//
//   x      = E[tokens] (+ P[0..n-1]),  x <- f x + (1 - f) SG(x)          Sec. 2.2 step 1 (CogView trick)
//   Rm     = M_tau + R_emb            (M_0 = 0: R_emb alone)              read slots, step 3
//   Wm     = W_tok (+ [SG] M_tau)      (add_write_to_next_write_mem)      write slots, step 2 (paper Fig. 1)
//   h^0    = [Rm ; x ; Wm]             (B, r + n + m, D)                   step 4
//   H      = S copies of h^0           hyper-connection streams (SPEC 0.6)
//   per layer l:  H <- HC_attn(H, Attn_l(RMSNorm(.) | mask, [xl_l ; null]))
//                 H <- HC_ff(H, GEGLU_l(RMSNorm(.)))
//   h      = RMSNorm(sum_s H_s)  ->  [_ ; h_tok ; h_write]
//   logits = W_o h_tok + b_o;   M_{tau+1} = h_write                       steps 8-9 (after the norm, P10)
//   xl_l'  = SG(last xl_mem_len token keys/values of layer l)             Transformer-XL cache (P8 fixed)
//
// Mask (memory_not_causal, step 5): read rows see the read slots only, token rows the read
// slots and tokens up to themselves, write rows everything; the XL cache and the learned
// null slot are visible to every row. Rotary (on unless reference_parity, P11: absolute
// positions restart every segment and alone cannot tell a cached key from this segment's key
// at the same place): memory slots at position 0, token i at 10000 + L_xl + i, XL key j at
// 10000 + j, the null key at 9999 (P3 fixed).
//
// Notation (paper / SPEC -> code -> shape):
//   tokens       tokens                                (B, n) i32, n <= seq_len
//   E            token_emb.weight                      (V, D)
//   P            pos_emb.emb.weight                    (seq_len, D)          abs_pos_emb
//   R_emb        read_memory_emb                       (m, D)
//   W_tok        memory_tokens                         (m, D)
//   M_tau        memory "write"                        (B, m, D); (B, 0, D) = no read slots
//   xl_l         memory "xl.<l>"                       (B, 2, H, L, d): keys then values, L <= xl_mem_len
//   null         layers.<l>.attn.null_kv               (2, H, d)
//   HC           layers.<l>.{attn_hc, ff_hc}.*         static/dynamic alpha and beta (S > 1)
//   W_q, W_kv    layers.<l>.attn.{to_q, to_kv}.weight  (H d, D), (2 H d, D)
//   mix          layers.<l>.attn.to_value_residual_mix (H, D)                layers >= 1 (value residual)
//   W_o, b_o     to_logits.{weight, bias}              (V, D), (V)
//
// reference_parity reproduces the pinned reference's numbers: hyper-connections keep the
// unmixed streams (SPEC 0.6), the XL cache is the last xl_mem_len slots of [null, read,
// tokens, write] (P8), XL keys and the null key take the misaligned rotary positions (P3),
// rotary angles are f32 products, enhanced_xl_recurrence does nothing (P4), rotary is off
// unless asked for (P11).
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
#include "layers/hyper_connections.h"
#include "layers/norm.h"
#include "layers/rotary.h"

namespace mnemo::arch {

struct RmtConfig {
  int64_t vocab = 256, dim = 512, depth = 6;     // V, D, L
  int64_t heads = 8, dim_head = 0;               // H, d (H d need not equal D); 0: dim / heads
  int64_t seq_len = 512;                         // n_max: tokens per segment, size of P
  int64_t num_memory_tokens = 0;                 // m: read slots and write slots (required)
  double ff_mult = 4;                            // GEGLU inner width int(D mult 2/3)
  bool causal = true;                            // false: an encoder, every slot sees every slot
  bool memory_not_causal = true;                 // the memory-aware mask; false: one causal triangle (P5 fixed)
  // Positions, at least one of the two. Absolute positions restart every segment, so alone they
  // give a cached key and this segment's key at the same place the same position (P11);
  // rotary places the cache before the segment. Unset rotary_pos_emb: true, false (the
  // reference's) under reference_parity.
  bool abs_pos_emb = true;                       // learned absolute token positions
  std::optional<bool> rotary_pos_emb = {};       // rotary, theta 32768
  double rotary_theta = 32768;
  bool use_xl_memories = true;                   // per-layer key/value caches
  int64_t xl_mem_len = 0;                        // L_max; 0 = seq_len; at most seq_len
  bool enhanced_xl_recurrence = false;           // ERNIE-Doc: layer l reads layer l+1's cache (P4 fixed)
  double emb_gradient_frac = 0.1;                // f: gradient fraction into the embeddings
  bool add_write_to_next_write_mem = false;      // Wm = W_tok + M_tau (the paper's recurrent write)
  bool next_write_mem_stop_grad = true;          // ... with SG(M_tau)
  bool always_have_read_memories = true;         // m read slots on the first segment too
  bool mask_out_read_memories = false;           // hide the read slots' keys from every row (P7 fixed)
  int64_t num_residual_streams = 4;              // S hyper-connection streams; 1 = plain residual
  bool value_residual = true;                    // layers >= 1 mix in layer 0's values
  bool null_kv = true;                           // a learned key/value every row may attend to
  double attn_dropout = 0, ff_dropout = 0;
  bool reference_parity = false;

  // The options of model.rmt (the reference's constructor arguments under the same names);
  // vocab, dim, depth, heads and seq_len come from model.* and data.segment_len.
  template <class Self, class Visit>
  static void visit_options(Self& c, Visit&& v) {
    v("num_memory_tokens", c.num_memory_tokens), v("dim_head", c.dim_head), v("ff_mult", c.ff_mult);
    v("causal", c.causal), v("memory_not_causal", c.memory_not_causal), v("abs_pos_emb", c.abs_pos_emb);
    v("rotary_pos_emb", c.rotary_pos_emb), v("rotary_theta", c.rotary_theta);
    v("use_xl_memories", c.use_xl_memories), v("xl_mem_len", c.xl_mem_len);
    v("enhanced_xl_recurrence", c.enhanced_xl_recurrence), v("emb_gradient_frac", c.emb_gradient_frac);
    v("add_write_to_next_write_mem", c.add_write_to_next_write_mem);
    v("next_write_mem_stop_grad", c.next_write_mem_stop_grad);
    v("always_have_read_memories", c.always_have_read_memories);
    v("mask_out_read_memories", c.mask_out_read_memories), v("num_residual_streams", c.num_residual_streams);
    v("value_residual", c.value_residual), v("null_kv", c.null_kv), v("attn_dropout", c.attn_dropout);
    v("ff_dropout", c.ff_dropout), v("reference_parity", c.reference_parity);
  }
};

// Fills the derived defaults (dim_head, xl_mem_len, rotary_pos_emb) and checks every option;
// throws OptionError naming the option.
RmtConfig resolved(RmtConfig c);

// One layer: a hyper-connected attention branch and a hyper-connected GEGLU branch.
struct RmtLayer : nn::Module {
  nn::HyperConnections attn_hc;
  nn::RMSNorm attn_norm;
  nn::MultiheadAttention attn;
  Param null_kv;  // (2, H, d); empty when null_kv is off
  nn::HyperConnections ff_hc;
  nn::GegluFeedForward ff;

  RmtLayer(nn::Init& init, const RmtConfig& cfg, int64_t index);
  void visit(nn::ParamVisitor& v) override;
};

class RecurrentMemoryTransformer : public SegmentModel {
 public:
  RmtConfig cfg;
  nn::Embedding token_emb;
  std::optional<nn::AbsolutePositionEmbedding> pos_emb;
  Param read_memory_emb;  // (m, D) ~ N(0, 0.02)
  Param memory_tokens;    // (m, D) ~ N(0, 0.02)
  std::vector<RmtLayer> layers;
  nn::RMSNorm norm;
  nn::Linear to_logits;
  std::optional<nn::Rotary> rotary;

  RecurrentMemoryTransformer(nn::Init& init, RmtConfig cfg);

  // "write" (B, m, D) zeros: read slots hold R_emb alone, as on the reference's first call
  // ((B, 0, D) when always_have_read_memories is off: no read slots); "xl.<l>" (B, 2, H, 0, d).
  Memory initial_memory(int64_t batch) const override;
  // The XL caches leave every segment stop-gradient (Transformer-XL); only "write" carries one.
  bool memory_takes_gradient(const std::string& name) const override { return name == kWrite; }
  // Memories missing from `memory` count as initial. Returns "write" and, with XL memories
  // on, every "xl.<l>"; "write" keeps its graph, the XL caches are stop-gradient.
  SegmentOut forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const override;
  std::vector<AttentionLayout> attention_layout(const Memory& memory, int64_t tokens) const override;
  void visit(nn::ParamVisitor& v) override;

  // The visibility rule of step 5 for `read` read rows and `write` write rows (keys in the
  // same order, after the always-visible XL and null prefix), as the attention op takes it.
  nn::AttentionContext mask_context(int64_t read, int64_t write) const;
  // Rotary positions of the queries [read, tokens, write] and of the keys [xl, null, read,
  // tokens, write] with `xl_len` cached keys (SPEC 2.2 step 6; P3 under reference_parity).
  std::pair<std::vector<int64_t>, std::vector<int64_t>> rotary_positions(int64_t read, int64_t n, int64_t write,
                                                                         int64_t xl_len) const;
  // Which layer's cache layer `l` attends to.
  int64_t xl_source(int64_t l) const;
  // Rotary of q and k at those positions (f32 tables under reference_parity); rotary on.
  std::pair<Var, Var> rotate(Var q, Var k, const std::vector<int64_t>& q_pos, const std::vector<int64_t>& k_pos) const;

  // Per-token key/value cache (rmt_generate.cpp), for a causal model and seg_len <= seq_len.
  std::unique_ptr<Generator> cached_generator(const Memory& memory, int64_t batch, int64_t seg_len) const override;
  // ---- pieces of forward() the cached decoder runs ----
  Var embed(Tape& tape, const Tensor& tokens, int64_t offset) const;           // step 1, positions offset..
  Var read_slots(Tape& tape, const MemoryVars& memory, int64_t batch) const;  // Rm (B, m, D), or undefined: none
  std::vector<Var> xl_caches(const MemoryVars& memory, int64_t batch) const;  // per layer, undefined when empty
  std::pair<Var, Var> null_key_value(int64_t layer, Tape& tape, int64_t batch) const;  // (B, H, 1, d) each, or undefined

  static std::string xl_name(int64_t layer) { return "xl." + std::to_string(layer); }
  static constexpr const char* kWrite = "write";
};

}  // namespace mnemo::arch
