// Fused kernels on every CPU float backend against the f64 reference: attention (several
// mask descriptions, a bias, one shared key/value head, sizes across several 64-row tiles)
// and GEGLU (both conventions).
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

BOOST_AUTO_TEST_SUITE_END()
