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
#include "tests/kernels/bf16_bounds.h"
#include "tests/support/skip.h"

using namespace mnemo::test;

namespace {

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

// Runs the case in f64 (the oracle, bf16_bounds.h) and on the cpu kernel with bf16
// tiles; returns the largest fraction of a bound any error used.
double check(Case c, uint32_t seed) {
  Bf16AttentionCase in(c.a, c.bias, c.pad, c.mask, seed);
  kn::AttentionDesc& a = in.a;
  const Bf16Oracle& w = in.w;
  const float* bp = in.bias_or_null();
  // the cpu kernel with bf16 tiles, on the oracle's saved o and lse
  auto* fwd = kn::attention_forward.get(kn::Backend::cpu);
  auto* bwd = kn::attention_backward.get(kn::Backend::cpu);
  auto run = [&](bool bf16) {
    a.bf16 = bf16;
    Outs<float> out{junk<float>(in.nq), junk<float>(a.B * a.H * a.Tq), junk<float>(in.nq), junk<float>(in.nkv),
                    junk<float>(in.nkv), Vf(size_t(in.nb), 0.0f)};
    fwd(a, out[0].data(), out[1].data(), in.q.data(), in.k.data(), in.v.data(), bp);
    bwd(a, out[2].data(), out[3].data(), out[4].data(), c.bias ? out[5].data() : nullptr, in.dout.data(),
        in.q.data(), in.k.data(), in.v.data(), bp, in.o.data(), in.lse.data());
    return out;
  };
  const Outs<float> f32 = run(false), bf16 = run(true);
  double used = 0;
  BOOST_TEST_CONTEXT(c.what) {
    used = within_bf16_bounds(w, bf16, c.bias);
    // with the flag off, the f32 kernel as every other test knows it
    compare("o (f32)", f32[0], w.o, 1e-4);
    compare("dq (f32)", f32[2], w.dq, 2e-4);
  }
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
