// Gates and residual wrappers (SPEC 0.5-0.6): GRU, nBRC, Mogrifier, EMA gate, hyper-connections.
// Values against hand-computed cases and scalar-loop oracles; names and init statistics.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "layers/ema_gate.h"
#include "layers/gru_gate.h"
#include "layers/hyper_connections.h"
#include "layers/nbrc_gate.h"

using namespace mnemo;
using namespace mnemo::nn;

namespace {

double sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }

Tensor f64(const Shape& s, const std::vector<double>& v) { return Tensor::from(s, v, DType::f64); }

Tensor rand64(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  return Tensor::uniform(s, rng, -1.0, 1.0, DType::f64);
}

std::vector<std::string> names_of(Module& m) {
  std::vector<std::string> out;
  for (auto& [n, p] : named_params(m)) out.push_back(n);
  return out;
}

void check_close(const Tensor& got, const std::vector<double>& want, double tol = 1e-12) {
  const std::vector<double> g = got.to_vector();
  BOOST_REQUIRE_EQUAL(g.size(), want.size());
  for (size_t i = 0; i < g.size(); ++i)
    BOOST_TEST(std::abs(g[i] - want[i]) <= tol, "at " << i << ": " << g[i] << " vs " << want[i]);
}

// W (R, C) row-major times v (C) plus b (R).
std::vector<double> affine_rows(const Tensor& W, const Tensor* b, const double* v) {
  const int64_t R = W.dim(0), C = W.dim(1);
  std::vector<double> out(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    double acc = b ? b->at({r}) : 0.0;
    for (int64_t c = 0; c < C; ++c) acc += W.at({r, c}) * v[c];
    out[size_t(r)] = acc;
  }
  return out;
}

