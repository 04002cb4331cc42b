#include "layers/relative_bias.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "layers/testing.h"

namespace mnemo::nn {

// ---- RelativePositionTable -------------------------------------------------------------------

RelativePositionTable::RelativePositionTable(Init& init, int64_t h, int64_t p, int64_t d, bool parity, int64_t t)
    : weight(init.zeros({h, p, d})), heads(h), length(p), dim_head(d), reference_parity(parity), seq_len(t) {
  MNEMO_CHECK(h > 0 && p > 0 && d > 0,
              "[relative_table] expected heads, length, dim_head > 0, got " << h << ", " << p << ", " << d);
  MNEMO_CHECK(!parity || (t > 0 && t <= p),
              "[relative_table] expected 0 < seq_len <= length " << p << " for reference_parity, got " << t);
}

int64_t RelativePositionTable::row(int64_t dist, int64_t n_memories) const {
  if (dist < 0) return -1;
  // The reference slices R relative to the memory length it holds right now, so one distance
  // maps to different rows while memories fill (CT P2); by default only the distance counts.
  const int64_t r = (reference_parity ? n_memories + seq_len : length) - 1 - dist;
  return r >= 0 && r < length ? r : -1;
}

namespace {
// Per (query, key) of q's Tq queries over n_keys keys: the row of R, or -1 for none.
std::vector<int64_t> table_rows(const RelativePositionTable& t, Var q, int64_t n_keys, int64_t n_unpositioned) {
  MNEMO_CHECK(q.rank() == 4 && q.dim(1) == t.heads && q.dim(3) == t.dim_head,
              "[relative_table] expected q (B, " << t.heads << ", Tq, " << t.dim_head << "), got " << q.shape());
  const int64_t Tq = q.dim(2), Tk = n_keys;
  const int64_t M = Tk - n_unpositioned - Tq;  // memories between the unpositioned slots and the queries
  MNEMO_CHECK(n_unpositioned >= 0 && M >= 0, "[relative_table] expected n_keys >= n_unpositioned + Tq = "
                                                 << n_unpositioned << " + " << Tq << ", got " << n_keys);
  MNEMO_CHECK(!t.reference_parity || (Tq <= t.seq_len && M + t.seq_len <= t.length),
              "[relative_table] expected Tq <= seq_len " << t.seq_len << " and memories + seq_len <= length "
                                                         << t.length << " under reference_parity, got Tq " << Tq
                                                         << " with " << M << " memories");
  std::vector<int64_t> rows(size_t(Tq * Tk), -1);
  for (int64_t r = 0; r < Tq; ++r)
    for (int64_t c = n_unpositioned; c < Tk; ++c) rows[size_t(r * Tk + c)] = t.row(M + r - (c - n_unpositioned), M);
  return rows;
}

// The rows in use, [lo, hi]; hi < 0 when none.
void row_range(const std::vector<int64_t>& rows, int64_t P, int64_t& lo, int64_t& hi) {
  lo = P, hi = -1;
  for (int64_t w : rows)
    if (w >= 0) lo = std::min(lo, w), hi = std::max(hi, w);
}

// q R[:, lo:lo+n]^T: (B, H, Tq, n)
Var band_product(Var R, Var q, int64_t lo, int64_t n) {
  const int64_t B = q.dim(0), H = q.dim(1), d = q.dim(3);
  Var band = broadcast_to(slice(R, 1, lo, n), {B, H, n, d});  // (B, H, n, d)
  return matmul(q, band, {.trans_b = true});
}
}  // namespace

Var RelativePositionTable::operator()(Var q, int64_t n_keys, double scale, int64_t n_unpositioned) const {
  return gather_row_logits(q.tape().param(weight), q, n_keys, table_rows(*this, q, n_keys, n_unpositioned), scale);
}

BandBias RelativePositionTable::band(Var q, int64_t n_keys, double scale, int64_t n_unpositioned) const {
  return band_row_logits(q.tape().param(weight), q, n_keys, table_rows(*this, q, n_keys, n_unpositioned), scale);
}

Var gather_row_logits(Var R, Var q, int64_t Tk, const std::vector<int64_t>& rows, double scale) {
  const int64_t B = q.dim(0), H = q.dim(1), Tq = q.dim(2);
  int64_t lo, hi;
  row_range(rows, R.dim(1), lo, hi);
  if (hi < 0) return q.tape().constant(Tensor::zeros({B, H, Tq, Tk}, q.dtype(), q.value().device()));
  const int64_t n = hi - lo + 1;
  Var s = reshape(band_product(R, q, lo, n) * scale, {B, H, Tq * n});  // (B, H, Tq n)
  std::vector<int32_t> idx(rows.size());
  for (int64_t i = 0; i < Tq; ++i)
    for (int64_t j = 0; j < Tk; ++j) {
      const int64_t w = rows[size_t(i * Tk + j)];
      idx[size_t(i * Tk + j)] = w >= 0 ? int32_t(i * n + w - lo) : -1;
    }
  return reshape(index_select_or_zero(s, 2, Tensor::from_ints({Tq * Tk}, idx)), {B, H, Tq, Tk});
}

BandBias band_row_logits(Var R, Var q, int64_t Tk, const std::vector<int64_t>& rows, double scale) {
  const int64_t B = q.dim(0), H = q.dim(1), Tq = q.dim(2);
  MNEMO_CHECK(int64_t(rows.size()) == Tq * Tk,
              "[relative_table] expected " << Tq << " x " << Tk << " rows, got " << rows.size());
  int64_t lo, hi;
  row_range(rows, R.dim(1), lo, hi);
  if (hi < 0) return {};
  const int64_t n = hi - lo + 1;
  // The band's shift and first key from the first key that reads a row; then every (i, j)
  // must be what the band gives it.
  BandBias b{.from = Tk, .scale = scale};  // the kernel scales as it reads: no pass over the band
  bool found = false;
  for (int64_t i = 0; i < Tq; ++i)
    for (int64_t j = 0; j < Tk; ++j)
      if (rows[size_t(i * Tk + j)] >= 0) {
        if (!found) b.shift = rows[size_t(i * Tk + j)] - lo - j + i, found = true;
        b.from = std::min(b.from, j);
      }
  bool fits = true;
  for (int64_t i = 0; i < Tq && fits; ++i)
    for (int64_t j = 0; j < Tk && fits; ++j) {
      const int64_t c = j - i + b.shift;
      fits = rows[size_t(i * Tk + j)] == (j >= b.from && c >= 0 && c < n ? lo + c : -1);
    }
  Var s = band_product(R, q, lo, n);  // (B, H, Tq, n)
  if (fits) {
    b.band = s;
    return b;
  }
  // Any other pattern: column j - i + Tq - 1 of a (Tq + Tk - 1)-wide band holds key j.
  const int64_t W = Tq + Tk - 1;
  std::vector<int32_t> idx(size_t(Tq * W), -1);
  for (int64_t i = 0; i < Tq; ++i)
    for (int64_t j = 0; j < Tk; ++j)
      if (const int64_t w = rows[size_t(i * Tk + j)]; w >= 0)
        idx[size_t(i * W + j - i + Tq - 1)] = int32_t(i * n + w - lo);
  Var wide = index_select_or_zero(reshape(s, {B, H, Tq * n}), 2, Tensor::from_ints({Tq * W}, idx));
  return {.band = reshape(wide, {B, H, Tq, W}), .shift = Tq - 1, .from = 0, .scale = scale};
}

Var add_position_logits(Var logits, Var rel) {
  MNEMO_CHECK(logits.rank() == 4 && rel.shape() == logits.shape(),
              "[relative_table] expected logits and rel of one shape (B, H, Tq, Tk), got " << logits.shape()
                                                                                          << " and " << rel.shape());
  return logits + rel;
}

// ---- DynamicPositionBias ---------------------------------------------------------------------

DynamicPositionBias::DynamicPositionBias(Init& init, int64_t w, int64_t h)
    : in(init, 1, w), hidden(init, w, w), out(init, w, h), heads(h) {}

namespace {
// |i + offset - j| over (Tq, Tk), flattened; also returns the largest value.
std::vector<int64_t> distances(int64_t tq, int64_t tk, int64_t offset, int64_t& max_dist) {
  std::vector<int64_t> d(size_t(tq * tk));
  max_dist = 0;
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) max_dist = std::max(max_dist, d[size_t(i * tk + j)] = std::abs(i + offset - j));
  return d;
}
}  // namespace

