// Fused attention, tiled over (batch, head, query block) with an online softmax (Dao et
// al., FlashAttention). Forward keeps only O and the per-row log-sum-exp; backward
// recomputes each probability tile from them, so nothing Tq x Tk is ever held per head.
//   S = scale Q K^T + bias,  P = softmax(S) over visible keys,  O = P V
//   dV = P^T dO,  dP = dO V^T,  dS = P (dP - rowsum(dO O)),  dQ = scale dS K,  dK = scale dS^T Q,
//   dbias = dS (summed over the batch when the bias is shared by it); a bias_scale multiplies
//   the bias where it is read and dbias where it is written
// A banded bias (AttentionDesc::bias_band, the relative shift) is read and its gradient
// written through the shifted index, one contiguous run of band columns per row and key block.
// Which keys a row sees is described by AttentionDesc (kernels.h): an always-visible
// prefix, one interval of the other keys per row, then optional padding and dense masks.
#include <cmath>
#include <cstring>
#include <limits>
#include <omp.h>
#include <type_traits>
#include <vector>

#include "kernels/memory.h"
#include "kernels/cpu/bf16_tile.h"
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec.h"

namespace mnemo::kernels::cpu {
namespace {

constexpr int64_t kBlockQ = 64, kBlockK = 64;

// Everything a tile needs to know about one (batch, head, query block).
struct RowBlock {
  const AttentionDesc& a;
  int64_t b, h, q0, nq;
  int64_t lo[kBlockQ], hi[kBlockQ];  // per row, in main-key coordinates
  int64_t span_lo = 0, span_hi = -1; // union of the rows' intervals

  RowBlock(const AttentionDesc& desc, int64_t b_, int64_t h_, int64_t q0_)
      : a(desc), b(b_), h(h_), q0(q0_), nq(std::min(kBlockQ, desc.Tq - q0_)) {
    span_lo = a.Tk;
    for (int64_t r = 0; r < nq; ++r) {
      attention_row_interval(a, q0 + r, lo[r], hi[r]);
      if (lo[r] <= hi[r]) {
        span_lo = std::min(span_lo, lo[r]);
        span_hi = std::max(span_hi, hi[r]);
      }
    }
  }

  // Offset of row r's bias (and bias gradient) for this (batch, head).
  int64_t bias_row(int64_t r) const {
    const int64_t width = a.bias_band > 0 ? a.bias_band : a.Tk;
    return (((a.bias_per_batch ? b * a.H : 0) + h) * a.Tq + q0 + r) * width;
  }

  // Columns [c0, c1) of key block k0 (nk keys) that carry row r's bias; column c reads
  // element c + off of the row's bias (a banded bias shifts it by the row).
  void bias_span(int64_t r, int64_t k0, int64_t nk, int64_t& off, int64_t& c0, int64_t& c1) const {
    off = k0, c0 = 0, c1 = nk;
    if (a.bias_band == 0) return;
    int64_t lo, hi;
    attention_band_keys(a, q0 + r, lo, hi);
    off = k0 - (q0 + r) + a.bias_shift;
    c0 = std::clamp<int64_t>(lo - k0, 0, nk);
    c1 = std::clamp<int64_t>(hi + 1 - k0, c0, nk);
  }

  bool visible(int64_t r, int64_t j) const {
    const int64_t m = j - a.prefix;
    if (m >= 0 && (m < lo[r] || m > hi[r])) return false;
    if (a.key_pad && !a.key_pad[b * a.Tk + j]) return false;
    if (a.mask) {
      const int64_t* s = a.mask_strides;
      if (!a.mask[b * s[0] + h * s[1] + (q0 + r) * s[2] + j * s[3]]) return false;
    }
    return true;
  }

  // Calls f(k0, nk) for each 64-key block (aligned, as the K^T panels are) that holds a
  // key some row of this block may see: prefix blocks, then the main span's.
  template <class F>
  void for_each_key_block(F&& f) const {
    for (int64_t k0 = 0; k0 < a.Tk; k0 += kBlockK) {
      const int64_t k1 = std::min(a.Tk, k0 + kBlockK);
      const bool in_prefix = k0 < a.prefix;
      const bool in_span = span_lo <= span_hi && k0 <= a.prefix + span_hi && k1 > a.prefix + span_lo;
      if (in_prefix || in_span) f(k0, k1 - k0);
    }
  }

