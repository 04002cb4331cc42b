// Fused kernels on every float CPU backend against the f64 reference: attention under every
// mask rule of AttentionDesc (prefix, causal, window, memory read and write rows, key
// padding, dense masks, per-head and per-batch bias, dense or banded (the relative shift),
// one shared key/value head, rows that see nothing), at odd sizes across several of the fast
// kernel's 64-row tiles; GEGLU (both conventions), the nBRC cell, hyper-connection mixing, and
// the tile GEMM under the fused kernels at every edge of its register blocks.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/vec.h"
#include "kernels/kernels.h"
#include "tests/kernels/agree.h"

using namespace mnemo::test;

namespace {

enum class Bias { none, per_head, per_batch };
enum class Pad { none, every_7th, last_batch_all };  // last_batch_all: its rows see only the prefix
enum class Mask { none, per_head, full };           // dense masks; row 1 of each sees nothing

struct Case {
  std::string what;
  kn::AttentionDesc a;
  Bias bias = Bias::none;
  Pad pad = Pad::none;
  Mask mask = Mask::none;
};

void check(Case c, uint32_t seed) {
  kn::AttentionDesc& a = c.a;
  a.bias_per_batch = c.bias == Bias::per_batch;
  const int64_t nq = a.B * a.H * a.Tq * a.d, nkv = a.B * a.Hk * a.Tk * a.d;
  const int64_t nb = (c.bias == Bias::per_batch ? a.B : 1) * a.H * a.Tq * (a.bias_band > 0 ? a.bias_band : a.Tk);
  const Vf q = rand_vec(nq, -1, 1, seed), k = rand_vec(nkv, -1, 1, seed + 1), v = rand_vec(nkv, -1, 1, seed + 2);
  const Vf bias = rand_vec(nb, -1, 1, seed + 3), dout = rand_vec(nq, -1, 1, seed + 4);
  std::vector<uint8_t> pad(size_t(a.B * a.Tk), 1);
  if (c.pad == Pad::every_7th)
    for (size_t i = 0; i < pad.size(); i += 7) pad[i] = 0;
  if (c.pad == Pad::last_batch_all) std::fill(pad.end() - a.Tk, pad.end(), 0);
  a.key_pad = c.pad == Pad::none ? nullptr : pad.data();
  std::vector<uint8_t> mask;
  if (c.mask != Mask::none) {  // (H, Tq, Tk) shared by the batch, or (B, H, Tq, Tk)
    const int64_t batches = c.mask == Mask::full ? a.B : 1;
    mask.resize(size_t(batches * a.H * a.Tq * a.Tk));
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = uint8_t((i * 13 + i / 5) % 4 != 0);
    for (int64_t bh = 0; bh < batches * a.H && a.Tq > 1; ++bh)
      std::fill_n(mask.begin() + (bh * a.Tq + 1) * a.Tk, a.Tk, uint8_t(0));
    a.mask = mask.data();
    a.mask_strides[0] = c.mask == Mask::full ? a.H * a.Tq * a.Tk : 0;
    a.mask_strides[1] = a.Tq * a.Tk, a.mask_strides[2] = a.Tk, a.mask_strides[3] = 1;
  }
  const bool with_bias = c.bias != Bias::none;
  auto fwd = [&]<class T>(auto* fn, T) {
    auto o = junk<T>(nq), lse = junk<T>(a.B * a.H * a.Tq);
    auto bb = as<T>(bias);
    fn(a, o.data(), lse.data(), as<T>(q).data(), as<T>(k).data(), as<T>(v).data(), with_bias ? bb.data() : nullptr);
    return Outs<T>{o, lse};
  };
  agree(kn::attention_forward, c.what, {"o", "lse"}, 1e-4, fwd);
  const std::vector<Vf> saved_out = saved(kn::attention_forward, fwd);
  agree(kn::attention_backward, c.what, {"dq", "dk", "dv", "dbias"}, 2e-4, [&]<class T>(auto* fn, T) {
    auto dq = junk<T>(nq), dk = junk<T>(nkv), dv = junk<T>(nkv), db = junk<T>(nb);
    auto bb = as<T>(bias);
    fn(a, dq.data(), dk.data(), dv.data(), with_bias ? db.data() : nullptr, as<T>(dout).data(), as<T>(q).data(),
       as<T>(k).data(), as<T>(v).data(), with_bias ? bb.data() : nullptr, as<T>(saved_out[0]).data(),
       as<T>(saved_out[1]).data());
    if (!with_bias) db.assign(size_t(nb), T(0));
    return Outs<T>{dq, dk, dv, db};
  });
}

kn::AttentionDesc desc(int64_t B, int64_t H, int64_t Hk, int64_t Tq, int64_t Tk, int64_t d) {
  kn::AttentionDesc a;
  a.B = B, a.H = H, a.Hk = Hk, a.Tq = Tq, a.Tk = Tk, a.d = d, a.scale = 1.0 / std::sqrt(double(d));
  return a;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(backends_agree)
BOOST_AUTO_TEST_SUITE(fused)

BOOST_AUTO_TEST_CASE(attention_every_mask_rule) {
  std::vector<Case> cases;
  cases.push_back({"plain, size 1", desc(1, 1, 1, 1, 1, 1)});
  cases.push_back({"plain odd", desc(2, 3, 3, 7, 13, 5)});
  kn::AttentionDesc c = desc(2, 2, 2, 130, 200, 16);
  c.prefix = 70, c.causal = true;
  cases.push_back({"causal after 70 prefix keys, per-head bias", c, Bias::per_head});
  cases.push_back({"causal after 70 prefix keys, per-batch bias", c, Bias::per_batch});
  kn::AttentionDesc w = desc(1, 4, 1, 100, 100, 64);
  w.causal = true, w.window = 33, w.read_rows = 4, w.write_rows = 4;
  cases.push_back({"causal window, memory read and write rows, shared head", w});
  kn::AttentionDesc nw = desc(2, 3, 1, 65, 80, 7);
  nw.window = 17, nw.prefix = 3;
  cases.push_back({"two-sided window after 3 prefix keys, shared head, per-batch bias", nw, Bias::per_batch});
  kn::AttentionDesc rw = desc(1, 2, 2, 33, 40, 3);
  rw.causal = true, rw.read_rows = 7, rw.write_rows = 3, rw.prefix = 5;
  cases.push_back({"causal, read rows 7, write rows 3, prefix 5, per-head bias", rw, Bias::per_head});
  kn::AttentionDesc early = desc(2, 2, 2, 17, 10, 8);
  early.causal = true;  // bottom-right aligned: rows 0-6 are before every key and see nothing
  cases.push_back({"causal with more queries than keys: rows that see nothing", early, Bias::per_head});
  cases.push_back({"key padding", desc(2, 2, 2, 65, 90, 8), Bias::none, Pad::every_7th});
  kn::AttentionDesc allpad = desc(2, 2, 1, 33, 37, 5);
  allpad.causal = true;
  cases.push_back({"causal, last batch all padded: rows that see nothing", allpad, Bias::per_batch, Pad::last_batch_all});
  kn::AttentionDesc allpad_prefix = allpad;
  allpad_prefix.prefix = 4;
  cases.push_back({"prefix 4, last batch all padded", allpad_prefix, Bias::none, Pad::last_batch_all});
  cases.push_back({"dense mask shared by the batch, bias", desc(2, 3, 3, 17, 33, 4), Bias::per_head, Pad::none,
                   Mask::per_head});
  kn::AttentionDesc dm = desc(3, 2, 1, 66, 65, 9);
  dm.causal = true, dm.prefix = 2;
  cases.push_back({"causal, dense mask per batch, key padding, shared head, per-batch bias", dm, Bias::per_batch,
                   Pad::every_7th, Mask::full});
  uint32_t seed = 200;
  for (const Case& cs : cases) check(cs, seed += 10);
}

// The bias as a band read through the shifted index (AttentionDesc::bias_band): MemXL's form
// (persistent keys without a bias, the band covering memories and tokens), a band narrower
// than the keys (rows whose band ends early or starts late), and one wider than a key block.
BOOST_AUTO_TEST_CASE(attention_banded_bias) {
  auto band = [](kn::AttentionDesc a, int64_t n, int64_t shift, int64_t from) {
    a.bias_band = n, a.bias_shift = shift, a.bias_from = from;
    return a;
  };
  std::vector<Case> cases;
  kn::AttentionDesc x = desc(2, 2, 2, 130, 200, 16);  // 2 persistent + 68 memories, then 130 tokens
  x.prefix = 70, x.causal = true;
  cases.push_back({"MemXL's band: keys from 2, column j - i + 67", band(x, 198, 67, 2), Bias::per_batch});
  kn::AttentionDesc xs = band(x, 198, 67, 2);
  xs.bias_scale = 0.35;
  cases.push_back({"the same band shared by the batch, scaled by 0.35", xs, Bias::per_head});
  kn::AttentionDesc ds = x;
  ds.bias_scale = -1.5;
  cases.push_back({"a dense bias scaled by -1.5", ds, Bias::per_batch});
  cases.push_back({"a band of 50 columns, shift 10", band(x, 50, 10, 0), Bias::per_batch});
  kn::AttentionDesc w = desc(1, 3, 1, 65, 80, 7);
  w.window = 17, w.prefix = 3;
  cases.push_back({"two-sided window, shared head, band of 90 from key 5, shift -4", band(w, 90, -4, 5),
                   Bias::per_head, Pad::every_7th});
  kn::AttentionDesc dm = desc(3, 2, 1, 66, 65, 9);
  dm.causal = true, dm.prefix = 2;
  cases.push_back({"causal, dense mask per batch, key padding, band of 3", band(dm, 3, 1, 0), Bias::per_batch,
                   Pad::every_7th, Mask::full});
  cases.push_back({"size 1, band of 1", band(desc(1, 1, 1, 1, 1, 1), 1, 0, 0), Bias::per_head});
  uint32_t seed = 600;
  for (const Case& cs : cases) check(cs, seed += 10);
}

BOOST_AUTO_TEST_CASE(geglu_both_conventions) {
  for (const int64_t rows : {int64_t(1), int64_t(7), int64_t(200)})
    for (const int64_t I : {int64_t(1), int64_t(37), int64_t(256)})
      for (const bool first : {false, true}) {
        const std::string what = sz("rows", rows) + " " + sz("I", I) + (first ? " activate_first" : "");
        const Vf x = rand_vec(rows * 2 * I, -4, 4, 300), dy = rand_vec(rows * I, -1, 1, 301);
        agree(kn::geglu_forward, what, {"y"}, kTol, [&]<class T>(auto* fn, T) {
          auto y = junk<T>(rows * I);
          fn(y.data(), as<T>(x).data(), rows, I, first); return Outs<T>{y};
        });
        agree(kn::geglu_backward, what, {"dx"}, kTol, [&]<class T>(auto* fn, T) {
          auto dx = junk<T>(rows * 2 * I);
          fn(dx.data(), as<T>(dy).data(), as<T>(x).data(), rows, I, first); return Outs<T>{dx};
        });
      }
}

BOOST_AUTO_TEST_CASE(nbrc_cell) {
  // both sides of the cpu kernel's threading threshold; tanh and sigmoid well into saturation
  for (const int64_t n : {int64_t(1), int64_t(37), int64_t(70001)}) {
    const Vf ga = rand_vec(n, -6, 6, 310), gc = rand_vec(n, -6, 6, 311), gu = rand_vec(n, -6, 6, 312);
    const Vf h = rand_vec(n, -2, 2, 313), dout = rand_vec(n, -1, 1, 314);
    agree(kn::nbrc_forward, sz("n", n), {"out"}, kTol, [&]<class T>(auto* fn, T) {
      auto out = junk<T>(n);
      fn(out.data(), as<T>(ga).data(), as<T>(gc).data(), as<T>(gu).data(), as<T>(h).data(), n);
      return Outs<T>{out};
    });
    agree(kn::nbrc_backward, sz("n", n), {"dga", "dgc", "dgu", "dh"}, kTol, [&]<class T>(auto* fn, T) {
      auto dga = junk<T>(n), dgc = junk<T>(n), dgu = junk<T>(n), dh = junk<T>(n);
      fn(dga.data(), dgc.data(), dgu.data(), dh.data(), as<T>(dout).data(), as<T>(ga).data(), as<T>(gc).data(),
         as<T>(gu).data(), as<T>(h).data(), n);
      return Outs<T>{dga, dgc, dgu, dh};
    });
  }
}

BOOST_AUTO_TEST_CASE(hyper_connection_mixing) {
  // one stream of row 0 all zeros: its norm clamps at eps and takes no radial gradient
  for (const int64_t R : {int64_t(1), int64_t(7), int64_t(300)})
    for (const int64_t S : {int64_t(1), int64_t(3), int64_t(4)})
      for (const int64_t D : {int64_t(1), int64_t(5), int64_t(64)}) {
        const int64_t C = S + 2, W = D + S * C;
        const std::string what = sz("R", R) + " " + sz("S", S) + " " + sz("D", D);
        Vf H = rand_vec(R * S * D, -1, 1, 400);
        std::fill(H.begin(), H.begin() + D, 0.0f);
        const Vf G = rand_vec(D * C, -1, 1, 401), base = rand_vec(S * C, -1, 1, 402), scale = rand_vec(C, -2, 2, 403);
        const Vf dout = rand_vec(R * W, -1, 1, 404), b = rand_vec(R * D, -1, 1, 405), dh = rand_vec(R * S * D, -1, 1, 406);
        const float eps = 1e-12f;
        auto fwd = [&]<class T>(auto* fn, T) {
          auto out = junk<T>(R * W), z = junk<T>(R * S * C), norm = junk<T>(R * S);
          fn(out.data(), z.data(), norm.data(), as<T>(H).data(), as<T>(G).data(), as<T>(base).data(),
             as<T>(scale).data(), R, S, D, T(eps));
          return Outs<T>{out, z, norm};
        };
        agree(kn::hyper_width_forward, what, {"out", "z", "norm"}, kTol, fwd);
        const std::vector<Vf> s = saved(kn::hyper_width_forward, fwd);
        agree(kn::hyper_width_backward, what, {"dH", "dG", "dbase", "dscale"}, 1e-4, [&]<class T>(auto* fn, T) {
          auto dH = junk<T>(R * S * D), dG = junk<T>(D * C), db = junk<T>(S * C), ds = junk<T>(C);
          fn(dH.data(), dG.data(), db.data(), ds.data(), as<T>(dout).data(), as<T>(H).data(), as<T>(G).data(),
             as<T>(scale).data(), as<T>(s[0]).data(), as<T>(s[1]).data(), as<T>(s[2]).data(), R, S, D, T(eps));
          return Outs<T>{dH, dG, db, ds};
        });
        Vf coef(size_t(R * S * C));  // the coefficients the width op made
        for (int64_t r = 0; r < R; ++r)
          std::copy_n(s[0].begin() + r * W + D, S * C, coef.begin() + r * S * C);
        for (const bool mix : {true, false}) {
          const std::string w = what + (mix ? " mixed" : " unmixed");
          agree(kn::hyper_depth_forward, w, {"out"}, kTol, [&]<class T>(auto* fn, T) {
            auto out = junk<T>(R * S * D);
            fn(out.data(), as<T>(H).data(), as<T>(coef).data(), as<T>(b).data(), R, S, D, mix);
            return Outs<T>{out};
          });
          agree(kn::hyper_depth_backward, w, {"dH", "dcoef", "db"}, kTol, [&]<class T>(auto* fn, T) {
            auto dH = junk<T>(R * S * D), dc = junk<T>(R * S * C), db = junk<T>(R * D);
            fn(dH.data(), dc.data(), db.data(), as<T>(dh).data(), as<T>(H).data(), as<T>(coef).data(),
               as<T>(b).data(), R, S, D, mix);
            return Outs<T>{dH, dc, db};
          });
        }
      }
}

// Activations feed the non-finite guard: NaN and infinities must come out as the math says,
// with no undefined float-to-int conversion on the way (UBSan; found by fuzz_checkpoint).
BOOST_AUTO_TEST_CASE(fast_exp_keeps_nan_and_saturates) {
  using mnemo::kernels::cpu::fast_exp;
  BOOST_TEST(std::isnan(fast_exp(std::numeric_limits<float>::quiet_NaN())));
  BOOST_TEST(fast_exp(-std::numeric_limits<float>::infinity()) == 0.0f);
  BOOST_TEST(fast_exp(-100.0f) == 0.0f);
  BOOST_TEST(std::isfinite(fast_exp(88.0f)));
  BOOST_TEST(std::abs(fast_exp(1.0f) - 2.7182817f) < 1e-6f);
}

// The register-blocked tile GEMM under every fused kernel: its row blocks (6 or 4 rows, then
// single rows) and column blocks (wide, one vector, the scalar tail) differ per ISA, so the
// sizes straddle every edge of both, with padded row strides and A read either way.
BOOST_AUTO_TEST_CASE(tile_gemm_every_block_edge) {
  using mnemo::kernels::cpu::tile_gemm;
  for (const int64_t M : {1, 3, 4, 5, 6, 7, 11, 12, 13, 64, 67})
    for (const int64_t N : {1, 7, 8, 9, 16, 17, 24, 33, 64, 65, 80, 130})
      for (const int64_t K : {1, 5, 64})
        for (const bool trans_a : {false, true})
          for (const bool accumulate : {false, true}) {
            const int64_t lda = (trans_a ? M : K) + 3, ldb = N + 5, ldc = N + 2;
            const uint32_t seed = uint32_t(M * 1000003 + N * 1009 + K * 31 + trans_a * 2 + accumulate);
            const Vf A = rand_vec((trans_a ? K : M) * lda, -1, 1, seed), B = rand_vec(K * ldb, -1, 1, seed + 1);
            Vf C = rand_vec(M * ldc, -1, 1, seed + 2);
            const Vf C0 = C;
            tile_gemm<float>(M, N, K, A.data(), lda, trans_a, B.data(), ldb, C.data(), ldc, accumulate);
            double worst = 0;
            for (int64_t i = 0; i < M; ++i)
              for (int64_t j = 0; j < ldc; ++j) {
                double want = C0[size_t(i * ldc + j)];  // columns past N must stay untouched
                if (j < N) {
                  want = accumulate ? want : 0.0;
                  for (int64_t k = 0; k < K; ++k)
                    want += double(trans_a ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)]) * B[size_t(k * ldb + j)];
                }
                worst = std::max(worst, std::abs(double(C[size_t(i * ldc + j)]) - want));
              }
            BOOST_TEST(worst < 1e-4, "M " << M << " N " << N << " K " << K << " trans_a " << trans_a << " accumulate "
                                          << accumulate << ": max |error| " << worst);
          }
}

BOOST_AUTO_TEST_SUITE_END()  // fused
BOOST_AUTO_TEST_SUITE_END()  // backends_agree