Var DynamicPositionBias::operator()(Tape& tape, int64_t tq, int64_t tk, std::optional<int64_t> offset) const {
  MNEMO_CHECK(tq > 0 && tk > 0, "[dynamic_position_bias] expected Tq, Tk > 0, got " << tq << ", " << tk);
  int64_t max_dist = 0;
  const std::vector<int64_t> dist = distances(tq, tk, offset.value_or(tk - tq), max_dist);
  // the MLP runs once per distinct distance, not per (i, j) pair
  std::vector<double> grid(size_t(max_dist + 1));
  for (int64_t k = 0; k <= max_dist; ++k) grid[size_t(k)] = double(k);
  Var x = tape.constant(Tensor::from({max_dist + 1, 1}, grid, in.weight.value.dtype(), in.weight.value.device()));  // (n, 1)
  Var b = out(silu(hidden(silu(in(x)))));                                                 // (n, H)
  std::vector<int32_t> idx(dist.begin(), dist.end());
  Var g = reshape(index_select(b, 0, Tensor::from_ints({tq * tk}, idx)), {tq, tk, heads});  // (Tq, Tk, H)
  return permute(g, {2, 0, 1});
}

// ---- T5RelativeBias --------------------------------------------------------------------------

T5RelativeBias::T5RelativeBias(Init& init, int64_t h, int64_t nb, int64_t md)
    : weight(init.normal({nb, h})), heads(h), num_buckets(nb), max_distance(md) {
  MNEMO_CHECK(h > 0 && nb >= 2 && md > nb / 2, "[t5_bias] expected heads > 0, num_buckets >= 2, max_distance > "
                                                   "num_buckets / 2, got " << h << ", " << nb << ", " << md);
}

