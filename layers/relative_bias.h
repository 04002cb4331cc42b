// Relative position biases added to attention logits.
//   RelativePositionTable (CT, MemXL; SPEC 0.3.4): R "weight" (H, P, d), zero-init;
//     rel[b,h,i,j] = scale * q[b,h,i] . R[h, row(dist)],  dist = (position of query i) - j,
//     row = P-1-dist (default) or total_len-1-dist (reference_parity, total_len = M + seq_len).
//   DynamicPositionBias (old BRT; 0.3.5): MLP 1 -> w -> SiLU -> w -> SiLU -> H on |i + offset - j|.
//   T5RelativeBias (BRT paper; 0.3.6): a learned (num_buckets, H) table over bucketed causal distances.
#pragma once

#include <optional>
#include <vector>

#include "layers/linear.h"

namespace mnemo::nn {

struct RelativePositionTable : Module {
  Param weight;  // (H, P, d)
  int64_t heads, length, dim_head;
  bool reference_parity;
  int64_t seq_len;  // T, the full segment length; only the parity rule reads it

  RelativePositionTable(Init& init, int64_t heads, int64_t length, int64_t dim_head, bool reference_parity = false,
                        int64_t seq_len = 0);

  // q (B, H, Tq, d) are the last Tq of n_keys keys, ordered [n_unpositioned slots (persistent
  // memory: zero positional logit), M memories, Tq current tokens]. Returns the additive
  // logit term (B, H, Tq, n_keys); future keys and distances past the table give 0.
  Var operator()(Var q, int64_t n_keys, double scale, int64_t n_unpositioned = 0) const;
  // The same term as a band for the fused attention op (AttentionSpec::band_bias): the
  // (B, H, Tq, n) product with the rows in use, read through the relative shift.
  BandBias band(Var q, int64_t n_keys, double scale, int64_t n_unpositioned = 0) const;

  // The row of R that a key at distance dist >= 0 reads, with M memories in front; -1 = none.
  int64_t row(int64_t dist, int64_t n_memories) const;

  void visit(ParamVisitor& v) override { v("weight", weight); }
};

// logits (B, H, Tq, Tk) + rel (B, H, Tq, Tk), checked, for explicit-logit attention paths; the
// fused attention op takes rel as is through AttentionSpec::bias.
Var add_position_logits(Var logits, Var rel);

// rel[b, h, i, j] = scale q[b, h, i] . R[h, rows[i Tk + j]], 0 where the row is -1: q (B, H,
// Tq, d), R (H, L, d). Only the band of rows in use enters the matmul; a zero column stands for
// "no row", so one gather builds the whole (Tq, Tk) pattern.
Var gather_row_logits(Var R, Var q, int64_t Tk, const std::vector<int64_t>& rows, double scale);
// The same logits as a band (BandBias): the product of q with the band of rows in use, which
// key j of query i reads at column j - i + shift. Every rule of the tables here (and MemXL's)
// gives rows of that form, row = lo + j - i + shift for keys from `from` on, inside the band;
// rows of any other pattern are gathered into a band of width Tq + Tk - 1 (correct, not lean).
// Undefined when no key reads a row.
BandBias band_row_logits(Var R, Var q, int64_t Tk, const std::vector<int64_t>& rows, double scale);

struct DynamicPositionBias : Module {
  Linear in, hidden, out;  // "mlp.0", "mlp.2", "mlp.4" as in the reference's nn.Sequential
  int64_t heads;

  DynamicPositionBias(Init& init, int64_t width, int64_t heads);  // width = D/4 in BRT
  // (H, Tq, Tk) for the fused attention op's bias; offset defaults to Tk - Tq (queries at the end).
  Var operator()(Tape& tape, int64_t tq, int64_t tk, std::optional<int64_t> offset = {}) const;

  void visit(ParamVisitor& v) override {
    v.sub("mlp.0", in);
    v.sub("mlp.2", hidden);
    v.sub("mlp.4", out);
  }
};

struct T5RelativeBias : Module {
  Param weight;  // (num_buckets, H), N(0, 1) like nn.Embedding
  int64_t heads, num_buckets, max_distance;

  T5RelativeBias(Init& init, int64_t heads, int64_t num_buckets = 32, int64_t max_distance = 128);
  // (H, Tq, Tk); distance of query i to key j is i + offset - j, offset defaults to Tk - Tq.
  Var operator()(Tape& tape, int64_t tq, int64_t tk, std::optional<int64_t> offset = {}) const;

  // Causal T5 bucket: dist <= 0 -> 0; dist < nb/2 exact; then log-spaced up to max_distance,
  // clamped to nb - 1.
  static int64_t bucket(int64_t dist, int64_t num_buckets, int64_t max_distance);

  void visit(ParamVisitor& v) override { v("weight", weight); }
};

}  // namespace mnemo::nn
