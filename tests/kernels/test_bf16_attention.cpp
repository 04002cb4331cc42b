// The cpu backend's fused attention with bf16 tile products (AttentionDesc::bf16) against
// an f64 oracle, under every mask rule, at odd sizes: each output and input gradient stays
// within what rounding the products' operands to bf16 can cost, element by element, and
// the products really ran in bf16. SKIP on a CPU without avx512_bf16.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>

#include "kernels/cpu/bf16_tile.h"
#include "kernels/kernels.h"
#include "tests/kernels/agree.h"
#include "tests/support/skip.h"

using namespace mnemo::test;

namespace {

using Vd = std::vector<double>;
const double u = std::ldexp(1.0, -8);  // bf16's unit roundoff: 8 significant bits
const double kProduct = 2 * u + u * u;  // a product of two rounded operands

struct Case {
  std::string what;
  kn::AttentionDesc a;
  bool bias = false, pad = false, mask = false;
};

kn::AttentionDesc desc(int64_t B, int64_t H, int64_t Hk, int64_t Tq, int64_t Tk, int64_t d) {
  kn::AttentionDesc a;
  a.B = B, a.H = H, a.Hk = Hk, a.Tq = Tq, a.Tk = Tk, a.d = d, a.scale = 1.0 / std::sqrt(double(d));
  return a;
}

// Whether query row i of (b, h) sees key j: the rules of kernels.h, stated once more.
bool visible(const kn::AttentionDesc& a, int64_t b, int64_t h, int64_t i, int64_t j) {
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
double within(const std::string& name, const Vf& got, const Vd& want, const Vd& bound, double tol) {
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

// Runs the case in f64 (the oracle, dense loops below) and on the cpu kernel with bf16
// tiles; returns the largest fraction of a bound any error used.
double check(Case c, uint32_t seed) {
  kn::AttentionDesc& a = c.a;
  const int64_t B = a.B, H = a.H, Tq = a.Tq, Tk = a.Tk, d = a.d;
  const int64_t nq = B * H * Tq * d, nkv = B * a.Hk * Tk * d, nb = B * H * Tq * Tk;
  a.bias_per_batch = c.bias;
  const Vf q = rand_vec(nq, -1, 1, seed), k = rand_vec(nkv, -1, 1, seed + 1), v = rand_vec(nkv, -1, 1, seed + 2);
  const Vf bias = rand_vec(nb, -1, 1, seed + 3), dout = rand_vec(nq, -1, 1, seed + 4);
  std::vector<uint8_t> pad(size_t(B * Tk), 1), mask(size_t(nb), 0);
  for (size_t i = 0; i < pad.size(); i += 7) pad[i] = 0;
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = uint8_t((i * 13 + i / 5) % 4 != 0);
  a.key_pad = c.pad ? pad.data() : nullptr;
  if (c.mask) a.mask = mask.data(), a.mask_strides[0] = H * Tq * Tk, a.mask_strides[1] = Tq * Tk,
              a.mask_strides[2] = Tk, a.mask_strides[3] = 1;
  const float* bp = c.bias ? bias.data() : nullptr;
  // f64 oracle outputs (o, lse in float are the saved inputs of both backwards)
  Vd o(size_t(nq), 0), lse(size_t(B * H * Tq), 0), dq(size_t(nq), 0), dk(size_t(nkv), 0), dv(size_t(nkv), 0),
      db(size_t(nb), 0);
  const Vd qd = as<double>(q), kd = as<double>(k), vd = as<double>(v), bd = as<double>(bias), dod = as<double>(dout);
  kn::attention_forward.f64(a, o.data(), lse.data(), qd.data(), kd.data(), vd.data(), c.bias ? bd.data() : nullptr);
  kn::attention_backward.f64(a, dq.data(), dk.data(), dv.data(), c.bias ? db.data() : nullptr, dod.data(), qd.data(),
                             kd.data(), vd.data(), c.bias ? bd.data() : nullptr, o.data(), lse.data());
  const Vf of(o.begin(), o.end()), lsef(lse.begin(), lse.end());
  // bounds, from the dense P, dP and dS of each (b, h)
  Vd bo(size_t(nq), 0), blse(size_t(B * H * Tq), 0), bdq(size_t(nq), 0), bdk(size_t(nkv), 0), bdv(size_t(nkv), 0),
      bdb(size_t(nb), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t qh = (b * H + h) * Tq, kh = (b * a.Hk + (a.Hk == 1 ? 0 : h)) * Tk;
      auto Q = [&](int64_t i, int64_t c_) { return qd[size_t((qh + i) * d + c_)]; };
      auto K = [&](int64_t j, int64_t c_) { return kd[size_t((kh + j) * d + c_)]; };
      auto V = [&](int64_t j, int64_t c_) { return vd[size_t((kh + j) * d + c_)]; };
      auto dO = [&](int64_t i, int64_t c_) { return dod[size_t((qh + i) * d + c_)]; };
      for (int64_t i = 0; i < Tq; ++i) {
        const double l = lse[size_t(qh + i)];
        if (!std::isfinite(l)) continue;  // sees nothing: exact zeros either way
        double e = 0, Di = 0;             // e bounds the error of every score of the row
        for (int64_t c_ = 0; c_ < d; ++c_) Di += dO(i, c_) * o[size_t((qh + i) * d + c_)];
        for (int64_t j = 0; j < Tk; ++j) {
          double s = 0;
          for (int64_t c_ = 0; c_ < d; ++c_) s += std::abs(Q(i, c_) * K(j, c_));
          if (visible(a, b, h, i, j)) e = std::max(e, kProduct * a.scale * s);
        }
        const double grow = std::exp(2 * e);  // P' / P for scores off by at most e
        blse[size_t(qh + i)] = e;
        for (int64_t j = 0; j < Tk; ++j) {
          if (!visible(a, b, h, i, j)) continue;
          double s = 0, dp = 0, dp_abs = 0;
          for (int64_t c_ = 0; c_ < d; ++c_) {
            s += Q(i, c_) * K(j, c_);
            dp += dO(i, c_) * V(j, c_);
            dp_abs += std::abs(dO(i, c_) * V(j, c_));
          }
          const double P = std::exp(s * a.scale + (c.bias ? bd[size_t((qh + i) * Tk + j)] : 0.0) - l);
          const double dS = P * (dp - Di);
          const double g = P * ((grow - 1) * std::abs(dp - Di) + grow * kProduct * dp_abs);  // |dS' - dS|
          const double gs = (g * (1 + u) * (1 + u) + std::abs(dS) * kProduct) * a.scale;     // after rounding dS'
          bdb[size_t((qh + i) * Tk + j)] += g;
          for (int64_t c_ = 0; c_ < d; ++c_) {
            bo[size_t((qh + i) * d + c_)] += P * std::abs(V(j, c_)) * (grow * (1 + u) * (1 + u) - 1);
            bdv[size_t((kh + j) * d + c_)] += P * std::abs(dO(i, c_)) * (grow * (1 + u) * (1 + u) - 1);
            bdq[size_t((qh + i) * d + c_)] += gs * std::abs(K(j, c_));
            bdk[size_t((kh + j) * d + c_)] += gs * std::abs(Q(i, c_));
          }
        }
      }
    }
  // the cpu kernel with bf16 tiles, on the oracle's saved o and lse
  auto* fwd = kn::attention_forward.get(kn::Backend::cpu);
  auto* bwd = kn::attention_backward.get(kn::Backend::cpu);
  auto run = [&](bool bf16) {
    a.bf16 = bf16;
    Outs<float> out{junk<float>(nq), junk<float>(B * H * Tq), junk<float>(nq), junk<float>(nkv), junk<float>(nkv),
                    Vf(size_t(nb), 0.0f)};
    fwd(a, out[0].data(), out[1].data(), q.data(), k.data(), v.data(), bp);
    bwd(a, out[2].data(), out[3].data(), out[4].data(), c.bias ? out[5].data() : nullptr, dout.data(), q.data(),
        k.data(), v.data(), bp, of.data(), lsef.data());
    return out;
  };
  const Outs<float> f32 = run(false), bf16 = run(true);
  double used = 0;
  BOOST_TEST_CONTEXT(c.what) {
    used = std::max(used, within("o", bf16[0], o, bo, 1e-4));
    used = std::max(used, within("lse", bf16[1], lse, blse, 1e-4));
    used = std::max(used, within("dq", bf16[2], dq, bdq, 2e-4));
    used = std::max(used, within("dk", bf16[3], dk, bdk, 2e-4));
    used = std::max(used, within("dv", bf16[4], dv, bdv, 2e-4));
    if (c.bias) used = std::max(used, within("dbias", bf16[5], db, bdb, 2e-4));
    // with the flag off, the f32 kernel as every other test knows it
    compare("o (f32)", f32[0], o, 1e-4);
    compare("dq (f32)", f32[2], dq, 2e-4);
  }
  a.bf16 = false;
  BOOST_TEST_MESSAGE(c.what << ": largest error " << used << " of its bf16 bound");
  return used;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(bf16_attention)

BOOST_AUTO_TEST_CASE(bf16_tiles_stay_within_bf16_rounding_under_every_mask_rule) {
  if (!kn::cpu::bf16_tiles_supported()) skip_test("this CPU has no avx512_bf16: the attention tiles stay f32");
  kn::init();
  std::vector<Case> cases;
  cases.push_back({"plain, size 1", desc(1, 1, 1, 1, 1, 1)});
  cases.push_back({"plain odd", desc(2, 3, 3, 7, 13, 5)});
  kn::AttentionDesc c = desc(2, 2, 2, 130, 200, 16);
  c.prefix = 70, c.causal = true;
  cases.push_back({"causal after 70 prefix keys, per-batch bias, 3 query tiles", c, true});
  kn::AttentionDesc w = desc(1, 4, 1, 100, 100, 64);
  w.causal = true, w.window = 33, w.read_rows = 4, w.write_rows = 4;
  cases.push_back({"causal window, memory read and write rows, shared head, d 64", w});
  kn::AttentionDesc nw = desc(2, 3, 1, 65, 80, 7);
  nw.window = 17, nw.prefix = 3;
  cases.push_back({"two-sided window after 3 prefix keys, shared head, bias", nw, true});
  kn::AttentionDesc early = desc(2, 2, 2, 17, 10, 8);
  early.causal = true;
  cases.push_back({"causal with more queries than keys: rows that see nothing", early, true});
  cases.push_back({"key padding, d 33", desc(2, 2, 2, 65, 91, 33), false, true});
  kn::AttentionDesc dm = desc(3, 2, 1, 66, 65, 9);
  dm.causal = true, dm.prefix = 2;
  cases.push_back({"causal, dense mask, key padding, shared head, bias", dm, true, true, true});
  kn::AttentionDesc wide = desc(1, 2, 2, 70, 129, 100);
  wide.causal = true;
  cases.push_back({"causal, head width 100", wide, true});
  double used = 0;
  uint32_t seed = 900;
  for (const Case& cs : cases) used = std::max(used, check(cs, seed += 10));
  // The bounds are not so loose that f32 products would pass unnoticed: the errors use a
  // visible share of them (f32 tiles use about 1e-4 of these bounds).
  BOOST_TEST(used > 0.01);
}

BOOST_AUTO_TEST_CASE(bf16_pack_rounds_to_nearest_even_and_keeps_nan) {
  if (!kn::cpu::bf16_tiles_supported()) skip_test("this CPU has no avx512_bf16: the attention tiles stay f32");
  // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties go to the even one (1);
  // 1 + 3 2^-8 ties between 1 + 2^-7 and 1 + 2^-6, rounding up to the even 1 + 2^-6.
  const float x[4] = {1.0f + std::ldexp(1.0f, -8), 1.0f + 3 * std::ldexp(1.0f, -8),
                      std::numeric_limits<float>::quiet_NaN(), -2.5f};
  uint32_t rows[2] = {}, cols[2] = {}, pairs[2] = {};
  kn::cpu::pack_rows(1, 4, x, 4, rows, 2);
  kn::cpu::pack_col_pairs(1, 4, x, 4, cols, 1);
  const float y[4] = {x[0], x[2], x[1], x[3]};  // two rows of two: pairs run down the columns
  kn::cpu::pack_row_pairs(2, 2, y, 2, pairs, 2);
  for (const uint32_t* w : {rows, cols, pairs}) {
    BOOST_TEST((w[0] & 0xFFFFu) == 0x3F80u);  // 1
    BOOST_TEST((w[0] >> 16) == 0x3F82u);      // 1 + 2^-6
    BOOST_TEST(((w[1] & 0x7F80u) == 0x7F80u && (w[1] & 0x7Fu) != 0));  // NaN
    BOOST_TEST((w[1] >> 16) == 0xC020u);      // -2.5
  }
}

BOOST_AUTO_TEST_SUITE_END()
