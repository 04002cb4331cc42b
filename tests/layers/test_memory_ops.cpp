// Memory plumbing: FIFO push (order, empty memory, gradients), the compressor's padding
// rules, and the MemXL writer's linear attention against a naive loop (both head merges).
#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "layers/compressor.h"
#include "layers/linear_attention.h"
#include "layers/memory_ops.h"

using namespace mnemo;
using namespace mnemo::nn;

namespace {

// (B, T, D) with x[b, t, d] = 100 b + first + t: the value names the time step.
Tensor timeline(int64_t B, int64_t T, int64_t D, double first) {
  std::vector<double> v;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d) v.push_back(100.0 * double(b) + first + double(t));
  return Tensor::from({B, T, D}, v, DType::f64);
}

// The time steps a (B, T, D) timeline holds for batch b.
std::vector<double> steps(const Tensor& x, int64_t b) {
  std::vector<double> s;
  for (int64_t t = 0; t < x.dim(1); ++t) s.push_back(x.at({b, t, 0}) - 100.0 * double(b));
  return s;
}

Tensor compress(const Compressor& c, const std::vector<double>& xs) {
  Tape t;
  return c(t.constant(Tensor::from({1, int64_t(xs.size()), 1}, xs, DType::f64))).value();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(memory_ops)

BOOST_AUTO_TEST_CASE(fifo_evicts_oldest_keeps_newest) {
  Tape t;
  FifoResult r = fifo_push(t.constant(timeline(2, 3, 2, 0)), t.constant(timeline(2, 2, 2, 3)), 4);
  BOOST_TEST(r.kept.shape() == Shape({2, 4, 2}));
  BOOST_TEST(r.evicted.shape() == Shape({2, 1, 2}));
  BOOST_TEST(steps(r.kept.value(), 1) == std::vector<double>({1, 2, 3, 4}), boost::test_tools::per_element());
  BOOST_TEST(steps(r.evicted.value(), 1) == std::vector<double>({0}), boost::test_tools::per_element());

  // Incoming longer than the whole memory: the oldest incoming steps are evicted too.
  FifoResult big = fifo_push(t.constant(timeline(1, 2, 1, 0)), t.constant(timeline(1, 5, 1, 2)), 3);
  BOOST_TEST(steps(big.kept.value(), 0) == std::vector<double>({4, 5, 6}), boost::test_tools::per_element());
  BOOST_TEST(steps(big.evicted.value(), 0) == std::vector<double>({0, 1, 2, 3}), boost::test_tools::per_element());

  FifoTensors tr = fifo_push(timeline(2, 3, 2, 0), timeline(2, 2, 2, 3), 4);
  BOOST_TEST(tr.kept.to_vector() == r.kept.value().to_vector());
  BOOST_TEST(tr.evicted.to_vector() == r.evicted.value().to_vector());
  BOOST_CHECK_THROW(fifo_push(t.constant(timeline(2, 3, 3, 0)), t.constant(timeline(2, 2, 2, 3)), 4), Error);
  BOOST_CHECK_THROW(fifo_push(t.constant(timeline(1, 3, 2, 0)), t.constant(timeline(2, 2, 2, 3)), 4), Error);
}

BOOST_AUTO_TEST_CASE(fifo_empty_memory_and_no_eviction) {
  Tape t;
  for (Var mem : {t.constant(Tensor::zeros({2, 0, 2}, DType::f64)), Var{}}) {
    FifoResult r = fifo_push(mem, t.constant(timeline(2, 2, 2, 0)), 4);
    BOOST_TEST(r.kept.shape() == Shape({2, 2, 2}));
    BOOST_TEST(r.evicted.shape() == Shape({2, 0, 2}));
    BOOST_TEST(steps(r.kept.value(), 1) == std::vector<double>({0, 1}), boost::test_tools::per_element());
    FifoResult over = fifo_push(mem, t.constant(timeline(2, 5, 2, 0)), 4);
    BOOST_TEST(steps(over.evicted.value(), 0) == std::vector<double>({0}), boost::test_tools::per_element());
  }
  FifoResult fits = fifo_push(t.constant(timeline(1, 1, 3, 0)), t.constant(timeline(1, 2, 3, 1)), 4);
  BOOST_TEST(fits.kept.shape() == Shape({1, 3, 3}));
  BOOST_TEST(fits.evicted.shape() == Shape({1, 0, 3}));
  FifoResult none = fifo_push(t.constant(timeline(1, 2, 3, 0)), t.constant(timeline(1, 2, 3, 2)), 0);
  BOOST_TEST(none.kept.shape() == Shape({1, 0, 3}));
  BOOST_TEST(none.evicted.shape() == Shape({1, 4, 3}));

  FifoTensors tr = fifo_push(Tensor{}, timeline(1, 3, 2, 0), 2);
  BOOST_TEST(steps(tr.kept, 0) == std::vector<double>({1, 2}), boost::test_tools::per_element());
  BOOST_TEST(steps(tr.evicted, 0) == std::vector<double>({0}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(fifo_gradient_reaches_both_inputs) {
  Tape t;
  Var mem = t.input(timeline(1, 3, 2, 0)), inc = t.input(timeline(1, 2, 2, 3));
  FifoResult r = fifo_push(mem, inc, 4);  // evicts step 0
  t.backward(sum(r.kept) + sum(r.evicted) * 2.0);
  BOOST_TEST(t.grad(mem).to_vector() == std::vector<double>({2, 2, 1, 1, 1, 1}), boost::test_tools::per_element());
  BOOST_TEST(t.grad(inc).to_vector() == std::vector<double>({1, 1, 1, 1}), boost::test_tools::per_element());
}

// One channel, ratio 4, weight [1, 10, 100, 1000]: each output names the four steps it saw.
BOOST_AUTO_TEST_CASE(compressor_padding_rules) {
  Init init(1, DType::f64);
  Compressor c(init, 1, 4);
  c.weight.value.copy_from(Tensor::from({1, 1, 4}, {1, 10, 100, 1000}, DType::f64));
  c.bias.value.fill_(0.0);
  const std::vector<double> five{1, 2, 3, 4, 5}, seven{1, 2, 3, 4, 5, 6, 7};
  // Intended: 3 zeros in front, [0 0 0 1][2 3 4 5]: the newest step 5 is compressed.
  BOOST_TEST(compress(c, five).to_vector() == std::vector<double>({1000, 5432}), boost::test_tools::per_element());
  // [0 1 2 3][4 5 6 7]
  BOOST_TEST(compress(c, seven).to_vector() == std::vector<double>({3210, 7654}), boost::test_tools::per_element());
  BOOST_TEST(c.out_len(5) == 2);
  // CT P3: pads 5 mod 4 = 1 zero, [0 1 2 3] and the newest 4, 5 fall off the stride.
  c.reference_parity = true;
  BOOST_TEST(compress(c, five).to_vector() == std::vector<double>({3210}), boost::test_tools::per_element());
  // 7 mod 4 = 3 zeros: [0 0 0 1][2 3 4 5], 6 and 7 dropped.
  BOOST_TEST(compress(c, seven).to_vector() == std::vector<double>({1000, 5432}), boost::test_tools::per_element());
  BOOST_TEST(c.out_len(5) == 1);
  c.reference_parity = false;
  c.drop_remainder = true;  // BRT: the oldest step goes, [2 3 4 5]
  BOOST_TEST(compress(c, five).to_vector() == std::vector<double>({5432}), boost::test_tools::per_element());
  c.drop_remainder = false;
  // Divisible lengths agree in every mode; empty input gives an empty output.
  const std::vector<double> eight{1, 2, 3, 4, 5, 6, 7, 8};
  for (bool parity : {false, true}) {
    c.reference_parity = parity;
    BOOST_TEST(compress(c, eight).to_vector() == std::vector<double>({4321, 8765}), boost::test_tools::per_element());
    BOOST_TEST(compress(c, {}).shape() == Shape({1, 0, 1}));
  }
  Tape t;
  BOOST_CHECK_THROW(c(t.constant(Tensor::zeros({1, 4, 2}, DType::f64))), Error);
}

BOOST_AUTO_TEST_CASE(compressor_groups_and_init) {
  Init init(2);
  Compressor c(init, 64, 4, 2);
  BOOST_TEST(c.weight.value.shape() == Shape({64, 32, 4}));
  const double bound = 1.0 / std::sqrt(32.0 * 4);  // in_ch / groups * kernel
  double top = 0;
  for (double w : c.weight.value.to_vector()) top = std::max(top, std::abs(w));
  for (double b : c.bias.value.to_vector()) BOOST_TEST(std::abs(b) <= bound);
  BOOST_TEST(top <= bound);
  BOOST_TEST(top > 0.98 * bound);
  std::vector<std::string> names;
  for (auto& [n, p] : named_params(c)) names.push_back(n);
  BOOST_TEST(names == std::vector<std::string>({"weight", "bias"}), boost::test_tools::per_element());

  // Groups keep channels apart: zero the second half of the input, the second half of
  // the output is just the bias.
  Init i2(3, DType::f64);
  Compressor g(i2, 4, 2, 2);
  std::vector<double> xs;
  for (int t = 0; t < 6; ++t)
    for (int ch = 0; ch < 4; ++ch) xs.push_back(ch < 2 ? 0.3 * t - 0.2 * ch : 0.0);
  Tape t;
  const Tensor y = g(t.constant(Tensor::from({1, 6, 4}, xs, DType::f64))).value();
  BOOST_TEST(y.shape() == Shape({1, 3, 4}));
  for (int64_t s = 0; s < 3; ++s)
    for (int64_t ch = 2; ch < 4; ++ch) BOOST_TEST(y.at({0, s, ch}) == g.bias.value.at({ch}));
}

// The writer's attention, by loops over (b, head, slot, feature).
BOOST_AUTO_TEST_CASE(linear_attention_matches_naive_loop) {
  const int64_t B = 2, S = 3, N = 2, D = 4, H = 2, d = 2, L = S + N;
  Init init(7, DType::f64);
  Rng rng(11);
  const Tensor x = Tensor::randn({B, S, D}, rng, DType::f64), c = Tensor::randn({B, N, D}, rng, DType::f64);
  LinearSelfAttention att(init, D, H), par(init, D, H, true);
  par.wq.value.copy_from(att.wq.value);
  par.wkv.value.copy_from(att.wkv.value);
  par.wout.value.copy_from(att.wout.value);
  Tape t;
  const Tensor y = att(t.constant(x), t.constant(c)).value(), yp = par(t.constant(x), t.constant(c)).value();
  BOOST_TEST(y.shape() == Shape({B, S, D}));

  auto W = [](const Param& p, int64_t i, int64_t j) { return p.value.at({i, j}); };
  for (int64_t b = 0; b < B; ++b) {
    double in[L][D], q[S][D], k[L][D], v[L][D], o[H][S][d];
    for (int64_t s = 0; s < S; ++s) {
      double m = 0, var = 0;
      for (int64_t i = 0; i < D; ++i) m += x.at({b, s, i}) / D;
      for (int64_t i = 0; i < D; ++i) var += (x.at({b, s, i}) - m) * (x.at({b, s, i}) - m) / D;
      for (int64_t i = 0; i < D; ++i) in[s][i] = (x.at({b, s, i}) - m) / std::sqrt(var + 1e-5);
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < D; ++i) in[S + n][i] = c.at({b, n, i});  // context is not normalised
    for (int64_t l = 0; l < L; ++l)
      for (int64_t j = 0; j < D; ++j) {
        k[l][j] = v[l][j] = 0;
        if (l < S) q[l][j] = 0;
        for (int64_t i = 0; i < D; ++i) {
          if (l < S) q[l][j] += in[l][i] * W(att.wq, i, j);
          k[l][j] += in[l][i] * W(att.wkv, i, j);
          v[l][j] += in[l][i] * W(att.wkv, i, D + j);
        }
      }
    for (int64_t h = 0; h < H; ++h) {
      double qs[S][d], ks[L][d], ctx[d][d] = {};
      for (int64_t s = 0; s < S; ++s) {  // softmax over the head's features
        double z = 0;
        for (int64_t e = 0; e < d; ++e) z += std::exp(q[s][h * d + e]);
        for (int64_t e = 0; e < d; ++e) qs[s][e] = std::exp(q[s][h * d + e]) / z;
      }
      for (int64_t e = 0; e < d; ++e) {  // softmax over the sequence
        double z = 0;
        for (int64_t l = 0; l < L; ++l) z += std::exp(k[l][h * d + e]);
        for (int64_t l = 0; l < L; ++l) ks[l][e] = std::exp(k[l][h * d + e]) / z;
      }
      for (int64_t e = 0; e < d; ++e)
        for (int64_t f = 0; f < d; ++f)
          for (int64_t l = 0; l < L; ++l) ctx[e][f] += ks[l][e] * v[l][h * d + f];
      for (int64_t s = 0; s < S; ++s)
        for (int64_t f = 0; f < d; ++f) {
          o[h][s][f] = 0;
          for (int64_t e = 0; e < d; ++e) o[h][s][f] += qs[s][e] * ctx[e][f];
        }
    }
    for (bool parity : {false, true}) {
      double merged[S][D];
      for (int64_t r = 0; r < S; ++r)
        for (int64_t col = 0; col < D; ++col) {
          if (!parity) {
            merged[r][col] = o[col / d][r][col % d];
          } else {  // the reference's transpose(2, 3).reshape_as(x): (H, d, S) read as (S, D)
            const int64_t f = r * D + col;
            merged[r][col] = o[f / (d * S)][f % S][(f / S) % d];
          }
        }
      const Tensor& got = parity ? yp : y;
      for (int64_t r = 0; r < S; ++r)
        for (int64_t j = 0; j < D; ++j) {
          double want = 0;
          for (int64_t i = 0; i < D; ++i) want += merged[r][i] * W(att.wout, i, j);
          BOOST_TEST(std::abs(got.at({b, r, j}) - want) < 1e-12);
        }
    }
  }
  BOOST_TEST(std::abs(y.at({0, 0, 0}) - yp.at({0, 0, 0})) + std::abs(y.at({1, 2, 3}) - yp.at({1, 2, 3})) > 1e-6);
}

BOOST_AUTO_TEST_CASE(linear_attention_shapes_names_init) {
  Init init(8);
  LinearSelfAttention att(init, 16);
  BOOST_TEST(att.heads == 4);
  std::vector<std::string> names;
  for (auto& [n, p] : named_params(att)) names.push_back(n);
  BOOST_TEST(names == std::vector<std::string>({"to_q", "to_kv", "to_out"}), boost::test_tools::per_element());
  BOOST_TEST(att.wkv.value.shape() == Shape({16, 32}));
  for (double w : att.wkv.value.to_vector()) BOOST_TEST(std::abs(w) <= 0.25);
  Tape t;
  Var x = t.constant(Tensor::randn({2, 5, 16}, init.rng()));
  // No context is the same as an empty one.
  const auto a = att(x).value().to_vector(), b = att(x, t.constant(Tensor::zeros({2, 0, 16}))).value().to_vector();
  BOOST_TEST(a == b);
  BOOST_CHECK_THROW(att(x, t.constant(Tensor::zeros({2, 3, 8}))), Error);
  BOOST_CHECK_THROW(LinearSelfAttention(init, 10, 4), Error);
}

BOOST_AUTO_TEST_SUITE_END()
