// The per-element and per-tile math of the CUDA kernels, as MNEMO_HD functions: the device
// kernels (kernels/cuda/*.cu) call exactly these, and the CPU build tests them against the
// reference backend (tests/kernels/test_cuda_math.cpp) by running them in the kernels' own
// order (tiles of keys, partial softmax states merged as a thread block merges them).
// C++17 and no standard library beyond <cmath>: nvcc 11.8 compiles it too.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/hd.h"
#include "kernels/kernels.h"

namespace mnemo::kernels::cuda {

inline constexpr float kNegInf = -INFINITY;

// ---- unary maps, in float (the reference's formulas; std:: math has device overloads) ----

MNEMO_HD float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }
MNEMO_HD float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
MNEMO_HD float gelu_derivative(float x) {
  return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * expf(-0.5f * x * x) * 0.39894228040143268f;
}
MNEMO_HD float gelu_tanh_u(float x) { return 0.79788456080286536f * (x + 0.044715f * x * x * x); }

MNEMO_HD float unary_apply(Unary op, float x, float alpha, float beta) {
  switch (op) {
    case Unary::neg:
      return -x;
    case Unary::exp:
      return expf(x);
    case Unary::log:
      return logf(x);
    case Unary::sqrt:
      return sqrtf(x);
    case Unary::rsqrt:
      return 1.0f / sqrtf(x);
    case Unary::tanh:
      return tanhf(x);
    case Unary::sigmoid:
      return sigmoidf_(x);
    case Unary::relu:
      return x > 0.0f ? x : 0.0f;
    case Unary::gelu_erf:
      return gelu(x);
    case Unary::gelu_tanh:
      return 0.5f * x * (1.0f + tanhf(gelu_tanh_u(x)));
    case Unary::silu:
      return x * sigmoidf_(x);
    case Unary::softplus:
      return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
    case Unary::affine:
      return alpha * x + beta;
    case Unary::pow:
      return powf(x, alpha);
    case Unary::rdiv:
      return alpha / x;
    case Unary::square:
      return x * x;
    case Unary::abs:
      return fabsf(x);
  }
  return 0.0f;
}

// The ops save only one of x and y = f(x); these five read y (kernels/reference/unary.cpp).
MNEMO_HD bool unary_reads_y(Unary op) {
  return op == Unary::exp || op == Unary::sqrt || op == Unary::rsqrt || op == Unary::tanh || op == Unary::sigmoid;
}

MNEMO_HD float unary_derivative(Unary op, float x, float y, float alpha) {
  switch (op) {
    case Unary::neg:
      return -1.0f;
    case Unary::exp:
      return y;
    case Unary::log:
      return 1.0f / x;
    case Unary::sqrt:
      return 0.5f / y;
    case Unary::rsqrt:
      return -0.5f * y * y * y;
    case Unary::tanh:
      return 1.0f - y * y;
    case Unary::sigmoid:
      return y * (1.0f - y);
    case Unary::relu:
      return x > 0.0f ? 1.0f : 0.0f;
    case Unary::gelu_erf:
      return gelu_derivative(x);
    case Unary::gelu_tanh: {
      const float t = tanhf(gelu_tanh_u(x)), du = 0.79788456080286536f * (1.0f + 3.0f * 0.044715f * x * x);
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
    }
    case Unary::silu: {
      const float s = sigmoidf_(x);
      return s * (1.0f + x * (1.0f - s));
    }
    case Unary::softplus:
      return sigmoidf_(x);
    case Unary::affine:
      return alpha;
    case Unary::pow:
      return alpha * powf(x, alpha - 1.0f);
    case Unary::rdiv:
      return -alpha / (x * x);
    case Unary::square:
      return 2.0f * x;
    case Unary::abs:
      return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
  }
  return 0.0f;
}