  // S (nq x nk) = scale Q K^T + bias, -inf where a key is not visible. The interval rules
  // give each row one run of visible main keys; only padding and dense masks go per key.
  template <class T>
  void scores(const T* qh, const T* kt, const T* bias, int64_t k0, int64_t nk, T* S) const {
    tile_gemm(nq, nk, a.d, qh + q0 * a.d, a.d, false, kt + k0 * a.d, kBlockK, S, kBlockK, false);
    scale_and_mask(bias, k0, nk, S);
  }

  // S (nq x nk) holding Q K^T becomes scale Q K^T + bias, -inf where a key is not visible.
  template <class T>
  void scale_and_mask(const T* bias, int64_t k0, int64_t nk, T* S) const {
    const T scale = T(a.scale), bscale = T(a.bias_scale), ninf = -std::numeric_limits<T>::infinity();
    const bool per_key = a.key_pad || a.mask;
    const int64_t c_pre = std::clamp<int64_t>(a.prefix - k0, 0, nk);  // [0, c_pre): prefix keys
    for (int64_t r = 0; r < nq; ++r) {
      T* s = S + r * kBlockK;
      const T* br = bias ? bias + bias_row(r) : nullptr;
      int64_t off = 0, b0 = 0, b1 = 0;  // br[c + off] is column c's bias for c in [b0, b1)
      if (br) bias_span(r, k0, nk, off, b0, b1);
      // main keys this row sees, as columns [c0, c1) of the block
      const int64_t c0 = std::clamp<int64_t>(a.prefix + lo[r] - k0, c_pre, nk);
      const int64_t c1 = std::clamp<int64_t>(a.prefix + hi[r] + 1 - k0, c0, nk);
      auto keep = [&](int64_t from, int64_t to) {
        const int64_t x0 = std::clamp(b0, from, to), x1 = std::clamp(b1, x0, to);
#pragma omp simd
        for (int64_t c = from; c < x0; ++c) s[c] *= scale;
#pragma omp simd
        for (int64_t c = x0; c < x1; ++c) s[c] = s[c] * scale + bscale * br[c + off];
#pragma omp simd
        for (int64_t c = x1; c < to; ++c) s[c] *= scale;
      };
      keep(0, c_pre);
      for (int64_t c = c_pre; c < c0; ++c) s[c] = ninf;
      keep(c0, c1);
      for (int64_t c = c1; c < nk; ++c) s[c] = ninf;
      if (per_key)
        for (int64_t c = 0; c < nk; ++c)
          if (s[c] != ninf && !visible(r, k0 + c)) s[c] = ninf;
    }
  }
};

// x (B, Hk, Tk, d) -> per head, panels of 64 keys, each panel (d x 64) row-major: tiles of
// K^T and V^T become dense operands with a short row stride (a stride of Tk would alias
// in the cache at Tk = 1024).
template <class T>
AlignedVector<T> transposed_heads(const AttentionDesc& a, const T* x) {
  const int64_t panels = (a.Tk + kBlockK - 1) / kBlockK, head = panels * a.d * kBlockK;
  AlignedVector<T> t(size_t(a.B * a.Hk * head), T(0));
#pragma omp parallel for schedule(static) if (a.B * a.Hk > 1 && a.B * a.Hk * a.Tk * a.d > kParallelMin)
  for (int64_t bh = 0; bh < a.B * a.Hk; ++bh)
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t k0 = p * kBlockK, nk = std::min(kBlockK, a.Tk - k0);
      T* dst = t.data() + bh * head + p * a.d * kBlockK;
      const T* src = x + (bh * a.Tk + k0) * a.d;
      for (int64_t r = 0; r < nk; ++r)
        for (int64_t c = 0; c < a.d; ++c) dst[c * kBlockK + r] = src[r * a.d + c];
    }
  return t;
}

template <class T>
struct Heads {  // pointers to one (batch, head); kt, vt into the transposed copies
  const T *q = nullptr, *k = nullptr, *v = nullptr, *kt = nullptr, *vt = nullptr;
  Heads() = default;
  Heads(const AttentionDesc& a, const T* q_, const T* k_, const T* v_, const T* kt_, const T* vt_, int64_t b, int64_t h) {
    const int64_t hk = b * a.Hk + (a.Hk == 1 ? 0 : h), kv = hk * a.Tk * a.d;
    const int64_t panel_head = (a.Tk + kBlockK - 1) / kBlockK * kBlockK * a.d;  // k0 * d indexes the panel
    q = q_ + (b * a.H + h) * a.Tq * a.d;
    k = k_ + kv;
    v = v_ + kv;
    kt = kt_ + hk * panel_head;
    vt = vt_ ? vt_ + hk * panel_head : nullptr;
  }
};

// The tile products of one thread, in the operands' own precision: the forward's S = Q K^T
// and acc += P V, the backward's recomputed S, dV += P^T dO, dP = dO V^T, dQ += dS K and
// dK += dS^T Q. head() and block() say which (batch, head) and query block come next.
template <class T>
struct PlainTiles {
  struct Panels {  // per call: K^T (and, for the backward, V^T) in 64-key panels
    AlignedVector<T> kt, vt;
    Panels(const AttentionDesc& a, const T* k, const T* v, bool backward)
        : kt(transposed_heads(a, k)), vt(backward ? transposed_heads(a, v) : AlignedVector<T>()) {}
  };
  const AttentionDesc& a;
  const Panels& pn;
  const T *q, *k, *v;
  Heads<T> hd;
  const T *Qb = nullptr, *dO = nullptr;

