// Positional schemes (SPEC 0.3): rotary and xPos, the learned relative table of CT/MemXL,
// the dynamic position bias, T5 buckets and token shift, against hand computations.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <numeric>
#include <vector>

#include "layers/relative_bias.h"
#include "layers/rotary.h"
#include "layers/token_shift.h"
#include "tests/support/tensor_compare.h"

using mnemo::test::max_abs;
using mnemo::test::max_abs_diff;

using namespace mnemo;
using namespace mnemo::nn;

namespace {

std::vector<int64_t> range(int64_t from, int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), from);
  return v;
}

// q k^T over the last two axes, the one key head shared: (B, H, Tq, Tk), as plain numbers.
Tensor logits(Var q, Var k) {
  return matmul(q, broadcast_to(k, {q.dim(0), q.dim(1), k.dim(2), k.dim(3)}), {.trans_b = true}).value();
}

// Attention over q, k, v (f32) with the relative logits dense (the gather path) or as a band
// the kernel reads through the shifted index; returns o and the gradients of q, k, v and R.
std::vector<Tensor> attend_with_positions(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout,
                                          const Param& R, int64_t prefix, bool band,
                                          const std::function<Var(Var)>& dense_logits,
                                          const std::function<BandBias(Var)>& band_logits) {
  Tape t;
  Var qv = t.input(q), kv = t.input(k), vv = t.input(v);
  AttentionSpec spec{.prefix = prefix, .causal = true};
  if (band) spec.band_bias = band_logits(qv);
  else spec.bias = dense_logits(qv);
  Var o = attention(qv, kv, vv, spec);
  R.zero_grad();
  const Var roots[] = {o};
  const Tensor seeds[] = {dout};
  t.backward(roots, seeds);
  return {o.value(), t.grad(qv), t.grad(kv), t.grad(vv), R.grad.clone()};
}

