// Sampling helpers: top-k counts in both rounding conventions, Gumbel-max at T -> 0, the
// empirical distribution of both samplers against softmax(l / T), seeding.
#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "layers/sampling.h"

using namespace mnemo;
using namespace mnemo::nn;

namespace {

std::vector<int32_t> ints(const Tensor& t) {
  BOOST_TEST(t.dtype() == DType::i32);
  const int32_t* p = t.data<int32_t>();
  return {p, p + t.numel()};
}

// `rows` copies of one row of logits, so one call draws `rows` independent samples.
Tensor repeat_row(const std::vector<double>& row, int64_t rows, DType dtype) {
  std::vector<double> v;
  for (int64_t r = 0; r < rows; ++r) v.insert(v.end(), row.begin(), row.end());
  return Tensor::from({rows, int64_t(row.size())}, v, dtype);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sampling)

BOOST_AUTO_TEST_CASE(top_k_counts_both_conventions) {
  BOOST_TEST(top_k_count(256, 0.9, TopKRounding::ceil) == 26);
  BOOST_TEST(top_k_count(256, 0.9, TopKRounding::floor) == 25);
  BOOST_TEST(top_k_count(10, 0.5, TopKRounding::ceil) == 5);
  BOOST_TEST(top_k_count(10, 1.0, TopKRounding::floor) == 1);  // held at 1
  BOOST_TEST(top_k_count(10, 0.0, TopKRounding::ceil) == 10);
  BOOST_CHECK_THROW(top_k_count(10, 1.5, TopKRounding::ceil), Error);

  Rng rng(1);
  const Tensor logits = Tensor::randn({3, 256}, rng);
  for (auto [mode, k] : {std::pair{TopKRounding::ceil, 26}, std::pair{TopKRounding::floor, 25}}) {
    const Tensor f = top_k_filter(logits, 0.9, mode);
    BOOST_TEST(f.dtype() == DType::f32);
    for (int64_t b = 0; b < 3; ++b) {
      int kept = 0;
      double min_kept = INFINITY, max_dropped = -INFINITY;
      for (int64_t i = 0; i < 256; ++i) {
        const double v = f.at({b, i}), l = logits.at({b, i});
        if (std::isfinite(v)) {
          ++kept;
          BOOST_TEST(v == l);
          min_kept = std::min(min_kept, l);
        } else {
          BOOST_TEST((std::isinf(v) && v < 0));
          max_dropped = std::max(max_dropped, l);
        }
      }
      BOOST_TEST(kept == k);
      BOOST_TEST(min_kept > max_dropped);
    }
  }
  // Samples from a filtered row never fall outside the top k.
  const Tensor f = top_k_filter(repeat_row({0.1, 3, -1, 2.5, 0}, 500, DType::f64), 0.7, TopKRounding::ceil);
  Rng r2(2);
  for (int32_t s : ints(gumbel_sample(f, 5.0, r2))) BOOST_TEST((s == 1 || s == 3));
  for (int32_t s : ints(multinomial_sample(f, 5.0, r2))) BOOST_TEST((s == 1 || s == 3));
}

BOOST_AUTO_TEST_CASE(temperature_to_zero_is_argmax) {
  Rng rng(3);
  const Tensor logits = Tensor::randn({16, 50}, rng, DType::f64);
  const std::vector<int32_t> greedy = ints(argmax_sample(logits));
  for (double temp : {0.0, 1e-12}) {
    BOOST_TEST(ints(gumbel_sample(logits, temp, rng)) == greedy, boost::test_tools::per_element());
    BOOST_TEST(ints(multinomial_sample(logits, temp, rng)) == greedy, boost::test_tools::per_element());
  }
  const Tensor scaled = apply_temperature(Tensor::from({1, 2}, {1.0, -3.0}), 0.5);
  BOOST_TEST(scaled.at({0, 0}) == 2.0);
  BOOST_TEST(scaled.at({0, 1}) == -6.0);
  BOOST_CHECK_THROW(argmax_sample(Tensor::zeros({4})), Error);
  BOOST_CHECK_THROW(argmax_sample(Tensor::from_ints({1, 2}, {0, 1})), Error);
}

// Both samplers draw from softmax(l / T): 40000 draws per sampler, 3 temperatures.
BOOST_AUTO_TEST_CASE(empirical_distribution_matches_softmax) {
  const std::vector<double> row{1.0, 0.5, 0.0, -1.0, 2.0};
  const int64_t n = 40000, V = 5;
  for (double temp : {0.5, 1.0, 2.0}) {
    std::vector<double> p(V);
    double z = 0;
    for (int64_t i = 0; i < V; ++i) z += p[size_t(i)] = std::exp(row[size_t(i)] / temp);
    for (double& x : p) x /= z;
    Rng rng(uint64_t(100 * temp));
    for (int which = 0; which < 2; ++which) {
      const Tensor logits = repeat_row(row, n, which ? DType::f32 : DType::f64);
      const Tensor s = which ? gumbel_sample(logits, temp, rng) : multinomial_sample(logits, temp, rng);
      std::vector<double> freq(V, 0.0);
      for (int32_t i : ints(s)) freq[size_t(i)] += 1.0 / double(n);
      // Binomial sd <= 0.0025 at n = 40000; 0.012 is ~5 sd.
      for (int64_t i = 0; i < V; ++i) BOOST_TEST(std::abs(freq[size_t(i)] - p[size_t(i)]) < 0.012);
    }
  }
}

BOOST_AUTO_TEST_CASE(same_seed_same_samples) {
  Rng data(4);
  const Tensor logits = Tensor::randn({64, 30}, data);
  Rng a(42), b(42), c(43);
  const auto ga = ints(gumbel_sample(logits, 1.0, a)), gb = ints(gumbel_sample(logits, 1.0, b));
  const auto ma = ints(multinomial_sample(logits, 1.0, a)), mb = ints(multinomial_sample(logits, 1.0, b));
  BOOST_TEST(ga == gb, boost::test_tools::per_element());
  BOOST_TEST(ma == mb, boost::test_tools::per_element());
  BOOST_TEST(ints(gumbel_sample(logits, 1.0, c)) != ga);
  BOOST_TEST(ints(gumbel_sample(logits, 1.0, a)) != ga);  // the generator moved on
}

BOOST_AUTO_TEST_SUITE_END()