  PlainTiles(const AttentionDesc& a_, const Panels& p, const T* q_, const T* k_, const T* v_)
      : a(a_), pn(p), q(q_), k(k_), v(v_) {}
  void head(int64_t b, int64_t h) { hd = Heads<T>(a, q, k, v, pn.kt.data(), pn.vt.empty() ? nullptr : pn.vt.data(), b, h); }
  void block(const RowBlock& rb, const T* dout) {
    Qb = hd.q + rb.q0 * a.d;
    dO = dout;
  }
  void scores(const RowBlock& rb, const T* bias, int64_t k0, int64_t nk, T* S) const {
    rb.scores(hd.q, hd.kt, bias, k0, nk, S);
  }
  void pv(const RowBlock& rb, int64_t k0, int64_t nk, const T* P, T* acc) const {
    tile_gemm(rb.nq, a.d, nk, P, kBlockK, false, hd.v + k0 * a.d, a.d, acc, a.d, true);
  }
  void dv(const RowBlock& rb, int64_t k0, int64_t nk, const T* P, T* dvh) const {
    tile_gemm(nk, a.d, rb.nq, P, kBlockK, true, dO, a.d, dvh + k0 * a.d, a.d, true);
  }
  void dp(const RowBlock& rb, int64_t k0, int64_t nk, T* dP) const {
    tile_gemm(rb.nq, nk, a.d, dO, a.d, false, hd.vt + k0 * a.d, kBlockK, dP, kBlockK, false);
  }
  void dq(const RowBlock& rb, int64_t k0, int64_t nk, const T* dS, T* dQ) const {
    tile_gemm(rb.nq, a.d, nk, dS, kBlockK, false, hd.k + k0 * a.d, a.d, dQ, a.d, true);
  }
  void dk(const RowBlock& rb, int64_t k0, int64_t nk, const T* dS, T* dkh) const {
    tile_gemm(nk, a.d, rb.nq, dS, kBlockK, true, Qb, a.d, dkh + k0 * a.d, a.d, true);
  }
};

// The same products on bf16 operands (AttentionDesc::bf16), accumulated in f32. Packed per
// call: K^T and V^T as column pairs in 64-key panels (the B of Q K^T and dO V^T), K and V as
// row pairs over all keys (the B of dS K and P V). Packed per query block: Q and dO as rows
// (the A of Q K^T and dO V^T) and row pairs (the B of dS^T Q and P^T dO). Packed per tile:
// P and dS, the only operands made inside the loop.
struct Bf16Tiles {
  struct Packed {
    AlignedVector<bf16x2> data;
    int64_t head = 0;  // words per (batch, key/value head)
  };
  struct Panels {
    Packed kt, vt, k, v;
    Panels(const AttentionDesc& a, const float* k_, const float* v_, bool backward)
        : kt(col_pair_panels(a, k_)), vt(backward ? col_pair_panels(a, v_) : Packed{}),
          k(backward ? row_pairs(a, k_) : Packed{}), v(backward ? Packed{} : row_pairs(a, v_)) {}
  };
  const AttentionDesc& a;
  const Panels& pn;
  const float* q;
  const int64_t hp;  // pairs in a head width
  const bf16x2 *kt = nullptr, *vt = nullptr, *k = nullptr, *v = nullptr;
  const float* qh = nullptr;
  AlignedVector<bf16x2> Qr, Qp, dOr, dOp, X;  // rows, row pairs; X: this tile's P or dS

