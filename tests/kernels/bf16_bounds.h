// The f64 oracle of the fused attention with element-by-element bounds on what rounding
// the tile products' operands to bf16 (f32 accumulation) can cost: shared by the cpu
// backend's bf16 tiles (test_bf16_attention.cpp) and the CUDA kernel's bf16 option
// (test_cuda_math.cpp on the CPU, test_cuda_kernels.cpp on a GPU).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "tests/kernels/agree.h"

namespace mnemo::test {

using Vd = std::vector<double>;
inline const double kBf16Unit = std::ldexp(1.0, -8);                  // bf16's unit roundoff: 8 significant bits
inline const double kBf16Product = 2 * kBf16Unit + kBf16Unit * kBf16Unit;  // a product of two rounded operands

// Whether query row i of (b, h) sees key j: the rules of kernels.h, stated once more.
inline bool visible(const kn::AttentionDesc& a, int64_t b, int64_t h, int64_t i, int64_t j) {
  int64_t lo, hi;
  kn::attention_row_interval(a, i, lo, hi);
  const int64_t m = j - a.prefix;
  if (m >= 0 && (m < lo || m > hi)) return false;
  if (a.key_pad && !a.key_pad[b * a.Tk + j]) return false;
  const int64_t* s = a.mask_strides;
  return !a.mask || a.mask[b * s[0] + h * s[1] + i * s[2] + j * s[3]];
}

// |got - want| <= bound + tol (1 + |want|), element by element; returns the worst
// |got - want| / bound seen (how much of the bf16 bound the errors use).
inline double within(const std::string& name, const Vf& got, const Vd& want, const Vd& bound, double tol) {
  size_t bad = 0, worst = 0;
  double used = 0, excess_max = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double diff = std::abs(double(got[i]) - want[i]);
    const double excess = std::isfinite(want[i]) ? diff - bound[i] - tol * (1 + std::abs(want[i]))
                                                 : (double(got[i]) == want[i] ? 0.0 : HUGE_VAL);
    if (excess > 0 && ++bad && excess > excess_max) excess_max = excess, worst = i;
    if (bound[i] > 0 && std::isfinite(want[i])) used = std::max(used, diff / bound[i]);
  }
  BOOST_TEST(bad == 0u, name << ": " << bad << " of " << want.size() << " beyond the bf16 bound; worst at [" << worst
                             << "]: " << got[worst] << " vs " << want[worst] << " (bound " << bound[worst] << ")");
  return used;
}

// The f64 results (o, lse, dq, dk, dv, dbias) and a bound for each element.
struct Bf16Oracle {
  Vd o, lse, dq, dk, dv, db;
  Vd bo, blse, bdq, bdk, bdv, bdb;
};

// `a` with its masks set; bias (B, H, Tq, Tk) when given (a.bias_per_batch), or null.
inline Bf16Oracle bf16_oracle(const kn::AttentionDesc& a, const Vf& q, const Vf& k, const Vf& v, const Vf* bias,
                              const Vf& dout) {
  const double u = kBf16Unit, kProduct = kBf16Product;
  const int64_t B = a.B, H = a.H, Tq = a.Tq, Tk = a.Tk, d = a.d;
  const int64_t nq = B * H * Tq * d, nkv = B * a.Hk * Tk * d, nb = B * H * Tq * Tk;
  BOOST_TEST_REQUIRE((!bias || a.bias_per_batch), "bf16_oracle takes a per-batch bias");
  Bf16Oracle r;
  r.o.assign(size_t(nq), 0), r.lse.assign(size_t(B * H * Tq), 0), r.dq.assign(size_t(nq), 0);
  r.dk.assign(size_t(nkv), 0), r.dv.assign(size_t(nkv), 0), r.db.assign(size_t(nb), 0);
  const Vd qd = as<double>(q), kd = as<double>(k), vd = as<double>(v), dod = as<double>(dout);
  const Vd bd = bias ? as<double>(*bias) : Vd();
  const double* bp = bias ? bd.data() : nullptr;
  kn::attention_forward.f64(a, r.o.data(), r.lse.data(), qd.data(), kd.data(), vd.data(), bp);
  kn::attention_backward.f64(a, r.dq.data(), r.dk.data(), r.dv.data(), bias ? r.db.data() : nullptr, dod.data(),
                             qd.data(), kd.data(), vd.data(), bp, r.o.data(), r.lse.data());
  // bounds, from the dense P, dP and dS of each (b, h)
  r.bo.assign(size_t(nq), 0), r.blse.assign(size_t(B * H * Tq), 0), r.bdq.assign(size_t(nq), 0);
  r.bdk.assign(size_t(nkv), 0), r.bdv.assign(size_t(nkv), 0), r.bdb.assign(size_t(nb), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t qh = (b * H + h) * Tq, kh = (b * a.Hk + (a.Hk == 1 ? 0 : h)) * Tk;
      auto Q = [&](int64_t i, int64_t c_) { return qd[size_t((qh + i) * d + c_)]; };
      auto K = [&](int64_t j, int64_t c_) { return kd[size_t((kh + j) * d + c_)]; };
      auto V = [&](int64_t j, int64_t c_) { return vd[size_t((kh + j) * d + c_)]; };
      auto dO = [&](int64_t i, int64_t c_) { return dod[size_t((qh + i) * d + c_)]; };
      for (int64_t i = 0; i < Tq; ++i) {
        const double l = r.lse[size_t(qh + i)];
        if (!std::isfinite(l)) continue;  // sees nothing: exact zeros either way
        double e = 0, Di = 0;             // e bounds the error of every score of the row
        for (int64_t c_ = 0; c_ < d; ++c_) Di += dO(i, c_) * r.o[size_t((qh + i) * d + c_)];
        for (int64_t j = 0; j < Tk; ++j) {
          double s = 0;
          for (int64_t c_ = 0; c_ < d; ++c_) s += std::abs(Q(i, c_) * K(j, c_));
          if (visible(a, b, h, i, j)) e = std::max(e, kProduct * a.scale * s);
        }
        const double grow = std::exp(2 * e);  // P' / P for scores off by at most e
        r.blse[size_t(qh + i)] = e;
        for (int64_t j = 0; j < Tk; ++j) {
          if (!visible(a, b, h, i, j)) continue;
          double s = 0, dp = 0, dp_abs = 0;
          for (int64_t c_ = 0; c_ < d; ++c_) {
            s += Q(i, c_) * K(j, c_);
            dp += dO(i, c_) * V(j, c_);
            dp_abs += std::abs(dO(i, c_) * V(j, c_));
          }
          const double P = std::exp(s * a.scale + (bias ? bd[size_t((qh + i) * Tk + j)] : 0.0) - l);
          const double dS = P * (dp - Di);
          const double g = P * ((grow - 1) * std::abs(dp - Di) + grow * kProduct * dp_abs);  // |dS' - dS|
          const double gs = (g * (1 + u) * (1 + u) + std::abs(dS) * kProduct) * a.scale;     // after rounding dS'
          r.bdb[size_t((qh + i) * Tk + j)] += g;
          for (int64_t c_ = 0; c_ < d; ++c_) {
            r.bo[size_t((qh + i) * d + c_)] += P * std::abs(V(j, c_)) * (grow * (1 + u) * (1 + u) - 1);
            r.bdv[size_t((kh + j) * d + c_)] += P * std::abs(dO(i, c_)) * (grow * (1 + u) * (1 + u) - 1);
            r.bdq[size_t((qh + i) * d + c_)] += gs * std::abs(K(j, c_));
            r.bdk[size_t((kh + j) * d + c_)] += gs * std::abs(Q(i, c_));
          }
        }
      }
    }
  return r;
}

