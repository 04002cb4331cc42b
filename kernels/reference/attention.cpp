// Reference attention: every (query, key) pair of every head, one query row at a time, with
// the mask rules of AttentionDesc applied to each pair directly.
//   s_j = scale <q_i, k_j> + bias_ij over the keys j row i sees,  p = softmax(s),  o_i = sum_j p_j v_j
//   lse_i = log sum_j exp(s_j);  a row that sees no key: o_i = 0, lse_i = -inf, no gradient.
// Backward, with p_j = exp(s_j - lse_i) from the saved lse and D_i = <dout_i, o_i>:
//   ds_j = p_j (<dout_i, v_j> - D_i);  dq_i = scale sum_j ds_j k_j;  dk_j = scale sum_i ds_j q_i;
//   dv_j = sum_i p_j dout_i;  dbias_ij = ds_j (summed over the batch when the bias is shared by it).
// The bias enters times bias_scale, and so does its gradient.
// A banded bias (bias_band > 0) is read, and its gradient written, at column j - i + bias_shift
// of row i for the keys attention_band_keys names; other keys add 0.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {
namespace {

// One (batch, head, query row) and the pointers into q, k, v and bias that it reads.
template <class T>
struct Row {
  const AttentionDesc& a;
  int64_t b, h, i;
  int64_t lo, hi;  // the main keys the rules let it see (kernels.h)
  int64_t band_lo = 0, band_hi = -1;  // the keys that read a banded bias
  const T *q, *k, *v, *bias;

  Row(const AttentionDesc& desc, int64_t b_, int64_t h_, int64_t i_, const T* q_, const T* k_, const T* v_,
      const T* bias_)
      : a(desc), b(b_), h(h_), i(i_) {
    attention_row_interval(a, i, lo, hi);
    const int64_t kv_head = b * a.Hk + (a.Hk == 1 ? 0 : h);  // Hk = 1: one head shared by all
    q = q_ + ((b * a.H + h) * a.Tq + i) * a.d;
    k = k_ + kv_head * a.Tk * a.d;
    v = v_ + kv_head * a.Tk * a.d;
    bias = bias_ ? bias_ + bias_row(a, b, h, i) : nullptr;
    if (a.bias_band > 0) attention_band_keys(a, i, band_lo, band_hi);
  }

  // Offset of row i's bias (and bias gradient) in the bias tensor.
  static int64_t bias_row(const AttentionDesc& a, int64_t b, int64_t h, int64_t i) {
    return (((a.bias_per_batch ? b * a.H : 0) + h) * a.Tq + i) * (a.bias_band > 0 ? a.bias_band : a.Tk);
  }

  // The bias column key j reads in this row, or -1 for none.
  int64_t bias_column(int64_t j) const {
    if (a.bias_band == 0) return j;
    return j >= band_lo && j <= band_hi ? j - i + a.bias_shift : -1;
  }

  bool sees(int64_t j) const {
    const int64_t main = j - a.prefix;  // prefix keys (main < 0) are seen by every row
    if (main >= 0 && (main < lo || main > hi)) return false;
    if (a.key_pad && !a.key_pad[b * a.Tk + j]) return false;
    const int64_t* ms = a.mask_strides;
    if (a.mask && !a.mask[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]]) return false;
    return true;
  }

  T score(int64_t j) const {
    T s = 0;
    for (int64_t c = 0; c < a.d; ++c) s += q[c] * k[j * a.d + c];
    const int64_t c = bias ? bias_column(j) : -1;
    return T(a.scale) * s + (c >= 0 ? T(a.bias_scale) * bias[c] : T(0));
  }
};

int64_t row_index(const AttentionDesc& a, int64_t b, int64_t h, int64_t i) { return (b * a.H + h) * a.Tq + i; }

}  // namespace

template <class T>
void attention_forward(const AttentionDesc& a, T* o, T* lse, const T* q, const T* k, const T* v, const T* bias) {
  const T ninf = -std::numeric_limits<T>::infinity();
#pragma omp parallel for if (worth_threads(a.B * a.H * a.Tq * a.Tk * a.d))
  for (int64_t bhi = 0; bhi < a.B * a.H * a.Tq; ++bhi) {
    const Row<T> row(a, bhi / (a.H * a.Tq), bhi / a.Tq % a.H, bhi % a.Tq, q, k, v, bias);
    std::vector<T> s(size_t(a.Tk), ninf);
    T max = ninf;
    for (int64_t j = 0; j < a.Tk; ++j)
      if (row.sees(j)) {
        s[size_t(j)] = row.score(j);
        max = std::max(max, s[size_t(j)]);
      }
    T* out = o + bhi * a.d;
    for (int64_t c = 0; c < a.d; ++c) out[c] = 0;
    if (max == ninf) {  // sees nothing
      lse[bhi] = ninf;
      continue;
    }
    T sum = 0;
    for (int64_t j = 0; j < a.Tk; ++j) sum += std::exp(s[size_t(j)] - max);
    lse[bhi] = max + std::log(sum);
    for (int64_t j = 0; j < a.Tk; ++j) {
      const T p = std::exp(s[size_t(j)] - lse[bhi]);
      for (int64_t c = 0; c < a.d; ++c) out[c] += p * row.v[j * a.d + c];
    }
  }
}