  Bf16Tiles(const AttentionDesc& a_, const Panels& p, const float* q_, const float*, const float*)
      : a(a_), pn(p), q(q_), hp((a_.d + 1) / 2), Qr(size_t(kBlockQ * hp)), Qp(size_t(kBlockQ / 2 * a_.d)),
        dOr(size_t(kBlockQ * hp)), dOp(size_t(kBlockQ / 2 * a_.d)), X(size_t(kBlockQ * kBlockK / 2)) {}

  static Packed col_pair_panels(const AttentionDesc& a, const float* x) {
    const int64_t panels = (a.Tk + kBlockK - 1) / kBlockK, panel = (a.d + 1) / 2 * kBlockK;
    Packed t{AlignedVector<bf16x2>(size_t(a.B * a.Hk * panels * panel), 0), panels * panel};
#pragma omp parallel for schedule(static) if (a.B * a.Hk > 1 && a.B * a.Hk * a.Tk * a.d > kParallelMin)
    for (int64_t bh = 0; bh < a.B * a.Hk; ++bh)
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t k0 = p * kBlockK;
        pack_col_pairs(std::min(kBlockK, a.Tk - k0), a.d, x + (bh * a.Tk + k0) * a.d, a.d,
                       t.data.data() + bh * t.head + p * panel, kBlockK);
      }
    return t;
  }
  static Packed row_pairs(const AttentionDesc& a, const float* x) {
    const int64_t head = (a.Tk + 1) / 2 * a.d;
    Packed t{AlignedVector<bf16x2>(size_t(a.B * a.Hk * head)), head};
#pragma omp parallel for schedule(static) if (a.B * a.Hk > 1 && a.B * a.Hk * a.Tk * a.d > kParallelMin)
    for (int64_t bh = 0; bh < a.B * a.Hk; ++bh)
      pack_row_pairs(a.Tk, a.d, x + bh * a.Tk * a.d, a.d, t.data.data() + bh * head, a.d);
    return t;
  }

