// The two baselines of issue 6 item 4: a plain segment-local transformer and Transformer-XL
// (Dai et al. 2019), both pre-norm, as SegmentModels.
//
// Transformer (arch "transformer"), per segment, no memory:
//   h^0 = E[x] + P[0..T-1]                         positions restart every segment
//   h^l = h^{l-1} + Attn_l(LN(h^{l-1}) | causal)
//   h^l = h^l + FF_l(LN(h^l))                      FF = w2(drop(gelu(w1 .)))
//   logits = W_o LN(h^L)
//
// TransformerXL (arch "transformer_xl"), per segment tau, layer l:
//   u^{l-1}_tau      = LN(h^{l-1}_tau)                              the layer's (normalised) input
//   h~^{l-1}_tau     = [SG?(m^{l-1}_tau) ; u^{l-1}_tau]             memory in front of the tokens
//   q = u W_q,  k, v = h~ W_kv                                      memory re-projected with current weights
//   A_ij = q_i k_j / sqrt(d) + q_i R_{i-j} / sqrt(d)                relative positions by distance only
//   (causal bottom-right: query i sees all M memories and tokens <= i)
//   m^{l-1}_{tau+1}  = last mem_len of [m^{l-1}_tau ; u^{l-1}_tau]  FIFO, differentiable
// SG (stop-gradient) is the trainer's decision: memories are returned as Vars on the tape.
//
// Notation (paper -> code -> shape):
//   x            tokens             (B, T) i32
//   E            token_emb.weight   (V, D)
//   P            pos_emb.emb.weight (T, D)            Transformer only
//   h^l          h                  (B, T, D)
//   u^l          u                  (B, T, D)
//   m^l          memory "mem.<l>"   (B, M_l, D), M_l <= mem_len, starts (B, 0, D)
//   R            layers.<l>.rel_pos.weight (H, T + mem_len, d)   TransformerXL only, zero-init
//   W_q, W_kv    layers.<l>.attn.to_q / to_kv
//   W_o          to_logits.weight   (V, D)
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
#include "layers/norm.h"
#include "layers/relative_bias.h"

namespace mnemo::arch {

struct TransformerConfig {
  int64_t vocab = 256, dim = 512, depth = 6, heads = 8, seq_len = 512, ff_mult = 4;
  double dropout = 0;
  int64_t mem_len = 0;  // plain transformer: 0; TransformerXL: 0 means seq_len
  bool pre_norm = true;  // only pre-norm is implemented; false is rejected

  // The options of model.transformer, and with `xl` of model.transformer_xl; vocab, dim,
  // depth, heads and seq_len come from model.* and data.segment_len.
  template <class Self, class Visit>
  static void visit_options(Self& c, Visit&& v, bool xl) {
    v("ff_mult", c.ff_mult), v("dropout", c.dropout);
    if (xl) v("mem_len", c.mem_len);
  }
};

// Fills the derived default (TransformerXL's mem_len) and checks every option; throws
// OptionError naming the option.
TransformerConfig resolved(TransformerConfig c, bool xl);

// One pre-norm block: attention and feed-forward residual branches, each behind a LayerNorm.
// TransformerXL adds a relative-position table; the plain model leaves it empty.
struct TransformerBlock : nn::Module {
  nn::LayerNorm attn_norm;
  nn::MultiheadAttention attn;
  nn::LayerNorm ff_norm;
  nn::FeedForward ff;
  std::optional<nn::RelativePositionTable> rel_pos;

  TransformerBlock(nn::Init& init, const TransformerConfig& cfg, bool relative);
  void visit(nn::ParamVisitor& v) override;
};

class Transformer : public SegmentModel {
 public:
  TransformerConfig cfg;
  nn::Embedding token_emb;
  nn::AbsolutePositionEmbedding pos_emb;
  nn::Dropout emb_drop;
  std::vector<TransformerBlock> layers;
  nn::LayerNorm norm;
  nn::Linear to_logits;

  Transformer(nn::Init& init, TransformerConfig cfg);
  Memory initial_memory(int64_t batch) const override;  // empty: segments stand alone
  SegmentOut forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const override;
  std::vector<AttentionLayout> attention_layout(const Memory& memory, int64_t tokens) const override;
  void visit(nn::ParamVisitor& v) override;
};

class TransformerXL : public SegmentModel {
 public:
  TransformerConfig cfg;
  nn::Embedding token_emb;
  nn::Dropout emb_drop;
  std::vector<TransformerBlock> layers;
  nn::LayerNorm norm;
  nn::Linear to_logits;

  TransformerXL(nn::Init& init, TransformerConfig cfg);
  // "mem.0" .. "mem.<depth-1>", each (B, 0, D) in the parameters' dtype.
  Memory initial_memory(int64_t batch) const override;
  SegmentOut forward(Tape& tape, const Tensor& tokens, const MemoryVars& memory) const override;
  std::vector<AttentionLayout> attention_layout(const Memory& memory, int64_t tokens) const override;
  void visit(nn::ParamVisitor& v) override;

  static std::string memory_name(int64_t layer) { return "mem." + std::to_string(layer); }

  // Tests only: hand attention the relative term as the dense (B, H, T, M + T) logits gathered
  // from q R^T, the path before the band, so that tests can compare the two.
  bool dense_relative_term = false;
};

}  // namespace mnemo::arch