int64_t T5RelativeBias::bucket(int64_t dist, int64_t nb, int64_t md) {
  const int64_t exact = nb / 2;
  if (dist < exact) return std::max<int64_t>(dist, 0);
  // float32 like the reference's torch.log on a float tensor, then truncation by .long()
  const float log_ratio = float(std::log(double(md) / double(exact)));
  const float v = std::log(float(dist) / float(exact)) / log_ratio * float(nb - exact);
  return std::min<int64_t>(exact + int64_t(v), nb - 1);
}

Var T5RelativeBias::operator()(Tape& tape, int64_t tq, int64_t tk, std::optional<int64_t> offset) const {
  MNEMO_CHECK(tq > 0 && tk > 0, "[t5_bias] expected Tq, Tk > 0, got " << tq << ", " << tk);
  const int64_t off = offset.value_or(tk - tq);
  std::vector<int32_t> ids(size_t(tq * tk));
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) ids[size_t(i * tk + j)] = int32_t(bucket(i + off - j, num_buckets, max_distance));
  Var g = embedding(tape.param(weight), Tensor::from_ints({tq, tk}, ids));  // (Tq, Tk, H)
  return permute(g, {2, 0, 1});
}

// ---- gradient checks -------------------------------------------------------------------------

using gradcheck::Sample;
namespace {
// A zero table would make the check blind to the gradient of q: start from random rows.
RelativePositionTable& random_table(Sample& s, int64_t h, int64_t p, int64_t d, bool parity, int64_t t) {
  return s.once<RelativePositionTable>(
      [&] {
        Init init(1234, DType::f64);
        auto l = std::make_shared<RelativePositionTable>(init, h, p, d, parity, t);
        l->weight.value = Tensor::uniform({h, p, d}, init.rng(), -1, 1, DType::f64);
        return l;
      },
      [](RelativePositionTable& l) { return params(l); });
}
}  // namespace
MNEMO_GRADCHECK("layers.relative_table", [](Sample& s) {
  RelativePositionTable& t = random_table(s, 2, 6, 3, false, 0);
  return t(s.input({2, 2, 3, 3}), 7, 0.5, 1);  // one persistent slot, three memories
});
MNEMO_GRADCHECK("layers.relative_table.parity", [](Sample& s) {
  RelativePositionTable& t = random_table(s, 2, 8, 3, true, 4);
  return t(s.input({1, 2, 3, 3}), 5, 0.5);  // a short segment (3 of 4) after two memories
});
MNEMO_GRADCHECK("layers.relative_table.band", [](Sample& s) {  // through the fused op's shifted bias
  RelativePositionTable& t = random_table(s, 2, 6, 3, false, 0);
  Var q = s.input({2, 2, 3, 3}), k = s.input({2, 2, 7, 3}), v = s.input({2, 2, 7, 3});
  return attention(q, k, v, {.prefix = 4, .causal = true, .band_bias = t.band(q, 7, 0.5, 1)});
});
MNEMO_GRADCHECK("layers.relative_table.band_parity", [](Sample& s) {
  RelativePositionTable& t = random_table(s, 2, 8, 3, true, 4);
  Var q = s.input({1, 2, 3, 3}), k = s.input({1, 2, 5, 3}), v = s.input({1, 2, 5, 3});
  return attention(q, k, v, {.prefix = 2, .causal = true, .band_bias = t.band(q, 5, 0.5)});
});
MNEMO_GRADCHECK("layers.dynamic_position_bias", [](Sample& s) {
  return checked_layer<DynamicPositionBias>(s, 4, 2)(s.tape(), 3, 5);
});
MNEMO_GRADCHECK("layers.t5_bias", [](Sample& s) {
  return checked_layer<T5RelativeBias>(s, 2, 8, 16)(s.tape(), 4, 20);
});

}  // namespace mnemo::nn