  void head(int64_t b, int64_t h) {
    const int64_t hk = b * a.Hk + (a.Hk == 1 ? 0 : h);
    auto at = [&](const Packed& p) { return p.data.empty() ? nullptr : p.data.data() + hk * p.head; };
    kt = at(pn.kt), vt = at(pn.vt), k = at(pn.k), v = at(pn.v);
    qh = q + (b * a.H + h) * a.Tq * a.d;
  }
  void block(const RowBlock& rb, const float* dO) {
    const float* Qb = qh + rb.q0 * a.d;
    pack_rows(rb.nq, a.d, Qb, a.d, Qr.data(), hp);
    if (!dO) return;  // the forward
    pack_row_pairs(rb.nq, a.d, Qb, a.d, Qp.data(), a.d);
    pack_rows(rb.nq, a.d, dO, a.d, dOr.data(), hp);
    pack_row_pairs(rb.nq, a.d, dO, a.d, dOp.data(), a.d);
  }
  const bf16x2* panel(const bf16x2* p, int64_t k0) const { return p + k0 / kBlockK * hp * kBlockK; }
  void scores(const RowBlock& rb, const float* bias, int64_t k0, int64_t nk, float* S) const {
    tile_gemm_bf16(rb.nq, nk, hp, Qr.data(), hp, 1, panel(kt, k0), kBlockK, S, kBlockK, false);
    rb.scale_and_mask(bias, k0, nk, S);
  }
  void pv(const RowBlock& rb, int64_t k0, int64_t nk, const float* P, float* acc) {
    pack_rows(rb.nq, nk, P, kBlockK, X.data(), kBlockK / 2);
    tile_gemm_bf16(rb.nq, a.d, (nk + 1) / 2, X.data(), kBlockK / 2, 1, v + k0 / 2 * a.d, a.d, acc, a.d, true);
  }
  void dv(const RowBlock& rb, int64_t k0, int64_t nk, const float* P, float* dvh) {
    pack_row_pairs(rb.nq, nk, P, kBlockK, X.data(), kBlockK);  // P^T's pairs run down P's columns
    tile_gemm_bf16(nk, a.d, (rb.nq + 1) / 2, X.data(), 1, kBlockK, dOp.data(), a.d, dvh + k0 * a.d, a.d, true);
  }
  void dp(const RowBlock& rb, int64_t k0, int64_t nk, float* dP) const {
    tile_gemm_bf16(rb.nq, nk, hp, dOr.data(), hp, 1, panel(vt, k0), kBlockK, dP, kBlockK, false);
  }
  void dq(const RowBlock& rb, int64_t k0, int64_t nk, const float* dS, float* dQ) {
    pack_rows(rb.nq, nk, dS, kBlockK, X.data(), kBlockK / 2);
    tile_gemm_bf16(rb.nq, a.d, (nk + 1) / 2, X.data(), kBlockK / 2, 1, k + k0 / 2 * a.d, a.d, dQ, a.d, true);
  }
  void dk(const RowBlock& rb, int64_t k0, int64_t nk, const float* dS, float* dkh) {
    pack_row_pairs(rb.nq, nk, dS, kBlockK, X.data(), kBlockK);
    tile_gemm_bf16(nk, a.d, (rb.nq + 1) / 2, X.data(), 1, kBlockK, Qp.data(), a.d, dkh + k0 * a.d, a.d, true);
  }
};

template <class T, class Tiles>
void forward_tiles(const AttentionDesc& a, T* o, T* lse, const T* q, const T* k, const T* v, const T* bias) {
  const int64_t nblocks = (a.Tq + kBlockQ - 1) / kBlockQ, d = a.d;
  const int64_t work = a.B * a.H * nblocks;
  const typename Tiles::Panels panels(a, k, v, false);
#pragma omp parallel if (work > 1 && a.Tq * a.Tk * a.d * a.B * a.H > kParallelMin)
  {
    Tiles tiles(a, panels, q, k, v);
    AlignedVector<T> S(size_t(kBlockQ * kBlockK)), acc(size_t(kBlockQ * d));
    T m[kBlockQ], l[kBlockQ];
#pragma omp for schedule(dynamic)
    for (int64_t w = 0; w < work; ++w) {
      const int64_t bh = w / nblocks, b = bh / a.H, h = bh % a.H;
      const RowBlock rb(a, b, h, (w % nblocks) * kBlockQ);
      tiles.head(b, h);
      tiles.block(rb, nullptr);
      std::fill(m, m + rb.nq, -std::numeric_limits<T>::infinity());
      std::fill(l, l + rb.nq, T(0));
      std::fill(acc.begin(), acc.end(), T(0));
      rb.for_each_key_block([&](int64_t k0, int64_t nk) {
        tiles.scores(rb, bias, k0, nk, S.data());
        for (int64_t r = 0; r < rb.nq; ++r) {  // online softmax: rescale what came before
          T* s = S.data() + r * kBlockK;
          T mx = m[r];
#pragma omp simd reduction(max : mx)
          for (int64_t c = 0; c < nk; ++c) mx = s[c] > mx ? s[c] : mx;
          if (mx == -std::numeric_limits<T>::infinity()) {
            std::fill(s, s + nk, T(0));
            continue;
          }
          const T alpha = fast_exp(m[r] - mx);
          const T sum = exp_shifted_sum(s, s, nk, mx);
          l[r] = l[r] * alpha + sum;
          m[r] = mx;
          if (alpha != T(1)) {
            T* ar = acc.data() + r * d;
#pragma omp simd
            for (int64_t j = 0; j < d; ++j) ar[j] *= alpha;
          }
        }
        tiles.pv(rb, k0, nk, S.data(), acc.data());  // acc += P V
      });
      const int64_t row0 = (b * a.H + h) * a.Tq + rb.q0;
      for (int64_t r = 0; r < rb.nq; ++r) {
        const T inv = l[r] > T(0) ? T(1) / l[r] : T(0);
        for (int64_t j = 0; j < d; ++j) o[(row0 + r) * d + j] = acc[size_t(r * d + j)] * inv;
        lse[row0 + r] = l[r] > T(0) ? m[r] + std::log(l[r]) : -std::numeric_limits<T>::infinity();
      }
    }
  }
}