// PyTorch's GRUCell, one row at a time.
std::vector<double> gru_oracle(const GRUCell& g, const Tensor& input, const Tensor& hidden) {
  const int64_t D = g.dim, rows = input.numel() / D;
  const std::vector<double> in = input.to_vector(), h = hidden.to_vector();
  std::vector<double> out(in.size());
  for (int64_t row = 0; row < rows; ++row) {
    const double* y = in.data() + row * D;
    const double* x = h.data() + row * D;
    const auto gi = affine_rows(g.weight_ih.value, &g.bias_ih.value, y);
    const auto gh = affine_rows(g.weight_hh.value, &g.bias_hh.value, x);
    for (int64_t k = 0; k < D; ++k) {
      const double r = sig(gi[k] + gh[k]), z = sig(gi[D + k] + gh[D + k]);
      const double n = std::tanh(gi[2 * D + k] + r * gh[2 * D + k]);
      out[size_t(row * D + k)] = (1 - z) * n + z * x[k];
    }
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(gates)

BOOST_AUTO_TEST_CASE(output_shapes_and_shape_errors) {
  Init init(3, DType::f64);
  Tape t;
  Var x = t.constant(rand64({2, 5, 8}, 1)), y = t.constant(rand64({2, 5, 8}, 2));
  Var bad = t.constant(rand64({2, 5, 4}, 3));
  GRUGate gru(init, 8, {.mogrify = true});
  NBRCGate nbrc(init, 8, {.mogrify = true});
  Mogrifier mog(init, 8);
  EMAGate ema(init, 8);
  BOOST_TEST(gru(x, y).shape() == Shape({2, 5, 8}));
  BOOST_TEST(nbrc(x, y).shape() == Shape({2, 5, 8}));
  BOOST_TEST(nbrc.gru(y, x).shape() == Shape({2, 5, 8}));
  BOOST_TEST(mog(x, y).x.shape() == Shape({2, 5, 8}));
  BOOST_TEST(ema(x, y).shape() == Shape({2, 5, 8}));
  BOOST_CHECK_THROW(gru(x, bad), Error);
  BOOST_CHECK_THROW(gru(bad, bad), Error);
  BOOST_CHECK_THROW(nbrc(bad, bad), Error);
  BOOST_CHECK_THROW(mog(x, bad), Error);
  BOOST_CHECK_THROW(ema(x, bad), Error);
  BOOST_CHECK_THROW(Mogrifier(init, 3), Error);  // rank D/4 = 0

  HyperConnections hc(init, 8, 4, 0);
  Var H = expand_streams(x, 4);
  BOOST_TEST(H.shape() == Shape({2, 5, 4, 8}));
  const HyperConnections::Width w = hc.width(H);
  BOOST_TEST(w.branch_input.shape() == Shape({2, 5, 8}));
  BOOST_TEST(hc.depth(w, y).shape() == Shape({2, 5, 4, 8}));
  BOOST_TEST(reduce_streams(H, 4).shape() == Shape({2, 5, 8}));
  BOOST_CHECK_THROW(hc.width(x.tape().constant(rand64({2, 5, 3, 8}, 4))), Error);  // 3 streams, not 4
  BOOST_CHECK_THROW(hc.depth(w, bad), Error);
  BOOST_CHECK_THROW(reduce_streams(x, 4), Error);
}

BOOST_AUTO_TEST_CASE(gru_cell_hand_computed) {
  // All weights zero, so each gate is its bias: r = σ(0) = 1/2, z = σ(log 3) = 3/4, and
  // n = tanh(0.2 + r · 2 (atanh(1/2) - 0.2)) = 1/2 only if r scales the hidden part alone.
  Init init(1, DType::f64);
  GRUGate g(init, 2);
  g.gru.weight_ih.value = Tensor::zeros({6, 2}, DType::f64);
  g.gru.weight_hh.value = Tensor::zeros({6, 2}, DType::f64);
  const double bn = 2 * (std::atanh(0.5) - 0.2);
  g.gru.bias_ih.value = f64({6}, {0, 0, 0, 0, 0.2, 0.2});
  g.gru.bias_hh.value = f64({6}, {0, 0, std::log(3.0), std::log(3.0), bn, bn});
  Tape t;
  Var x = t.constant(f64({1, 2}, {2, -4})), y = t.constant(f64({1, 2}, {7, 9}));
  check_close(g(x, y).value(), {0.25 * 0.5 + 0.75 * 2, 0.25 * 0.5 - 0.75 * 4});

  // Weights set by hand: each of r, z, n reads one channel of y and x, against the formula.
  g.gru.weight_ih.value = f64({6, 2}, {0.5, 0, 0, -1, 1, 0, 0, 0.5, -0.5, 0.25, 0, 1});
  g.gru.weight_hh.value = f64({6, 2}, {0, 1, -0.5, 0, 0.25, 0, 0, -1, 1, 0, 0.5, 0.5});
  g.gru.bias_ih.value = f64({6}, {0.1, 0, 0, 0.2, 0, -0.1});
  g.gru.bias_hh.value = f64({6}, {0, -0.3, 0.1, 0, 0.2, 0});
  Var x2 = t.constant(f64({1, 2}, {0.5, -1})), y2 = t.constant(f64({1, 2}, {1, 2}));
  const double r0 = sig(0.5 * 1 + 0.1 + 1 * -1), r1 = sig(-1 * 2 + -0.5 * 0.5 - 0.3);
  const double z0 = sig(1 * 1 + 0.25 * 0.5 + 0.1), z1 = sig(0.5 * 2 + 0.2 + -1 * -1);
  const double n0 = std::tanh(-0.5 * 1 + 0.25 * 2 + r0 * (1 * 0.5 + 0.2));
  const double n1 = std::tanh(1 * 2 - 0.1 + r1 * (0.5 * 0.5 + 0.5 * -1));
  check_close(g(x2, y2).value(), {(1 - z0) * n0 + z0 * 0.5, (1 - z1) * n1 + z1 * -1});

  // Token-wise on (B, n, D), same as the oracle row by row.
  GRUGate big(init, 3);
  const Tensor xs = rand64({2, 4, 3}, 5), ys = rand64({2, 4, 3}, 6);
  check_close(big(t.constant(xs), t.constant(ys)).value(), gru_oracle(big.gru, ys, xs));
}

BOOST_AUTO_TEST_CASE(gru_gate_bias_init_and_mogrify) {
  Init a(9, DType::f64), b(9, DType::f64);
  GRUGate plain(a, 4), biased(b, 4, {.gate_bias_init = 2.0});
  const auto p = plain.gru.bias_hh.value.to_vector(), q = biased.gru.bias_hh.value.to_vector();
  for (size_t k = 0; k < 12; ++k) BOOST_TEST(q[k] == p[k] + (k >= 4 && k < 8 ? 2.0 : 0.0));
  BOOST_TEST(biased.gru.bias_ih.value.to_vector() == plain.gru.bias_ih.value.to_vector());

  // With the mogrifier: the gate sees the mogrified pair.
  Init c(10, DType::f64);
  GRUGate m(c, 8, {.mogrify = true});
  Tape t;
  Var x = t.constant(rand64({3, 8}, 7)), y = t.constant(rand64({3, 8}, 8));
  const Mogrified xy = (*m.mogrify)(x, y);
  check_close(m(x, y).value(), gru_oracle(m.gru, xy.y.value(), xy.x.value()));
  BOOST_TEST(names_of(m) == (std::vector<std::string>{"gru.weight_ih", "gru.weight_hh", "gru.bias_ih", "gru.bias_hh",
                                                      "mogrify.Q.0.weight", "mogrify.Q.1.weight", "mogrify.R.0.weight",
                                                      "mogrify.R.1.weight"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(nbrc_against_the_formula) {
  Init init(4, DType::f64);
  NBRCGate g(init, 3);
  Tape t;
  const Tensor xs = rand64({2, 2, 3}, 11), ys = rand64({2, 2, 3}, 12);
  const std::vector<double> xv = xs.to_vector(), yv = ys.to_vector();
  std::vector<double> want(xv.size());
  const NBRCCell& c = g.gru;
  for (size_t row = 0; row < 4; ++row) {
    const double* x = xv.data() + row * 3;
    const double* y = yv.data() + row * 3;
    auto lin = [](const Linear& l, const double* v) { return affine_rows(l.weight.value, &l.bias.value, v); };
    const auto ua = lin(c.Ua, y), wa = lin(c.Wa, x), uc = lin(c.Uc, y), wc = lin(c.Wc, x), u = lin(c.U, y);
    for (size_t k = 0; k < 3; ++k) {
      const double a = 1 + std::tanh(ua[k] + wa[k]), cc = sig(uc[k] + wc[k]);
      want[row * 3 + k] = cc * x[k] + (1 - cc) * std::tanh(u[k] + a * x[k]);
    }
  }
  check_close(g(t.constant(xs), t.constant(ys)).value(), want);
  BOOST_TEST(names_of(g) == (std::vector<std::string>{"gru.Ua.weight", "gru.Ua.bias", "gru.Wa.weight", "gru.Wa.bias",
                                                      "gru.Uc.weight", "gru.Uc.bias", "gru.Wc.weight", "gru.Wc.bias",
                                                      "gru.U.weight", "gru.U.bias"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(mogrifier_round_structure) {
  Init init(5, DType::f64);
  Tape t;
  const Tensor xs = rand64({2, 3, 8}, 13), ys = rand64({2, 3, 8}, 14);
  Var x = t.constant(xs), y = t.constant(ys);

  Mogrifier zero(init, 8);  // Q = R = 0: every factor is 2σ(0) = 1
  for (Param* p : params(zero)) p->value.fill_(0.0);
  const Mogrified same = zero(x, y);
  check_close(same.x.value(), xs.to_vector());
  check_close(same.y.value(), ys.to_vector());

  // Round 0 changes y only (from x); round 1 then changes x (from the new y).
  Mogrifier one(init, 8, {.iters = 1}), two(init, 8, {.iters = 2});
  BOOST_TEST(!one.R.has_value());
  const Mogrified a = one(x, y);
  check_close(a.x.value(), xs.to_vector());
  check_close(a.y.value(), (2.0 * sigmoid(one.Q(x)) * y).value().to_vector());
  const Mogrified b = two(x, y);
  Var y1 = 2.0 * sigmoid(two.Q(x)) * y;
  check_close(b.y.value(), y1.value().to_vector());
  check_close(b.x.value(), (2.0 * sigmoid((*two.R)(y1)) * x).value().to_vector());

  BOOST_TEST(one.rank == 2);
  BOOST_TEST(two.Q.down.weight.value.shape() == Shape({2, 8}));
  BOOST_TEST(two.Q.up.weight.value.shape() == Shape({8, 2}));
  Mogrifier biased(init, 8, {.rank = 3, .bias = true});
  BOOST_TEST(names_of(biased) == (std::vector<std::string>{"Q.0.weight", "Q.0.bias", "Q.1.weight", "Q.1.bias",
                                                           "R.0.weight", "R.0.bias", "R.1.weight", "R.1.bias"}),
             boost::test_tools::per_element());
  BOOST_TEST(biased.R->up.weight.value.shape() == Shape({8, 3}));
}

BOOST_AUTO_TEST_CASE(ema_gate_average_and_init) {
  Init init(6, DType::f64);
  EMAGate g(init, 4);
  Tape t;
  const Tensor s = rand64({2, 3, 4}, 15), z = rand64({2, 3, 4}, 16);
  g.learned_ema_beta.value.fill_(0.0);  // g = 1/2
  const std::vector<double> sv = s.to_vector(), zv = z.to_vector();
  std::vector<double> avg(sv.size());
  for (size_t i = 0; i < sv.size(); ++i) avg[i] = 0.5 * (sv[i] + zv[i]);
  check_close(g(t.constant(s), t.constant(z)).value(), avg);
  g.learned_ema_beta.value = f64({4}, {-1, 0, 1, 2});  // per channel: g = σ(β)
  const Tensor out = g(t.constant(s), t.constant(z)).value();
  for (int64_t k = 0; k < 4; ++k) {
    const double gk = sig(double(k) - 1);
    BOOST_TEST(std::abs(out.at({1, 2, k}) - (gk * z.at({1, 2, k}) + (1 - gk) * s.at({1, 2, k}))) < 1e-12);
  }

  Init big(7);
  EMAGate e(big, 20000);
  BOOST_TEST(names_of(e) == std::vector<std::string>{"learned_ema_beta"});
  double m = 0, v = 0;
  for (double b : e.learned_ema_beta.value.to_vector()) m += b / 20000, v += b * b / 20000;
  BOOST_TEST(std::abs(m) < 3e-3);
  BOOST_TEST(std::abs(std::sqrt(v) - 0.1) < 3e-3);
}

BOOST_AUTO_TEST_CASE(gru_init_names_and_bounds) {
  Init init(8);
  GRUGate g(init, 64);
  BOOST_TEST(names_of(g) == (std::vector<std::string>{"gru.weight_ih", "gru.weight_hh", "gru.bias_ih", "gru.bias_hh"}),
             boost::test_tools::per_element());
  BOOST_TEST(g.gru.weight_ih.value.shape() == Shape({192, 64}));
  BOOST_TEST(g.gru.bias_hh.value.shape() == Shape({192}));
  for (Param* p : params(g)) {  // U(+-1/8): variance 1/192
    const auto w = p->value.to_vector();
    double var = 0;
    for (double x : w) {
      BOOST_TEST((x >= -0.125 && x <= 0.125));
      var += x * x / double(w.size());
    }
    if (w.size() > 1000) BOOST_TEST(std::abs(var - 1.0 / 192) < 3e-4);
  }
}

BOOST_AUTO_TEST_CASE(streams_expand_and_reduce_token_major) {
  Tape t;
  const Tensor xs = rand64({2, 3, 4}, 17);
  Var H = expand_streams(t.constant(xs), 3);  // (B, n, S, D)
  BOOST_TEST(H.shape() == Shape({2, 3, 3, 4}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t s = 0; s < 3; ++s) BOOST_TEST(H.value().at({b, 2, s, 1}) == xs.at({b, 2, 1}));
  const Tensor Hs = rand64({2, 3, 3, 4}, 18);
  const Tensor r = reduce_streams(t.constant(Hs), 3).value();
  BOOST_TEST(std::abs(r.at({1, 0, 3}) - (Hs.at({1, 0, 0, 3}) + Hs.at({1, 0, 1, 3}) + Hs.at({1, 0, 2, 3}))) < 1e-12);
}

BOOST_AUTO_TEST_CASE(hyper_connections_one_stream_is_a_plain_residual) {
  Init init(9, DType::f64);
  HyperConnections hc(init, 4, 1, 0);
  BOOST_TEST(param_count(hc) == 0);
  Tape t;
  const Tensor xs = rand64({2, 3, 4}, 19);
  Var x = t.constant(xs);
  Var H = expand_streams(x, 1);
  const HyperConnections::Width w = hc.width(H);
  check_close(w.branch_input.value(), xs.to_vector());
  Var f = tanh(w.branch_input) * 3.0;
  check_close(reduce_streams(hc.depth(w, f), 1).value(), (x + tanh(x) * 3.0).value().to_vector());
}

BOOST_AUTO_TEST_CASE(hyper_connections_at_init) {
  Init init(10, DType::f64);
  HyperConnections hc(init, 4, 4, 6);  // layer 6 of 4 streams: stream 2
  BOOST_TEST(hc.init_stream == 2);
  BOOST_TEST(names_of(hc) == (std::vector<std::string>{"static_beta", "static_alpha", "dynamic_alpha_fn",
                                                       "dynamic_alpha_scale", "dynamic_beta_fn", "dynamic_beta_scale",
                                                       "norm.gamma"}),
             boost::test_tools::per_element());
  BOOST_TEST(hc.static_alpha.value.to_vector() ==
             (std::vector<double>{0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1}));
  BOOST_TEST(hc.static_beta.value.to_vector() == std::vector<double>(4, 1.0));
  BOOST_TEST(hc.dynamic_alpha_fn.value.shape() == Shape({4, 5}));
  BOOST_TEST(hc.dynamic_alpha_fn.value.to_vector() == std::vector<double>(20, 0.0));
  BOOST_TEST(hc.dynamic_beta_fn.value.to_vector() == std::vector<double>(4, 0.0));
  BOOST_TEST(hc.norm->weight.value.to_vector() == std::vector<double>(4, 0.0));
  BOOST_TEST(hc.dynamic_alpha_scale.value.shape() == Shape{});
  BOOST_TEST(hc.dynamic_alpha_scale.value.item() == 0.01);
  BOOST_TEST(hc.dynamic_beta_scale.value.item() == 0.01);
  Init i1(11), i2(11);  // no layer index: a seeded draw
  BOOST_TEST(HyperConnections(i1, 4, 4, -1).init_stream == HyperConnections(i2, 4, 4, -1).init_stream);

  Tape t;
  const Tensor Hs = rand64({2, 3, 4, 4}, 20);  // B = 2, n = 3, S = 4
  const HyperConnections::Width w = hc.width(t.constant(Hs));
  const Tensor bi = w.branch_input.value();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t d = 0; d < 4; ++d) BOOST_TEST(bi.at({b, i, d}) == Hs.at({b, i, 2, d}));
  const Tensor fo = rand64({2, 3, 4}, 21);
  const Tensor out = hc.depth(w, t.constant(fo)).value();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t s = 0; s < 4; ++s)
        for (int64_t d = 0; d < 4; ++d)
          BOOST_TEST(std::abs(out.at({b, i, s, d}) - (Hs.at({b, i, s, d}) + fo.at({b, i, d}))) < 1e-12);
}

BOOST_AUTO_TEST_CASE(hyper_connections_dynamic_and_parity) {
  // Every parameter off its init; a scalar oracle per token. Paper and parity forms share the
  // branch input and beta and differ only in R: mix[1..S] versus H.
  const int64_t B = 2, S = 3, n = 2, D = 4;
  Init init(12, DType::f64);
  HyperConnections paper(init, D, S, 1), parity(init, D, S, 1, true);
  Rng rng(99);
  for (Param* p : params(paper)) {
    double* v = p->value.data<double>();
    for (int64_t i = 0; i < p->value.numel(); ++i) v[i] += rng.uniform(-0.5, 0.5);
  }
  auto pp = params(paper), qq = params(parity);
  for (size_t k = 0; k < pp.size(); ++k) qq[k]->value = pp[k]->value.clone();

  Tape t;
  const Tensor Hs = rand64({B, n, S, D}, 22);
  const HyperConnections::Width wp = paper.width(t.constant(Hs)), wq = parity.width(t.constant(Hs));
  Var fp = tanh(wp.branch_input), fq = tanh(wq.branch_input);
  const Tensor op = paper.depth(wp, fp).value(), oq = parity.depth(wq, fq).value();

  const Tensor& sa = paper.static_alpha.value;
  const double as = paper.dynamic_alpha_scale.value.item(), bs = paper.dynamic_beta_scale.value.item();
  double max_mix_minus_h = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < n; ++i) {
      std::vector<std::vector<double>> h(S, std::vector<double>(D)), hn = h, mix(S + 1, std::vector<double>(D, 0.0));
      std::vector<std::vector<double>> alpha(S, std::vector<double>(S + 1));
      std::vector<double> beta(S);
      for (int64_t s = 0; s < S; ++s) {
        double norm = 0;
        for (int64_t d = 0; d < D; ++d) norm += std::pow(h[s][d] = Hs.at({b, i, s, d}), 2);
        for (int64_t d = 0; d < D; ++d)
          hn[s][d] = h[s][d] / std::sqrt(norm) * std::sqrt(double(D)) * (paper.norm->weight.value.at({d}) + 1);
        for (int64_t c = 0; c <= S; ++c) {
          double acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += hn[s][d] * paper.dynamic_alpha_fn.value.at({d, c});
          alpha[s][c] = sa.at({s, c}) + as * std::tanh(acc);
        }
        double acc = 0;
        for (int64_t d = 0; d < D; ++d) acc += hn[s][d] * paper.dynamic_beta_fn.value.at({d});
        beta[s] = paper.static_beta.value.at({s}) + bs * std::tanh(acc);
      }
      for (int64_t c = 0; c <= S; ++c)
        for (int64_t s = 0; s < S; ++s)
          for (int64_t d = 0; d < D; ++d) mix[c][d] += alpha[s][c] * h[s][d];
      for (int64_t d = 0; d < D; ++d) {
        const double f = std::tanh(mix[0][d]);
        BOOST_TEST(std::abs(wp.branch_input.value().at({b, i, d}) - mix[0][d]) < 1e-12);
        BOOST_TEST(std::abs(wq.branch_input.value().at({b, i, d}) - mix[0][d]) < 1e-12);
        for (int64_t s = 0; s < S; ++s) {
          BOOST_TEST(std::abs(op.at({b, i, s, d}) - (mix[1 + s][d] + beta[s] * f)) < 1e-12);
          BOOST_TEST(std::abs(oq.at({b, i, s, d}) - (h[s][d] + beta[s] * f)) < 1e-12);
          max_mix_minus_h = std::max(max_mix_minus_h, std::abs(mix[1 + s][d] - h[s][d]));
        }
      }
    }
  BOOST_TEST(max_mix_minus_h > 0.1);  // the case separates the two forms
}

BOOST_AUTO_TEST_SUITE_END()
