// Fused kernels on every CPU float backend against the f64 reference: attention (several
// mask descriptions, a bias, one shared key/value head, sizes across several 64-row tiles)
// GEGLU (both conventions) and hyper-connection mixing.
#include <boost/test/unit_test.hpp>

#include "kernels/kernels.h"
#include "tests/kernels/agree.h"

using namespace mnemo::test;

namespace {

struct Case {
  const char* what;
  kn::AttentionDesc a;
  bool bias;
};

void check(Case c, uint32_t seed) {
  kn::AttentionDesc& a = c.a;
  const int64_t nq = a.B * a.H * a.Tq * a.d, nkv = a.B * a.Hk * a.Tk * a.d, nb = a.H * a.Tq * a.Tk;
  const Vf q = rand_vec(nq, -1, 1, seed), k = rand_vec(nkv, -1, 1, seed + 1), v = rand_vec(nkv, -1, 1, seed + 2);
  const Vf bias = rand_vec(nb, -1, 1, seed + 3), dout = rand_vec(nq, -1, 1, seed + 4);
  std::vector<uint8_t> pad(size_t(a.B * a.Tk), 1);
  for (size_t i = 0; i < pad.size(); i += 7) pad[i] = 0;
  if (a.key_pad) a.key_pad = pad.data();
  auto fwd = [&]<class T>(auto* fn, T) {
    auto o = junk<T>(nq), lse = junk<T>(a.B * a.H * a.Tq);
    auto bb = as<T>(bias);
    fn(a, o.data(), lse.data(), as<T>(q).data(), as<T>(k).data(), as<T>(v).data(), c.bias ? bb.data() : nullptr);
    return Outs<T>{o, lse};
  };
  agree(kn::attention_forward, c.what, {"o", "lse"}, 1e-4, fwd);
  const std::vector<Vf> saved_out = saved(kn::attention_forward, fwd);
  agree(kn::attention_backward, c.what, {"dq", "dk", "dv", "dbias"}, 2e-4, [&]<class T>(auto* fn, T) {
    auto dq = junk<T>(nq), dk = junk<T>(nkv), dv = junk<T>(nkv), db = junk<T>(nb);
    auto bb = as<T>(bias);
    fn(a, dq.data(), dk.data(), dv.data(), c.bias ? db.data() : nullptr, as<T>(dout).data(), as<T>(q).data(),
       as<T>(k).data(), as<T>(v).data(), c.bias ? bb.data() : nullptr, as<T>(saved_out[0]).data(),
       as<T>(saved_out[1]).data());
    if (!c.bias) db.assign(size_t(nb), T(0));
    return Outs<T>{dq, dk, dv, db};
  });
}

kn::AttentionDesc desc(int64_t B, int64_t H, int64_t Hk, int64_t Tq, int64_t Tk, int64_t d) {
  kn::AttentionDesc a;
  a.B = B, a.H = H, a.Hk = Hk, a.Tq = Tq, a.Tk = Tk, a.d = d, a.scale = 1.0 / std::sqrt(double(d));
  return a;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fused_kernels)

BOOST_AUTO_TEST_CASE(forward_and_backward_agree) {
  std::vector<Case> cases;
  cases.push_back({"plain, size 1", desc(1, 1, 1, 1, 1, 1), false});
  cases.push_back({"plain odd", desc(2, 3, 3, 7, 13, 5), false});
  kn::AttentionDesc c = desc(2, 2, 2, 130, 200, 16);
  c.prefix = 70, c.causal = true;
  cases.push_back({"causal after 70 memory keys, bias", c, true});
  kn::AttentionDesc w = desc(1, 4, 1, 100, 100, 64);
  w.causal = true, w.window = 33, w.read_rows = 4, w.write_rows = 4;
  cases.push_back({"window, memory slots, shared head", w, false});
  kn::AttentionDesc p = desc(2, 2, 2, 65, 90, 8);
  p.key_pad = reinterpret_cast<const uint8_t*>(1);  // replaced by check() with a real padding mask
  cases.push_back({"key padding", p, false});
  uint32_t seed = 200;
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

BOOST_AUTO_TEST_CASE(hyper_connection_mixing) {
  // one stream of row 0 all zeros: its norm clamps at eps and takes no radial gradient
  for (const int64_t R : {int64_t(1), int64_t(7), int64_t(300)})
    for (const int64_t S : {int64_t(1), int64_t(4)})
      for (const int64_t D : {int64_t(5), int64_t(64)}) {
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

BOOST_AUTO_TEST_SUITE_END()
