// Fused attention, tiled over (batch, head, query block) with an online softmax (Dao et
// al., FlashAttention). Forward keeps only O and the per-row log-sum-exp; backward
// recomputes each probability tile from them, so nothing Tq x Tk is ever held per head.
//   S = scale Q K^T + bias,  P = softmax(S) over visible keys,  O = P V
//   dV = P^T dO,  dP = dO V^T,  dS = P (dP - rowsum(dO O)),  dQ = scale dS K,  dK = scale dS^T Q,  dbias = sum_b dS
// Which keys a row sees is described by AttentionDesc (kernels.h): an always-visible
// prefix, one interval of the other keys per row, then optional padding and dense masks.
#include <cmath>
#include <cstring>
#include <limits>
#include <omp.h>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {
namespace {

constexpr int64_t kBlockQ = 64, kBlockK = 64;

// C (M x N, row stride ldc) = or += A (M x K) B (K x N); B's rows are contiguous.
// Four rows of C at a time share each loaded row of B.
template <class T>
void tile_gemm(int64_t M, int64_t N, int64_t K, const T* __restrict A, int64_t lda, const T* __restrict B,
               int64_t ldb, T* __restrict C, int64_t ldc, bool accumulate) {
  if (!accumulate)
    for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, size_t(N) * sizeof(T));
  int64_t i = 0;
  for (; i + 4 <= M; i += 4) {
    T* c0 = C + i * ldc;
    T* c1 = c0 + ldc;
    T* c2 = c1 + ldc;
    T* c3 = c2 + ldc;
    for (int64_t k = 0; k < K; ++k) {
      const T a0 = A[i * lda + k], a1 = A[(i + 1) * lda + k], a2 = A[(i + 2) * lda + k], a3 = A[(i + 3) * lda + k];
      const T* b = B + k * ldb;
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) {
        const T bj = b[j];
        c0[j] += a0 * bj;
        c1[j] += a1 * bj;
        c2[j] += a2 * bj;
        c3[j] += a3 * bj;
      }
    }
  }
  for (; i < M; ++i) {
    T* c = C + i * ldc;
    for (int64_t k = 0; k < K; ++k) {
      const T a = A[i * lda + k];
      const T* b = B + k * ldb;
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

// dst (cols x rows) = src (rows x cols, row stride ld)^T
template <class T>
void transpose(int64_t rows, int64_t cols, const T* src, int64_t ld, T* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * ld + c];
}

// The interval of main keys a row sees, as [lo, hi] (empty when lo > hi).
void main_interval(const AttentionDesc& a, int64_t i, int64_t& lo, int64_t& hi) {
  const int64_t Tm = a.Tk - a.prefix;
  if (i < a.read_rows) {
    lo = 0;
    hi = std::min(a.read_rows, Tm) - 1;
  } else if (i >= a.Tq - a.write_rows) {
    lo = 0;
    hi = Tm - 1;
  } else {
    const int64_t p = i + Tm - a.Tq;
    lo = a.window > 0 ? p - a.window + 1 : 0;
    hi = a.causal ? p : (a.window > 0 ? p + a.window - 1 : Tm - 1);
    lo = std::max<int64_t>(lo, 0);
    hi = std::min<int64_t>(hi, Tm - 1);
  }
}

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
      main_interval(a, q0 + r, lo[r], hi[r]);
      if (lo[r] <= hi[r]) {
        span_lo = std::min(span_lo, lo[r]);
        span_hi = std::max(span_hi, hi[r]);
      }
    }
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

  // Calls f(k0, nk) for each key block worth visiting: the prefix, then the main span.
  template <class F>
  void for_each_key_block(F&& f) const {
    for (int64_t k0 = 0; k0 < a.prefix; k0 += kBlockK) f(k0, std::min(kBlockK, a.prefix - k0));
    for (int64_t k0 = a.prefix + span_lo; k0 <= a.prefix + span_hi; k0 += kBlockK)
      f(k0, std::min(kBlockK, a.prefix + span_hi + 1 - k0));
  }

  // S (nq x nk) = scale Q K^T + bias, -inf where a key is not visible.
  template <class T>
  void scores(const T* qh, const T* kh, const T* bias, int64_t k0, int64_t nk, T* KT, T* S) const {
    transpose(nk, a.d, kh + k0 * a.d, a.d, KT);
    tile_gemm(nq, nk, a.d, qh + q0 * a.d, a.d, KT, nk, S, kBlockK, false);
    const T scale = T(a.scale), ninf = -std::numeric_limits<T>::infinity();
    for (int64_t r = 0; r < nq; ++r) {
      T* s = S + r * kBlockK;
      const T* br = bias ? bias + (h * a.Tq + q0 + r) * a.Tk + k0 : nullptr;
      for (int64_t c = 0; c < nk; ++c) s[c] = visible(r, k0 + c) ? s[c] * scale + (br ? br[c] : T(0)) : ninf;
    }
  }
};