// Gated GELU on one (first, second) pair of a row; see GegluForwardSig.
MNEMO_HD float geglu_value(float first, float second, bool activate_first) {
  return activate_first ? gelu(first) * second : first * gelu(second);
}
// d(first), d(second) of one pair from dy.
MNEMO_HD void geglu_grads(float dy, float first, float second, bool activate_first, float& dfirst, float& dsecond) {
  if (activate_first) {
    dfirst = dy * second * gelu_derivative(first);
    dsecond = dy * gelu(first);
  } else {
    dfirst = dy * gelu(second);
    dsecond = dy * first * gelu_derivative(second);
  }
}

// The nBRC cell on one element (kernels.h, NbrcForwardSig) and its four gradients.
MNEMO_HD float nbrc_value(float ga, float gc, float gu, float h) {
  const float a = 1.0f + tanhf(ga), c = sigmoidf_(gc), v = tanhf(gu + a * h);
  return v + c * (h - v);
}
MNEMO_HD void nbrc_grads(float dout, float ga, float gc, float gu, float h, float& dga, float& dgc, float& dgu,
                         float& dh) {
  const float t = tanhf(ga), a = 1.0f + t, c = sigmoidf_(gc), v = tanhf(gu + a * h);
  const float dv = dout * (1.0f - c) * (1.0f - v * v);
  dgu = dv;
  dga = dv * h * (1.0f - t * t);
  dgc = dout * (h - v) * c * (1.0f - c);
  dh = dout * c + dv * a;
}

// ---- optimizers: one element, in double like the reference (memory-bound on the GPU anyway) ----

MNEMO_HD void adamw_element(float& w, float g, float& m, float& v, const AdamWHyper& h) {
  const double gi = double(g);
  const double mi = h.beta1 * double(m) + (1 - h.beta1) * gi;
  const double vi = h.beta2 * double(v) + (1 - h.beta2) * gi * gi;
  m = float(mi);
  v = float(vi);
  const double decayed = double(w) * (1 - h.lr * h.weight_decay);
  w = float(decayed - h.lr / h.bias_correction1 * mi / (sqrt(vi) / sqrt(h.bias_correction2) + h.eps));
}

MNEMO_HD void sgd_element(float& w, float g, float* buf, const SgdHyper& h) {
  double d = double(g) + h.weight_decay * double(w);
  if (h.momentum != 0) {
    const double b = h.first_step ? d : h.momentum * double(*buf) + (1 - h.dampening) * d;
    *buf = float(b);
    d = h.nesterov ? d + h.momentum * b : b;
  }
  w = float(double(w) - h.lr * d);
}

// ---- online log-sum-exp: each thread folds its share of a row, then the block merges ----

struct OnlineLse {
  float max = kNegInf, sum = 0.0f;  // sum of exp(x - max)

  MNEMO_HD void push(float x) {
    if (x == kNegInf) return;
    if (x > max) {
      sum = sum * expf(max - x) + 1.0f;  // expf(-inf) = 0 on the first finite value
      max = x;
    } else {
      sum += expf(x - max);
    }
  }
  MNEMO_HD void merge(const OnlineLse& o) {
    if (o.max == kNegInf) return;
    if (max == kNegInf) {
      *this = o;
      return;
    }
    const float m = fmaxf(max, o.max);
    sum = sum * expf(max - m) + o.sum * expf(o.max - m);
    max = m;
  }
  MNEMO_HD float value() const { return max == kNegInf ? kNegInf : max + logf(sum); }
};

// ---- bf16 operands ----