// Two passes, so that each output element has one owner: the first walks query rows and
// writes dq and dbias (looping over the batch inside when the bias is shared by it), the
// second walks key rows and writes dk and dv (looping over the heads that share them).
template <class T>
void attention_backward(const AttentionDesc& a, T* dq, T* dk, T* dv, T* dbias, const T* dout, const T* q, const T* k,
                        const T* v, const T* bias, const T* o, const T* lse) {
  const T ninf = -std::numeric_limits<T>::infinity();
  const bool threads = worth_threads(a.B * a.H * a.Tq * a.Tk * a.d);
  // p_j and ds_j of one row: 0 for a key it does not see, or in a row that sees nothing.
  auto probability = [&](const Row<T>& row, int64_t j) {
    const T l = lse[row_index(a, row.b, row.h, row.i)];
    return l == ninf || !row.sees(j) ? T(0) : std::exp(row.score(j) - l);
  };
  auto dscore = [&](const Row<T>& row, int64_t j, T p) {
    const int64_t r = row_index(a, row.b, row.h, row.i);
    if (p == T(0)) return T(0);
    T dp = 0, D = 0;
    for (int64_t c = 0; c < a.d; ++c) {
      dp += dout[r * a.d + c] * row.v[j * a.d + c];
      D += dout[r * a.d + c] * o[r * a.d + c];
    }
    return p * (dp - D);
  };

  const int64_t bias_batches = a.bias_per_batch ? a.B : 1;
  const int64_t bias_width = a.bias_band > 0 ? a.bias_band : a.Tk;
#pragma omp parallel for if (threads)
  for (int64_t hi = 0; hi < a.H * a.Tq; ++hi) {
    const int64_t h = hi / a.Tq, i = hi % a.Tq;
    if (dbias)
      for (int64_t bb = 0; bb < bias_batches; ++bb)
        for (int64_t c = 0; c < bias_width; ++c) dbias[((bb * a.H + h) * a.Tq + i) * bias_width + c] = 0;
    for (int64_t b = 0; b < a.B; ++b) {
      const Row<T> row(a, b, h, i, q, k, v, bias);
      T* dqi = dq + row_index(a, b, h, i) * a.d;
      for (int64_t c = 0; c < a.d; ++c) dqi[c] = 0;
      for (int64_t j = 0; j < a.Tk; ++j) {
        const T ds = dscore(row, j, probability(row, j));
        for (int64_t c = 0; c < a.d; ++c) dqi[c] += T(a.scale) * ds * row.k[j * a.d + c];
        const int64_t c = dbias ? row.bias_column(j) : -1;
        if (c >= 0) dbias[Row<T>::bias_row(a, b, h, i) + c] += T(a.bias_scale) * ds;
      }
    }
  }

  const int64_t shared_heads = a.Hk == 1 ? a.H : 1;  // query heads reading one key head
#pragma omp parallel for if (threads)
  for (int64_t bkj = 0; bkj < a.B * a.Hk * a.Tk; ++bkj) {
    const int64_t b = bkj / (a.Hk * a.Tk), hk = bkj / a.Tk % a.Hk, j = bkj % a.Tk;
    T* dkj = dk + bkj * a.d;
    T* dvj = dv + bkj * a.d;
    for (int64_t c = 0; c < a.d; ++c) dkj[c] = dvj[c] = 0;
    for (int64_t n = 0; n < shared_heads; ++n) {
      const int64_t h = a.Hk == 1 ? n : hk;
      for (int64_t i = 0; i < a.Tq; ++i) {
        const Row<T> row(a, b, h, i, q, k, v, bias);
        const T p = probability(row, j), ds = dscore(row, j, p);
        const T* douti = dout + row_index(a, b, h, i) * a.d;
        for (int64_t c = 0; c < a.d; ++c) {
          dvj[c] += p * douti[c];
          dkj[c] += T(a.scale) * ds * row.q[c];
        }
      }
    }
  }
}

#define MNEMO_INSTANTIATE(T)                                                                                 \
  template void attention_forward<T>(const AttentionDesc&, T*, T*, const T*, const T*, const T*, const T*);  \
  template void attention_backward<T>(const AttentionDesc&, T*, T*, T*, T*, const T*, const T*, const T*,    \
                                      const T*, const T*, const T*, const T*);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
