// The float activations use their own vectorised exp and erf (kernels/cpu/vec.h):
// check them against the double ones over a wide range, and GEGLU against its definition.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "autograd/ops/ops.h"

using namespace mnemo;

BOOST_AUTO_TEST_SUITE(activations)

BOOST_AUTO_TEST_CASE(float_activations_match_double) {
  std::vector<double> xs;
  for (double x = -9; x <= 9; x += 0.01) xs.push_back(x);
  const int64_t n = int64_t(xs.size());
  Tape t;
  Var xf = t.input(Tensor::from({n}, xs, DType::f32)), xd = t.input(Tensor::from({n}, xs, DType::f64));
  const auto yf = gelu(xf).value().to_vector(), yd = gelu(xd).value().to_vector();
  const auto ef = exp(xf).value().to_vector(), sf = softplus(xf).value().to_vector();
  const auto tf = tanh(xf).value().to_vector(), gt = gelu_tanh(xf).value().to_vector();
  const auto gtd = gelu_tanh(xd).value().to_vector();
  for (int64_t i = 0; i < n; ++i) {
    BOOST_TEST_CONTEXT("x = " << xs[size_t(i)]) {
      BOOST_TEST(std::abs(yf[size_t(i)] - yd[size_t(i)]) <= 1e-6 * (1 + std::abs(yd[size_t(i)])));
      BOOST_TEST(std::abs(ef[size_t(i)] - std::exp(xs[size_t(i)])) <= 1e-6 * std::exp(xs[size_t(i)]));
      BOOST_TEST(std::abs(sf[size_t(i)] - std::log1p(std::exp(xs[size_t(i)]))) <= 1e-6 * (1 + sf[size_t(i)]));
      BOOST_TEST(std::abs(tf[size_t(i)] - std::tanh(xs[size_t(i)])) <= 1e-6 * std::abs(std::tanh(xs[size_t(i)])) + 1e-7);
      BOOST_TEST(std::abs(gt[size_t(i)] - gtd[size_t(i)]) <= 1e-6 * (1 + std::abs(gtd[size_t(i)])));
    }
  }
}

BOOST_AUTO_TEST_CASE(geglu_is_a_times_gelu_of_the_gate) {
  const Tensor x = Tensor::from({2, 4}, {1, -2, 0.5, 3, -1, 2, -0.5, 1.5}, DType::f64);
  Tape t;
  auto g = [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); };
  const Tensor y = geglu(t.constant(x)).value(), yf = geglu(t.constant(x), true).value();
  BOOST_REQUIRE(y.shape() == Shape({2, 2}));
  const double want[] = {1 * g(0.5), -2 * g(3), -1 * g(-0.5), 2 * g(1.5)};
  const double want_first[] = {g(1) * 0.5, g(-2) * 3, g(-1) * -0.5, g(2) * 1.5};
  for (int i = 0; i < 4; ++i) {
    BOOST_TEST(std::abs(y.to_vector()[size_t(i)] - want[i]) < 1e-12);
    BOOST_TEST(std::abs(yf.to_vector()[size_t(i)] - want_first[i]) < 1e-12);
  }
  BOOST_CHECK_THROW(geglu(t.constant(Tensor::zeros({2, 3}, DType::f64))), Error);
}

BOOST_AUTO_TEST_SUITE_END()
