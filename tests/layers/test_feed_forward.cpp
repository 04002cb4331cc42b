// Feed-forward variants: shapes, parameter names, the 2/3 width rule, the GLU halves by hand.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "layers/feed_forward.h"

using namespace mnemo;
using namespace mnemo::nn;

namespace {

double gelu_ref(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

std::vector<std::string> names_of(Module& m) {
  std::vector<std::string> names;
  for (auto& [n, p] : named_params(m)) names.push_back(n);
  return names;
}

// y = W x (+ b) for one row, W (out, in) as Linear stores it.
std::vector<double> affine_row(const Linear& l, const std::vector<double>& x) {
  std::vector<double> y(static_cast<size_t>(l.d_out));
  for (int64_t o = 0; o < l.d_out; ++o) {
    double s = l.has_bias() ? l.bias.value.at({o}) : 0.0;
    for (int64_t i = 0; i < l.d_in; ++i) s += l.weight.value.at({o, i}) * x[size_t(i)];
    y[size_t(o)] = s;
  }
  return y;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(feed_forward)

BOOST_AUTO_TEST_CASE(shapes_and_names) {
  Init init(1);
  Tape t;
  FeedForward ff(init, 8), glu(init, 8, 4, 0.0, true);
  BOOST_TEST(ff.w1.weight.value.shape() == Shape({32, 8}));
  BOOST_TEST(glu.w1.weight.value.shape() == Shape({64, 8}));
  BOOST_TEST(glu.w2.weight.value.shape() == Shape({8, 32}));
  const std::vector<std::string> want{"w1.weight", "w1.bias", "w2.weight", "w2.bias"};
  BOOST_TEST(names_of(ff) == want, boost::test_tools::per_element());
  Var x = t.constant(Tensor::zeros({2, 3, 8}));
  BOOST_TEST(ff(x).shape() == Shape({2, 3, 8}));
  BOOST_TEST(glu(x).shape() == Shape({2, 3, 8}));
  BOOST_CHECK_THROW(ff(t.constant(Tensor::zeros({2, 7}))), Error);

  GegluFeedForward brt(init, 8, 4, GegluFeedForward::Norm::layer_norm), plain(init, 8);
  const std::vector<std::string> want_g{"norm.weight", "proj_in.weight", "proj_out.weight"};
  BOOST_TEST(names_of(brt) == want_g, boost::test_tools::per_element());
  BOOST_TEST(names_of(plain).size() == 2u);
  BOOST_TEST(brt(x).shape() == Shape({2, 3, 8}));
  BOOST_CHECK_THROW(brt(t.constant(Tensor::zeros({3, 9}))), Error);
}

BOOST_AUTO_TEST_CASE(geglu_width_is_two_thirds) {
  BOOST_TEST(geglu_inner_dim(512, 4) == 1365);
  BOOST_TEST(geglu_inner_dim(8, 4) == 21);   // 64 / 3 = 21.33
  BOOST_TEST(geglu_inner_dim(3, 1) == 2);
  Init init(2);
  GegluFeedForward ff(init, 512, 4, GegluFeedForward::Norm::rms_norm);
  BOOST_TEST(ff.inner == 1365);
  BOOST_TEST(ff.proj_in.weight.value.shape() == Shape({2730, 512}));
  BOOST_TEST(ff.proj_out.weight.value.shape() == Shape({512, 1365}));
  BOOST_TEST(!ff.proj_in.has_bias());
  BOOST_TEST(ff.rms_norm.has_value());
  Tape t;
  BOOST_TEST(ff(t.constant(Tensor::zeros({1, 2, 512}))).shape() == Shape({1, 2, 512}));
}

// ff_glu: the FIRST half of w1 x goes through GELU and multiplies the second.
BOOST_AUTO_TEST_CASE(glu_activates_first_half) {
  Init init(3, DType::f64);
  FeedForward ff(init, 2, 1, 0.0, true);  // w1: 2 -> 4, w2: 2 -> 2
  const std::vector<double> x{0.7, -1.3};
  const std::vector<double> h = affine_row(ff.w1, x);
  const std::vector<double> a{gelu_ref(h[0]) * h[2], gelu_ref(h[1]) * h[3]};
  const std::vector<double> want = affine_row(ff.w2, a);
  Tape t;
  const Tensor y = ff(t.constant(Tensor::from({1, 2}, x, DType::f64))).value();
  for (int64_t o = 0; o < 2; ++o) BOOST_TEST(std::abs(y.at({0, o}) - want[size_t(o)]) < 1e-12);
}

// GEGLU FF: the SECOND half is the gate: a * gelu(gate).
BOOST_AUTO_TEST_CASE(geglu_gates_with_second_half) {
  Init init(4, DType::f64);
  GegluFeedForward ff(init, 3, 1.0);  // I = 2: proj_in 3 -> 4, proj_out 2 -> 3, no norm
  const std::vector<double> x{0.4, -0.9, 1.6};
  const std::vector<double> h = affine_row(ff.proj_in, x);
  const std::vector<double> a{h[0] * gelu_ref(h[2]), h[1] * gelu_ref(h[3])};
  const std::vector<double> want = affine_row(ff.proj_out, a);
  Tape t;
  const Tensor y = ff(t.constant(Tensor::from({1, 3}, x, DType::f64))).value();
  for (int64_t o = 0; o < 3; ++o) BOOST_TEST(std::abs(y.at({0, o}) - want[size_t(o)]) < 1e-12);

  // With the BRT norm the branch sees LN(x) (gain 1 at init): same numbers as feeding LN(x).
  Init i1(5, DType::f64), i2(5, DType::f64);
  GegluFeedForward normed(i1, 3, 1.0, GegluFeedForward::Norm::layer_norm), bare(i2, 3, 1.0);
  const double m = (0.4 - 0.9 + 1.6) / 3;
  double var = 0;
  for (double v : x) var += (v - m) * (v - m) / 3;
  std::vector<double> ln;
  for (double v : x) ln.push_back((v - m) / std::sqrt(var + 1e-5));
  const Tensor y1 = normed(t.constant(Tensor::from({1, 3}, x, DType::f64))).value();
  const Tensor y2 = bare(t.constant(Tensor::from({1, 3}, ln, DType::f64))).value();
  for (int64_t o = 0; o < 3; ++o) BOOST_TEST(std::abs(y1.at({0, o}) - y2.at({0, o})) < 1e-12);
}

BOOST_AUTO_TEST_CASE(dropout_only_while_training) {
  Init init(6);
  FeedForward ff(init, 4, 4, 0.5);
  GegluFeedForward g(init, 4, 4, GegluFeedForward::Norm::none, 0.5);
  Tape t;
  t.set_seed(9);
  Var x = t.constant(Tensor::full({3, 4}, 0.5));
  eval(ff);
  eval(g);
  BOOST_TEST(!ff.drop.training);
  BOOST_TEST(!g.drop.training);
  const auto e1 = ff(x).value().to_vector(), e2 = ff(x).value().to_vector();
  BOOST_TEST(e1 == e2);
  train(ff);
  BOOST_TEST(ff(x).value().to_vector() != e1);
}

BOOST_AUTO_TEST_SUITE_END()