// Work is split by (batch, head): dQ, and dK/dV of unshared heads, are then owned by one
// thread. Shared K/V heads and the bias (summed over the batch) get per-thread partial
// sums, added up at the end.
template <class T, class Tiles>
void backward_tiles(const AttentionDesc& a, T* dq, T* dk, T* dv, T* dbias, const T* dout, const T* q, const T* k,
                    const T* v, const T* bias, const T* o, const T* lse) {
  const int64_t d = a.d, nblocks = (a.Tq + kBlockQ - 1) / kBlockQ, work = a.B * a.H;
  const int64_t kv_size = a.B * a.Hk * a.Tk * d;
  const int64_t bias_width = a.bias_band > 0 ? a.bias_band : a.Tk;
  const int64_t bias_size = dbias ? (a.bias_per_batch ? a.B : 1) * a.H * a.Tq * bias_width : 0;
  const bool shared_bias = dbias && !a.bias_per_batch;  // summed over the batch: per-thread partials
  const bool shared = a.Hk == 1 && a.H > 1;
  std::memset(dk, 0, size_t(kv_size) * sizeof(T));
  std::memset(dv, 0, size_t(kv_size) * sizeof(T));
  if (dbias) std::memset(dbias, 0, size_t(bias_size) * sizeof(T));
  const bool parallel = work > 1 && a.Tq * a.Tk * d * work > kParallelMin;
  const int nthreads = parallel ? omp_get_max_threads() : 1;
  std::vector<AlignedVector<T>> part_kv(size_t(shared ? nthreads : 0)), part_bias(size_t(shared_bias ? nthreads : 0));
  const typename Tiles::Panels panels(a, k, v, true);
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = omp_get_thread_num();
    T *dk_base = dk, *dv_base = dv, *dbias_t = dbias;
    if (shared) {
      part_kv[size_t(tid)].assign(size_t(2 * kv_size), T(0));
      dk_base = part_kv[size_t(tid)].data();
      dv_base = dk_base + kv_size;
    }
    if (shared_bias) {
      part_bias[size_t(tid)].assign(size_t(bias_size), T(0));
      dbias_t = part_bias[size_t(tid)].data();
    }
    Tiles tiles(a, panels, q, k, v);
    AlignedVector<T> P(size_t(kBlockQ * kBlockK)), dP(size_t(kBlockQ * kBlockK)), dQ(size_t(kBlockQ * d));
    T D[kBlockQ];
#pragma omp for schedule(dynamic)
    for (int64_t w = 0; w < work; ++w) {
      const int64_t b = w / a.H, h = w % a.H;
      tiles.head(b, h);
      const int64_t kv_off = (b * a.Hk + (a.Hk == 1 ? 0 : h)) * a.Tk * d;
      T* dkh = dk_base + kv_off;
      T* dvh = dv_base + kv_off;
      for (int64_t blk = 0; blk < nblocks; ++blk) {
        const RowBlock rb(a, b, h, blk * kBlockQ);
        const int64_t row0 = (b * a.H + h) * a.Tq + rb.q0;
        const T* dO = dout + row0 * d;
        tiles.block(rb, dO);
        for (int64_t r = 0; r < rb.nq; ++r) {
          T s = 0;
          for (int64_t j = 0; j < d; ++j) s += dO[r * d + j] * o[(row0 + r) * d + j];
          D[r] = s;
        }
        std::fill(dQ.begin(), dQ.end(), T(0));
        rb.for_each_key_block([&](int64_t k0, int64_t nk) {
          tiles.scores(rb, bias, k0, nk, P.data());
          for (int64_t r = 0; r < rb.nq; ++r) {
            T* p = P.data() + r * kBlockK;
            const T l = lse[row0 + r];
            if (l == -std::numeric_limits<T>::infinity()) std::fill(p, p + nk, T(0));
            else exp_shifted_sum(p, p, nk, l);
          }
          tiles.dv(rb, k0, nk, P.data(), dvh);  // dV += P^T dO
          tiles.dp(rb, k0, nk, dP.data());      // dP = dO V^T
          for (int64_t r = 0; r < rb.nq; ++r) {
            T* ds = dP.data() + r * kBlockK;
            const T* p = P.data() + r * kBlockK;
#pragma omp simd
            for (int64_t c = 0; c < nk; ++c) ds[c] = p[c] * (ds[c] - D[r]);
            if (dbias) {
              T* db = dbias_t + rb.bias_row(r);
              int64_t off, b0, b1;
              rb.bias_span(r, k0, nk, off, b0, b1);
#pragma omp simd
              for (int64_t c = b0; c < b1; ++c) db[c + off] += T(a.bias_scale) * ds[c];
            }
#pragma omp simd
            for (int64_t c = 0; c < nk; ++c) ds[c] *= T(a.scale);
          }
          tiles.dq(rb, k0, nk, dP.data(), dQ.data());  // dQ += dS K
          tiles.dk(rb, k0, nk, dP.data(), dkh);        // dK += dS^T Q
        });
        std::memcpy(dq + row0 * d, dQ.data(), size_t(rb.nq * d) * sizeof(T));
      }
    }
  }
  for (const auto& part : part_kv) {
    if (part.empty()) continue;  // a thread the runtime did not start
    for (int64_t i = 0; i < kv_size; ++i) {
      dk[i] += part[size_t(i)];
      dv[i] += part[size_t(kv_size + i)];
    }
  }
  for (const auto& part : part_bias)
    if (!part.empty())
      for (int64_t i = 0; i < bias_size; ++i) dbias[i] += part[size_t(i)];
}