// Both paths on one problem; they must agree to f32 rounding (they differ in summation order only).
void check_band_equals_gather(const char* what, int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t d,
                              int64_t prefix, const Param& R, const std::function<Var(Var)>& dense_logits,
                              const std::function<BandBias(Var)>& band_logits) {
  Rng rng(uint64_t(Tq * 131 + Tk));
  const Tensor q = Tensor::randn({B, H, Tq, d}, rng), k = Tensor::randn({B, H, Tk, d}, rng);
  const Tensor v = Tensor::randn({B, H, Tk, d}, rng), dout = Tensor::randn({B, H, Tq, d}, rng);
  const auto dense = attend_with_positions(q, k, v, dout, R, prefix, false, dense_logits, band_logits);
  const auto band = attend_with_positions(q, k, v, dout, R, prefix, true, dense_logits, band_logits);
  const char* names[] = {"o", "dq", "dk", "dv", "dR"};
  for (size_t i = 0; i < dense.size(); ++i)
    BOOST_TEST(max_abs_diff(dense[i], band[i]) <= 2e-5 * std::max(1.0, max_abs(dense[i])),
               what << ": " << names[i] << " differs by " << max_abs_diff(dense[i], band[i]));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(positional)

BOOST_AUTO_TEST_CASE(output_shapes_and_errors) {
  Init init(1);
  Tape t;
  Rotary rope(init, 8);
  auto [q, k] = rope(t.constant(Tensor::zeros({2, 4, 3, 16})), t.constant(Tensor::zeros({2, 1, 5, 16})));
  BOOST_TEST(q.shape() == Shape({2, 4, 3, 16}));
  BOOST_TEST(k.shape() == Shape({2, 1, 5, 16}));
  BOOST_CHECK_THROW(Rotary(init, 5), Error);  // odd rot_dim
  BOOST_CHECK_THROW(rope(t.constant(Tensor::zeros({2, 4, 3, 6})), t.constant(Tensor::zeros({2, 1, 5, 6}))), Error);
  const std::vector<int64_t> two{0, 1};
  BOOST_CHECK_THROW(rope(q, k, two, range(0, 5)), Error);  // 3 queries, 2 positions

  RelativePositionTable rel(init, 4, 10, 16);
  BOOST_TEST(rel(q, 8, 0.25, 2).shape() == Shape({2, 4, 3, 8}));
  BOOST_CHECK_THROW(rel(q, 4, 0.25, 2), Error);  // fewer keys than slots + queries
  BOOST_CHECK_THROW(RelativePositionTable(init, 4, 10, 16, true), Error);  // parity needs seq_len
  BOOST_CHECK_THROW(add_position_logits(t.constant(Tensor::zeros({2, 4, 3, 7})), rel(q, 8, 0.25)), Error);

  DynamicPositionBias dpb(init, 8, 4);
  BOOST_TEST(dpb(t, 3, 7).shape() == Shape({4, 3, 7}));
  T5RelativeBias t5(init, 4);
  BOOST_TEST(t5(t, 3, 7).shape() == Shape({4, 3, 7}));
  BOOST_TEST(token_shift(t.constant(Tensor::zeros({2, 7, 5})), 2, 1).shape() == Shape({2, 7, 5}));
  BOOST_CHECK_THROW(token_shift(t.constant(Tensor::zeros({2, 7, 5})), 5, 3), Error);
}

BOOST_AUTO_TEST_CASE(rotary_matches_a_hand_loop) {
  Init init(1, DType::f64);
  Rng rng(3);
  Tape t;
  const int64_t T = 3, d = 6, r = 4;
  const double theta = 100;
  const Tensor x = Tensor::randn({1, 1, T, d}, rng, DType::f64);
  const std::vector<int64_t> pos{2, 5, 11};
  Rotary rope(init, r, theta);
  const Tensor y = rope.rotate(t.constant(x), pos).value();
  for (int64_t ti = 0; ti < T; ++ti) {
    for (int64_t j = 0; j < d; ++j) {
      double want = x.at({0, 0, ti, j});  // features past rot_dim pass through
      if (j < r) {
        const int64_t i = j % (r / 2);
        const double a = double(pos[size_t(ti)]) * std::pow(theta, -2.0 * double(i) / double(r));
        const double rot = j < r / 2 ? -x.at({0, 0, ti, j + r / 2}) : x.at({0, 0, ti, j - r / 2});
        want = x.at({0, 0, ti, j}) * std::cos(a) + rot * std::sin(a);
      }
      BOOST_TEST(std::abs(y.at({0, 0, ti, j}) - want) < 1e-12);
    }
  }
}

BOOST_AUTO_TEST_CASE(rotary_logits_depend_only_on_offsets) {
  Init init(1, DType::f64);
  Rng rng(4);
  Tape t;
  Var q = t.constant(Tensor::randn({2, 3, 4, 8}, rng, DType::f64));
  Var k = t.constant(Tensor::randn({2, 1, 6, 8}, rng, DType::f64));
  for (bool xpos : {false, true}) {
    Rotary rope(init, 8, 10000, xpos, 16, 12);  // a small scale base so xPos matters
    auto [q0, k0] = rope(q, k, range(2, 4), range(0, 6));
    auto [q1, k1] = rope(q, k, range(2 + 37, 4), range(37, 6));
    BOOST_TEST(max_abs_diff(logits(q0, k0), logits(q1, k1)) < 1e-10);
    // ... while other alignments do change them
    auto [q2, k2] = rope(q, k, range(3, 4), range(0, 6));
    BOOST_TEST(max_abs_diff(logits(q0, k0), logits(q2, k2)) > 1e-3);
  }
}

BOOST_AUTO_TEST_CASE(xpos_scales_queries_by_zeta_pow_p_and_keys_by_its_inverse) {
  Init init(1, DType::f64);
  Rng rng(5);
  Tape t;
  const int64_t r = 8, width = 20;
  const double base = 4;
  Rotary plain(init, r), xpos(init, r, 10000, true, base, width);
  const Tensor x = Tensor::randn({1, 1, 3, r}, rng, DType::f64);
  const std::vector<int64_t> pos{0, 10, 17};  // below, at and above the centre Wr//2 = 10
  for (bool key : {false, true}) {
    const Tensor y0 = plain.rotate(t.constant(x), pos, key).value();
    const Tensor y = xpos.rotate(t.constant(x), pos, key).value();
    for (int64_t ti = 0; ti < 3; ++ti)
      for (int64_t i = 0; i < r / 2; ++i) {
        const double zeta = (2.0 * double(i) + 0.4 * r) / (1.4 * r);
        const double p = double(pos[size_t(ti)] - width / 2) / base;
        const double want = std::pow(zeta, key ? -p : p);
        for (int64_t j : {i, i + r / 2})
          BOOST_TEST(std::abs(y.at({0, 0, ti, j}) - want * y0.at({0, 0, ti, j})) < 1e-12);
        if (ti == 2 && i == 0) BOOST_TEST((key ? want > 1.0 : want < 1.0));  // zeta < 1: past the centre
      }
  }
  // without xPos the rotation keeps each (i, i + r/2) pair's norm
  const Tensor y0 = plain.rotate(t.constant(x), pos).value();
  for (int64_t i = 0; i < r / 2; ++i) {
    const double a = std::hypot(x.at({0, 0, 2, i}), x.at({0, 0, 2, i + r / 2}));
    BOOST_TEST(std::abs(std::hypot(y0.at({0, 0, 2, i}), y0.at({0, 0, 2, i + r / 2})) - a) < 1e-12);
  }
}

// The tables are remembered per position: a second call, a copy, a changed field and the
// query/key signs of xPos must all give what a fresh module computes.
BOOST_AUTO_TEST_CASE(rotary_tables_remembered_per_position_stay_exact) {
  Init init(1, DType::f64);
  const std::vector<int64_t> pos{3, 0, 7, 3, -2};
  Rotary rope(init, 8, 10000, true, 4, 6);
  const auto same = [](const std::pair<Tensor, Tensor>& a, const std::pair<Tensor, Tensor>& b) {
    for (int64_t i = 0; i < a.first.numel(); ++i)
      if (a.first.data<double>()[i] != b.first.data<double>()[i] || a.second.data<double>()[i] != b.second.data<double>()[i])
        return false;
    return a.first.shape() == b.first.shape();
  };
  for (int sign : {1, -1, 0}) {
    const auto first = rope.tables(pos, DType::f64, sign);
    BOOST_TEST(same(rope.tables(pos, DType::f64, sign), first));
    BOOST_TEST(same(Rotary(rope).tables(pos, DType::f64, sign), first));
    BOOST_TEST(first.first.at({0, 1}) == first.first.at({3, 1}));  // position 3 twice
  }
  BOOST_TEST(!same(rope.tables(pos, DType::f64, 1), rope.tables(pos, DType::f64, -1)));  // xPos: q and k differ
  Rotary copy = rope;  // shares the remembered rows
  copy.theta = 100;
  Rotary fresh(init, 8, 100, true, 4, 6);
  BOOST_TEST(same(copy.tables(pos, DType::f64, 1), fresh.tables(pos, DType::f64, 1)));
  BOOST_TEST(same(rope.tables(pos, DType::f64, 1), Rotary(init, 8, 10000, true, 4, 6).tables(pos, DType::f64, 1)));
}

BOOST_AUTO_TEST_CASE(relative_table_is_translation_consistent_by_default) {
  Init init(1, DType::f64);
  Rng rng(6);
  Tape t;
  const int64_t H = 2, P = 12, d = 4, Tq = 3;
  RelativePositionTable rel(init, H, P, d);
  rel.weight.value = Tensor::uniform({H, P, d}, rng, -1, 1, DType::f64);
  Var q = t.constant(Tensor::randn({1, H, Tq, d}, rng, DType::f64));
  const double scale = 0.5;
  for (int64_t M : {0, 2, 5}) {
    const Tensor b = rel(q, 1 + M + Tq, scale, 1).value();  // one persistent slot in front
    for (int64_t h = 0; h < H; ++h)
      for (int64_t r = 0; r < Tq; ++r) {
        BOOST_TEST(b.at({0, h, r, 0}) == 0.0);  // persistent slot: no positional logit
        for (int64_t c = 0; c < M + Tq; ++c) {
          const int64_t dist = M + r - c;
          double want = 0;  // future keys
          if (dist >= 0)
            for (int64_t e = 0; e < d; ++e)
              want += scale * q.value().at({0, h, r, e}) * rel.weight.value.at({h, P - 1 - dist, e});
          BOOST_TEST(std::abs(b.at({0, h, r, 1 + c}) - want) < 1e-12);
        }
      }
  }
  // distances past the table contribute nothing
  const Tensor far = rel(q, P + 4, scale).value();
  BOOST_TEST(far.at({0, 0, 0, 0}) == 0.0);  // query 0 at key position P + 1: distance P + 1
  BOOST_TEST(far.at({0, 0, 0, 2}) != 0.0);  // distance P - 1: row 0
  BOOST_TEST(rel.row(P - 1, 100) == 0);
  BOOST_TEST(rel.row(P, 0) == -1);
}

BOOST_AUTO_TEST_CASE(relative_table_parity_drifts_with_memory_length) {
  Init init(1, DType::f64);
  Rng rng(7);
  Tape t;
  const int64_t H = 1, P = 12, d = 3, T = 4;
  RelativePositionTable rel(init, H, P, d, true, T);
  rel.weight.value = Tensor::uniform({H, P, d}, rng, -1, 1, DType::f64);
  // By hand: M = 2 memories, T = 4: total_len = 6; query r = 1 sees key c = 0 at distance
  // M + r - c = 3, so it reads row 6 - 1 - 3 = 2.
  BOOST_TEST(rel.row(3, 2) == 2);
  BOOST_TEST(rel.row(3, 5) == 5);  // the same distance with 5 memories: row 5
  Var q = t.constant(Tensor::randn({1, H, T, d}, rng, DType::f64));
  const Tensor b2 = rel(q, 2 + T, 1.0).value(), b5 = rel(q, 5 + T, 1.0).value();
  double want2 = 0, want5 = 0;
  for (int64_t e = 0; e < d; ++e) {
    want2 += q.value().at({0, 0, 1, e}) * rel.weight.value.at({0, 2, e});
    want5 += q.value().at({0, 0, 1, e}) * rel.weight.value.at({0, 5, e});
  }
  BOOST_TEST(std::abs(b2.at({0, 0, 1, 0}) - want2) < 1e-12);  // key 0 of 2 + T
  BOOST_TEST(std::abs(b5.at({0, 0, 1, 3}) - want5) < 1e-12);  // key 3 of 5 + T: distance 3 too
  BOOST_TEST(std::abs(want2 - want5) > 1e-6);
  // a short segment (n = 3 < T) keeps total_len = M + T, so its rows shift too
  Var q3 = t.constant(Tensor::randn({1, H, 3, d}, rng, DType::f64));
  double want = 0;  // M = 2, r = 0, c = 0: distance 2, row 6 - 1 - 2 = 3
  for (int64_t e = 0; e < d; ++e) want += q3.value().at({0, 0, 0, e}) * rel.weight.value.at({0, 3, e});
  BOOST_TEST(std::abs(rel(q3, 5, 1.0).value().at({0, 0, 0, 0}) - want) < 1e-12);
  BOOST_CHECK_THROW(rel(q, 9 + T, 1.0), Error);  // 9 memories + T overflow the table
}

BOOST_AUTO_TEST_CASE(t5_buckets_by_hand) {
  // num_buckets 32, max_distance 128: exact below 16, then 16 + floor(16 log(n/16) / log 8)
  const std::vector<std::pair<int64_t, int64_t>> want{{-3, 0},  {0, 0},    {5, 5},     {15, 15},   {16, 16},
                                                      {20, 17}, {32, 21},  {64, 26},   {100, 30},  {127, 31},
                                                      {128, 31}, {1000, 31}};
  for (auto [dist, b] : want) BOOST_TEST(T5RelativeBias::bucket(dist, 32, 128) == b, "distance " << dist);
  Init init(2);
  Tape t;
  T5RelativeBias t5(init, 3);
  const Tensor b = t5(t, 2, 40).value();  // query 1 sits at key 39
  for (int64_t h = 0; h < 3; ++h) {
    BOOST_TEST(b.at({h, 1, 39 - 20}) == t5.weight.value.at({17, h}));
    BOOST_TEST(b.at({h, 0, 38 - 5}) == t5.weight.value.at({5, h}));
    BOOST_TEST(b.at({h, 0, 39}) == t5.weight.value.at({0, h}));  // a future key
  }
}

BOOST_AUTO_TEST_CASE(token_shift_by_hand) {
  Tape t;
  // (1, T = 5, D = 3): rows 0 and 4 are memory slots; h = ceil(3/2) = 2 unshifted features
  std::vector<double> v(15);
  std::iota(v.begin(), v.end(), 1.0);
  const Tensor y = token_shift(t.constant(Tensor::from({1, 5, 3}, v)), 1, 1).value();
  const std::vector<double> want{1, 2, 3,    // memory: untouched
                                 4, 5, 0,    // first main token: zeros shifted in
                                 7, 8, 6,    // feature 2 from the row before
                                 10, 11, 9,  //
                                 13, 14, 15};  // memory: untouched
  BOOST_TEST(y.to_vector() == want, boost::test_tools::per_element());
  const Tensor plain = token_shift(t.constant(Tensor::from({1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8}))).value();
  BOOST_TEST(plain.to_vector() == std::vector<double>({1, 2, 0, 0, 5, 6, 3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(dynamic_position_bias_is_symmetric_in_distance) {
  Init init(3, DType::f64);
  Tape t;
  DynamicPositionBias dpb(init, 8, 2);
  const Tensor b = dpb(t, 5, 5, 0).value();  // distance i - j, both signs
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < 5; ++j) {
        BOOST_TEST(b.at({h, i, j}) == b.at({h, j, i}));
        BOOST_TEST(b.at({h, i, j}) == b.at({h, std::abs(i - j), 0}));
      }
  BOOST_TEST(b.at({0, 0, 1}) != b.at({0, 0, 2}));
  const Tensor aligned = dpb(t, 2, 5).value();  // offset Tk - Tq = 3: query 1 sits at key 4
  BOOST_TEST(aligned.at({1, 1, 4}) == b.at({1, 0, 0}));
  BOOST_TEST(aligned.at({1, 1, 1}) == b.at({1, 3, 0}));
}

// The fused attention's shifted-index bias against the (B, H, Tq, Tk) gather it replaces, for
// both rules of the table, memories from none to many, Tq across two of the kernel's 64-row
// tiles: outputs and the gradients of q, k, v and R.
BOOST_AUTO_TEST_CASE(relative_band_equals_gather_path) {
  Init init(3);
  Rng rng(8);
  const int64_t H = 2, d = 8, Tq = 70, P = 200;
  for (const bool parity : {false, true}) {
    RelativePositionTable rel(init, H, P, d, parity, parity ? Tq + 5 : 0);
    rel.weight.value = Tensor::uniform({H, P, d}, rng, -1, 1);
    const int64_t unpositioned = parity ? 0 : 1;
    for (const int64_t M : {int64_t(0), int64_t(37), int64_t(100)}) {
      const int64_t Tk = unpositioned + M + Tq;
      auto dense = [&](Var q) { return rel(q, Tk, 0.35, unpositioned); };
      auto band = [&](Var q) {
        BandBias b = rel.band(q, Tk, 0.35, unpositioned);
        BOOST_TEST(b.band.dim(3) <= Tk, "the table's rows are a band, not the fallback");
        return b;
      };
      const std::string what = std::string(parity ? "parity" : "default") + ", " + std::to_string(M) + " memories";
      check_band_equals_gather(what.c_str(), 2, H, Tq, Tk, d, unpositioned + M, rel.weight, dense, band);
    }
  }
}

// Rows of no band form take the wide fallback and still equal the gather.
BOOST_AUTO_TEST_CASE(relative_band_fallback_for_any_rows) {
  Init init(4);
  Rng rng(9);
  const int64_t H = 2, d = 4, Tq = 9, Tk = 13, P = 20;
  RelativePositionTable rel(init, H, P, d);
  rel.weight.value = Tensor::uniform({H, P, d}, rng, -1, 1);
  std::vector<int64_t> rows(size_t(Tq * Tk));
  for (auto& w : rows) w = int64_t(rng.randint(P + 5)) - 5;  // holes and rows in any order
  auto dense = [&](Var q) { return gather_row_logits(q.tape().param(rel.weight), q, Tk, rows, 0.5); };
  auto band = [&](Var q) {
    BandBias b = band_row_logits(q.tape().param(rel.weight), q, Tk, rows, 0.5);
    BOOST_TEST(b.band.dim(3) == Tq + Tk - 1);
    return b;
  };
  check_band_equals_gather("random rows", 2, H, Tq, Tk, d, 2, rel.weight, dense, band);
  // and the band expands to exactly the gathered logits
  Tape t;
  Var q = t.constant(Tensor::randn({1, H, Tq, d}, rng));
  BOOST_TEST(max_abs_diff(band_to_dense(band(q), Tk).value(), dense(q).value()) == 0.0);
}

BOOST_AUTO_TEST_SUITE_END()