// got: o, lse, dq, dk, dv, dbias (the last empty without a bias) from a bf16 run; the
// largest share of a bound any error used.
inline double within_bf16_bounds(const Bf16Oracle& w, const Outs<float>& got, bool with_bias) {
  double used = within("o", got[0], w.o, w.bo, 1e-4);
  used = std::max(used, within("lse", got[1], w.lse, w.blse, 1e-4));
  used = std::max(used, within("dq", got[2], w.dq, w.bdq, 2e-4));
  used = std::max(used, within("dk", got[3], w.dk, w.bdk, 2e-4));
  used = std::max(used, within("dv", got[4], w.dv, w.bdv, 2e-4));
  if (with_bias) used = std::max(used, within("dbias", got[5], w.db, w.bdb, 2e-4));
  return used;
}

// The random inputs of a bf16 attention check and their oracle: q, k, v, dout and a per-batch
// bias from `seed`, every seventh key padded (pad_keys), a fixed pattern of masked pairs
// (with_mask); `a` carries those masks (host pointers into this case, which therefore stays
// where it was made) and bias_per_batch. o and lse are the oracle's forward in f32: what a
// kernel's backward reads as saved.
struct Bf16AttentionCase {
  kn::AttentionDesc a;
  int64_t nq, nkv, nb;
  Vf q, k, v, bias, dout;
  std::vector<uint8_t> pad, mask;
  Bf16Oracle w;
  Vf o, lse;

  Bf16AttentionCase(kn::AttentionDesc desc, bool with_bias, bool pad_keys, bool with_mask, uint32_t seed) : a(desc) {
    a.bias_per_batch = with_bias;
    nq = a.B * a.H * a.Tq * a.d, nkv = a.B * a.Hk * a.Tk * a.d, nb = a.B * a.H * a.Tq * a.Tk;
    q = rand_vec(nq, -1, 1, seed), k = rand_vec(nkv, -1, 1, seed + 1), v = rand_vec(nkv, -1, 1, seed + 2);
    bias = rand_vec(nb, -1, 1, seed + 3), dout = rand_vec(nq, -1, 1, seed + 4);
    pad.assign(size_t(a.B * a.Tk), 1);
    for (size_t i = 0; i < pad.size(); i += 7) pad[i] = 0;
    mask.assign(size_t(nb), 0);
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = uint8_t((i * 13 + i / 5) % 4 != 0);
    a.key_pad = pad_keys ? pad.data() : nullptr;
    if (with_mask) a.mask = mask.data(), a.mask_strides[0] = a.H * a.Tq * a.Tk, a.mask_strides[1] = a.Tq * a.Tk,
                   a.mask_strides[2] = a.Tk, a.mask_strides[3] = 1;
    w = bf16_oracle(a, q, k, v, with_bias ? &bias : nullptr, dout);
    o.assign(w.o.begin(), w.o.end()), lse.assign(w.lse.begin(), w.lse.end());
  }
  Bf16AttentionCase(const Bf16AttentionCase&) = delete;  // a's masks point into this one
  Bf16AttentionCase& operator=(const Bf16AttentionCase&) = delete;

  const float* bias_or_null() const { return a.bias_per_batch ? bias.data() : nullptr; }
};

}  // namespace mnemo::test