// bf16 tiles where the description asks for them and the CPU has them; f32 otherwise.
template <class T>
bool use_bf16(const AttentionDesc& a) {
  return std::is_same_v<T, float> && a.bf16 && bf16_tiles_supported();
}

}  // namespace

template <class T>
void attention_forward(const AttentionDesc& a, T* o, T* lse, const T* q, const T* k, const T* v, const T* bias) {
  if constexpr (std::is_same_v<T, float>)
    if (use_bf16<T>(a)) return forward_tiles<float, Bf16Tiles>(a, o, lse, q, k, v, bias);
  forward_tiles<T, PlainTiles<T>>(a, o, lse, q, k, v, bias);
}

template <class T>
void attention_backward(const AttentionDesc& a, T* dq, T* dk, T* dv, T* dbias, const T* dout, const T* q, const T* k,
                        const T* v, const T* bias, const T* o, const T* lse) {
  if constexpr (std::is_same_v<T, float>)
    if (use_bf16<T>(a)) return backward_tiles<float, Bf16Tiles>(a, dq, dk, dv, dbias, dout, q, k, v, bias, o, lse);
  backward_tiles<T, PlainTiles<T>>(a, dq, dk, dv, dbias, dout, q, k, v, bias, o, lse);
}

#define MNEMO_INSTANTIATE(T)                                                                                 \
  template void attention_forward<T>(const AttentionDesc&, T*, T*, const T*, const T*, const T*, const T*);  \
  template void attention_backward<T>(const AttentionDesc&, T*, T*, T*, T*, const T*, const T*, const T*,    \
                                      const T*, const T*, const T*, const T*);
MNEMO_INSTANTIATE(float)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::cpu