// x rounded to the nearest bf16 (ties to even; a NaN stays a quiet NaN), as a float: what
// a bf16 tensor-core product would read. The same rounding as the cpu backend's bf16 packs.
MNEMO_HD float bf16_round(float x) {
  uint32_t u;
#if defined(__CUDA_ARCH__)
  u = __float_as_uint(x);
#else
  std::memcpy(&u, &x, sizeof u);
#endif
  const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  u = (nan ? u | 0x00400000u : u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float y;
  std::memcpy(&y, &u, sizeof y);
  return y;
#endif
}

// ---- fused attention: the per-tile math of the forward and both backward kernels ----
// Tiles hold kAttnTile rows of D floats, zero-padded past d and past the last row, so the
// loops run to the compile-time D (registers, not local memory, on the device).

inline constexpr int kAttnTile = 32;

// An operand of the tile products as the kernels read it: rounded to bf16 under
// AttentionDesc::bf16 (f32 accumulation; softmax, masks, bias and sums stay f32), as is.
// q, k, v and dout are rounded where a kernel loads them (registers, shared tiles); P and
// dS where the tile steps below make them.
MNEMO_HD float attention_operand(const AttentionDesc& a, float x) { return a.bf16 ? bf16_round(x) : x; }

// Whether row i of (b, h) sees key j, given its interval [lo, hi] (attention_row_interval).
MNEMO_HD bool attention_sees(const AttentionDesc& a, int64_t b, int64_t h, int64_t i, int64_t j, int64_t lo,
                             int64_t hi) {
  const int64_t main = j - a.prefix;
  if (main >= 0 && (main < lo || main > hi)) return false;
  if (a.key_pad && !a.key_pad[b * a.Tk + j]) return false;
  const int64_t* ms = a.mask_strides;
  if (a.mask && !a.mask[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]]) return false;
  return true;
}

// The bias row of (b, h, i), or null.
MNEMO_HD const float* attention_bias_row(const AttentionDesc& a, const float* bias, int64_t b, int64_t h, int64_t i) {
  return bias ? bias + (((a.bias_per_batch ? b * a.H : 0) + h) * a.Tq + i) * a.Tk : nullptr;
}

// One query row's running state: max and sum of its softmax so far, and the unnormalised output.
template <int D>
struct AttnRow {
  int64_t b, h, i, lo, hi;
  float max, sum;
  float acc[D];

  MNEMO_HD void start(const AttentionDesc& a, int64_t b_, int64_t h_, int64_t i_) {
    b = b_, h = h_, i = i_;
    attention_row_interval(a, i, lo, hi);
    max = kNegInf, sum = 0.0f;
    for (int c = 0; c < D; ++c) acc[c] = 0.0f;
  }

  MNEMO_HD float score(const AttentionDesc& a, const float* q, const float* krow, const float* bias_row,
                       int64_t j) const {
    float s = 0.0f;
    for (int c = 0; c < D; ++c) s += q[c] * krow[c];
    return float(a.scale) * s + (bias_row ? bias_row[j] : 0.0f);
  }

  // Keys j0 .. j0 + n - 1, their rows in K and V (tile-local, D floats each).
  MNEMO_HD void forward_tile(const AttentionDesc& a, const float* q, const float* K, const float* V,
                             const float* bias_row, int64_t j0, int n) {
    float s[kAttnTile];
    float tile_max = kNegInf;
    for (int t = 0; t < n; ++t) {
      const int64_t j = j0 + t;
      s[t] = attention_sees(a, b, h, i, j, lo, hi) ? score(a, q, K + t * D, bias_row, j) : kNegInf;
      tile_max = fmaxf(tile_max, s[t]);
    }
    if (tile_max == kNegInf) return;
    const float m = fmaxf(max, tile_max), keep = expf(max - m);
    sum *= keep;
    for (int c = 0; c < D; ++c) acc[c] *= keep;
    for (int t = 0; t < n; ++t) {
      const float p = expf(s[t] - m);  // 0 for unseen keys
      sum += p;
      const float pv = attention_operand(a, p);
      for (int c = 0; c < D; ++c) acc[c] += pv * V[t * D + c];
    }
    max = m;
  }