template <class T>
struct Heads {  // pointers to one (batch, head)
  const T *q, *k, *v;
  Heads(const AttentionDesc& a, const T* q_, const T* k_, const T* v_, int64_t b, int64_t h)
      : q(q_ + (b * a.H + h) * a.Tq * a.d),
        k(k_ + (b * a.Hk + (a.Hk == 1 ? 0 : h)) * a.Tk * a.d),
        v(v_ + (b * a.Hk + (a.Hk == 1 ? 0 : h)) * a.Tk * a.d) {}
};

}  // namespace

template <class T>
void attention_forward(const AttentionDesc& a, T* o, T* lse, const T* q, const T* k, const T* v, const T* bias) {
  const int64_t nblocks = (a.Tq + kBlockQ - 1) / kBlockQ, d = a.d;
  const int64_t work = a.B * a.H * nblocks;
#pragma omp parallel if (work > 1 && a.Tq * a.Tk * a.d * a.B * a.H > kParallelMin)
  {
    std::vector<T> KT(size_t(d * kBlockK)), S(size_t(kBlockQ * kBlockK)), acc(size_t(kBlockQ * d));
    T m[kBlockQ], l[kBlockQ];
#pragma omp for schedule(dynamic)
    for (int64_t w = 0; w < work; ++w) {
      const int64_t bh = w / nblocks, b = bh / a.H, h = bh % a.H;
      const RowBlock rb(a, b, h, (w % nblocks) * kBlockQ);
      const Heads<T> hd(a, q, k, v, b, h);
      std::fill(m, m + rb.nq, -std::numeric_limits<T>::infinity());
      std::fill(l, l + rb.nq, T(0));
      std::fill(acc.begin(), acc.end(), T(0));
      rb.for_each_key_block([&](int64_t k0, int64_t nk) {
        rb.scores(hd.q, hd.k, bias, k0, nk, KT.data(), S.data());
        for (int64_t r = 0; r < rb.nq; ++r) {  // online softmax: rescale what came before
          T* s = S.data() + r * kBlockK;
          T mx = m[r];
          for (int64_t c = 0; c < nk; ++c) mx = std::max(mx, s[c]);
          if (mx == -std::numeric_limits<T>::infinity()) {
            std::fill(s, s + nk, T(0));
            continue;
          }
          const T alpha = std::exp(m[r] - mx);
          T sum = 0;
          for (int64_t c = 0; c < nk; ++c) sum += (s[c] = std::exp(s[c] - mx));
          l[r] = l[r] * alpha + sum;
          m[r] = mx;
          if (alpha != T(1))
            for (int64_t j = 0; j < d; ++j) acc[size_t(r * d + j)] *= alpha;
        }
        tile_gemm(rb.nq, d, nk, S.data(), kBlockK, hd.v + k0 * d, d, acc.data(), d, true);
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
template <class T>
void attention_backward(const AttentionDesc& a, T* dq, T* dk, T* dv, T* dbias, const T* dout, const T* q, const T* k,
                        const T* v, const T* bias, const T* o, const T* lse) {
  const int64_t d = a.d, nblocks = (a.Tq + kBlockQ - 1) / kBlockQ, work = a.B * a.H;
  const int64_t kv_size = a.B * a.Hk * a.Tk * d, bias_size = dbias ? a.H * a.Tq * a.Tk : 0;
  const bool shared = a.Hk == 1 && a.H > 1;
  std::memset(dk, 0, size_t(kv_size) * sizeof(T));
  std::memset(dv, 0, size_t(kv_size) * sizeof(T));
  if (dbias) std::memset(dbias, 0, size_t(bias_size) * sizeof(T));
  const bool parallel = work > 1 && a.Tq * a.Tk * d * work > kParallelMin;
  const int nthreads = parallel ? omp_get_max_threads() : 1;
  std::vector<std::vector<T>> part_kv(size_t(shared ? nthreads : 0)), part_bias(size_t(dbias ? nthreads : 0));
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = omp_get_thread_num();
    T *dk_base = dk, *dv_base = dv, *dbias_t = dbias;
    if (shared) {
      part_kv[size_t(tid)].assign(size_t(2 * kv_size), T(0));
      dk_base = part_kv[size_t(tid)].data();
      dv_base = dk_base + kv_size;
    }
    if (dbias) {
      part_bias[size_t(tid)].assign(size_t(bias_size), T(0));
      dbias_t = part_bias[size_t(tid)].data();
    }
    std::vector<T> KT(size_t(d * kBlockK)), VT(size_t(d * kBlockK)), P(size_t(kBlockQ * kBlockK)),
        dP(size_t(kBlockQ * kBlockK)), PT(size_t(kBlockK * kBlockQ)), dQ(size_t(kBlockQ * d));
    T D[kBlockQ];
#pragma omp for schedule(dynamic)
    for (int64_t w = 0; w < work; ++w) {
      const int64_t b = w / a.H, h = w % a.H;
      const Heads<T> hd(a, q, k, v, b, h);
      const int64_t kv_off = (b * a.Hk + (a.Hk == 1 ? 0 : h)) * a.Tk * d;
      T* dkh = dk_base + kv_off;
      T* dvh = dv_base + kv_off;
      for (int64_t blk = 0; blk < nblocks; ++blk) {
        const RowBlock rb(a, b, h, blk * kBlockQ);
        const int64_t row0 = (b * a.H + h) * a.Tq + rb.q0;
        const T* dO = dout + row0 * d;
        const T* Qb = hd.q + rb.q0 * d;
        for (int64_t r = 0; r < rb.nq; ++r) {
          T s = 0;
          for (int64_t j = 0; j < d; ++j) s += dO[r * d + j] * o[(row0 + r) * d + j];
          D[r] = s;
        }
        std::fill(dQ.begin(), dQ.end(), T(0));
        rb.for_each_key_block([&](int64_t k0, int64_t nk) {
          rb.scores(hd.q, hd.k, bias, k0, nk, KT.data(), P.data());
          for (int64_t r = 0; r < rb.nq; ++r) {
            T* p = P.data() + r * kBlockK;
            const T l = lse[row0 + r];
            for (int64_t c = 0; c < nk; ++c)
              p[c] = l == -std::numeric_limits<T>::infinity() ? T(0) : std::exp(p[c] - l);
          }
          transpose(rb.nq, nk, P.data(), kBlockK, PT.data());                      // (nk x nq)
          tile_gemm(nk, d, rb.nq, PT.data(), rb.nq, dO, d, dvh + k0 * d, d, true);  // dV += P^T dO
          transpose(nk, d, hd.v + k0 * d, d, VT.data());                           // (d x nk)
          tile_gemm(rb.nq, nk, d, dO, d, VT.data(), nk, dP.data(), kBlockK, false);  // dP = dO V^T
          for (int64_t r = 0; r < rb.nq; ++r) {
            T* ds = dP.data() + r * kBlockK;
            const T* p = P.data() + r * kBlockK;
            T* db = dbias ? dbias_t + (h * a.Tq + rb.q0 + r) * a.Tk + k0 : nullptr;
            for (int64_t c = 0; c < nk; ++c) {
              ds[c] = p[c] * (ds[c] - D[r]);
              if (db) db[c] += ds[c];
              ds[c] *= T(a.scale);
            }
          }
          tile_gemm(rb.nq, d, nk, dP.data(), kBlockK, hd.k + k0 * d, d, dQ.data(), d, true);  // dQ += dS K
          transpose(rb.nq, nk, dP.data(), kBlockK, PT.data());
          tile_gemm(nk, d, rb.nq, PT.data(), rb.nq, Qb, d, dkh + k0 * d, d, true);  // dK += dS^T Q
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

#define MNEMO_INSTANTIATE(T)                                                                                 \
  template void attention_forward<T>(const AttentionDesc&, T*, T*, const T*, const T*, const T*, const T*);  \
  template void attention_backward<T>(const AttentionDesc&, T*, T*, T*, T*, const T*, const T*, const T*,    \
                                      const T*, const T*, const T*, const T*);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