  // o (d floats) and lse; a row that saw nothing gives 0 and -inf.
  MNEMO_HD void finish(float* o, float* lse, int64_t d) const {
    const bool empty = max == kNegInf;
    for (int64_t c = 0; c < d; ++c) o[c] = empty ? 0.0f : acc[c] / sum;
    *lse = empty ? kNegInf : max + logf(sum);
  }
};

// dS of one (row, key) pair from p = exp(s - lse), dp = <dout_i, v_j> and Drow = <dout_i, o_i>.
MNEMO_HD float attention_dscore(float p, float dp, float Drow) { return p * (dp - Drow); }

// p of one pair from its score and the row's saved lse (0 when the row saw nothing).
MNEMO_HD float attention_probability(float s, float lse) { return lse == kNegInf ? 0.0f : expf(s - lse); }

// Key-side backward: key j (its k, v rows) against n query rows of one (b, h) tile: Q, dO
// (D floats a row), and lse, Drow per row. Accumulates dk (scaled) and dv.
template <int D>
MNEMO_HD void attention_backward_kv_tile(const AttentionDesc& a, int64_t b, int64_t h, int64_t j, const float* k,
                                         const float* v, const float* Q, const float* dO, const float* lse,
                                         const float* Drow, const float* bias, int64_t i0, int n, float* dk,
                                         float* dv) {
  for (int t = 0; t < n; ++t) {
    const int64_t i = i0 + t;
    int64_t lo, hi;
    attention_row_interval(a, i, lo, hi);
    if (!attention_sees(a, b, h, i, j, lo, hi)) continue;
    const float* q = Q + t * D;
    const float* dout = dO + t * D;
    const float* bias_row = attention_bias_row(a, bias, b, h, i);
    float s = 0.0f, dp = 0.0f;
    for (int c = 0; c < D; ++c) {
      s += q[c] * k[c];
      dp += dout[c] * v[c];
    }
    s = float(a.scale) * s + (bias_row ? bias_row[j] : 0.0f);
    const float p = attention_probability(s, lse[t]), ds = attention_dscore(p, dp, Drow[t]);
    const float pv = attention_operand(a, p), dsk = float(a.scale) * attention_operand(a, ds);
    for (int c = 0; c < D; ++c) {
      dv[c] += pv * dout[c];
      dk[c] += dsk * q[c];
    }
  }
}

// Query-side backward: row i of (b, h) against keys j0 .. j0 + n - 1 (tile rows K, V).
// Accumulates dq (scaled) and, when dbias_row is given, adds dS to it.
template <int D>
MNEMO_HD void attention_backward_q_tile(const AttentionDesc& a, int64_t b, int64_t h, int64_t i, int64_t lo, int64_t hi,
                                        const float* q, const float* dout, float lse, float Drow, const float* K,
                                        const float* V, const float* bias_row, int64_t j0, int n, float* dq,
                                        float* dbias_row) {
  for (int t = 0; t < n; ++t) {
    const int64_t j = j0 + t;
    if (!attention_sees(a, b, h, i, j, lo, hi)) continue;
    float s = 0.0f, dp = 0.0f;
    for (int c = 0; c < D; ++c) {
      s += q[c] * K[t * D + c];
      dp += dout[c] * V[t * D + c];
    }
    s = float(a.scale) * s + (bias_row ? bias_row[j] : 0.0f);
    const float ds = attention_dscore(attention_probability(s, lse), dp, Drow);
    const float dsq = float(a.scale) * attention_operand(a, ds);
    for (int c = 0; c < D; ++c) dq[c] += dsq * K[t * D + c];
    if (dbias_row) dbias_row[j] += ds;
  }
}

// The head width a kernel instantiation handles: the smallest of 32, 64, 128 that holds d;
// 0 when d is larger (the CUDA attention then refuses the shape).
inline int attention_width(int64_t d) { return d <= 32 ? 32 : d <= 64 ? 64 : d <= 128 ? 128 : 0; }

}  // namespace mnemo::kernels::cuda
