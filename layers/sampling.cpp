// Samplers on (B, V) logits, computed row by row in double: top-k by partial sort, Gumbel-max
// argmax(l / T + g), and inverse-CDF multinomial draws from softmax(l / T).
#include "layers/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace mnemo::nn {
namespace {

constexpr double kMinTemperature = 1e-10, kLogClamp = 1e-20;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

void check_logits(const char* op, const Tensor& logits) {
  MNEMO_CHECK(logits.defined() && logits.rank() == 2 && logits.dim(1) >= 1,
              "[" << op << "] expected logits (B, V) with V >= 1, got "
                  << (logits.defined() ? logits.shape() : Shape{}));
  MNEMO_CHECK(logits.dtype() == DType::f32 || logits.dtype() == DType::f64,
              "[" << op << "] expected f32 or f64 logits, got " << dtype_name(logits.dtype()));
}

int32_t argmax_row(const double* row, int64_t V) { return int32_t(std::max_element(row, row + V) - row); }

}  // namespace

int64_t top_k_count(int64_t vocab, double thres, TopKRounding rounding) {
  MNEMO_CHECK(vocab >= 1 && thres >= 0 && thres <= 1,
              "[top_k] expected vocab >= 1 and thres in [0, 1], got " << vocab << ", " << thres);
  const double x = (1.0 - thres) * double(vocab);  // 0.1 * 256 = 25.599999999999998 in both
  const auto k = int64_t(rounding == TopKRounding::ceil ? std::ceil(x) : std::floor(x));
  return std::clamp<int64_t>(k, 1, vocab);
}

Tensor apply_temperature(const Tensor& logits, double temperature) {
  check_logits("temperature", logits);
  std::vector<double> v = logits.to_vector();  // (B V)
  const double t = std::max(temperature, kMinTemperature);
  for (double& x : v) x /= t;
  return Tensor::from(logits.shape(), v, logits.dtype(), logits.device());
}

Tensor top_k_filter(const Tensor& logits, double thres, TopKRounding rounding) {
  check_logits("top_k", logits);
  const int64_t B = logits.dim(0), V = logits.dim(1), k = top_k_count(V, thres, rounding);
  const std::vector<double> in = logits.to_vector();  // (B V)
  std::vector<double> out(in.size(), kNegInf);        // (B V)
  std::vector<int64_t> idx(static_cast<size_t>(V));
  for (int64_t b = 0; b < B; ++b) {
    const double* row = in.data() + b * V;
    std::iota(idx.begin(), idx.end(), int64_t(0));
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [row](int64_t i, int64_t j) { return row[i] > row[j] || (row[i] == row[j] && i < j); });
    for (int64_t r = 0; r < k; ++r) out[size_t(b * V + idx[size_t(r)])] = row[idx[size_t(r)]];
  }
  return Tensor::from(logits.shape(), out, logits.dtype(), logits.device());
}

Tensor argmax_sample(const Tensor& logits) {
  check_logits("argmax_sample", logits);
  const int64_t B = logits.dim(0), V = logits.dim(1);
  const std::vector<double> in = logits.to_vector();  // (B V)
  std::vector<int32_t> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) out[size_t(b)] = argmax_row(in.data() + b * V, V);
  return Tensor::from_ints({B}, out);
}

Tensor gumbel_sample(const Tensor& logits, double temperature, Rng& rng) {
  check_logits("gumbel_sample", logits);
  const int64_t B = logits.dim(0), V = logits.dim(1);
  std::vector<double> score = logits.to_vector();  // (B V)
  const double t = std::max(temperature, kMinTemperature);
  for (double& x : score) {
    const double u = rng.uniform();
    x = x / t - std::log(std::max(-std::log(std::max(u, kLogClamp)), kLogClamp));
  }
  std::vector<int32_t> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) out[size_t(b)] = argmax_row(score.data() + b * V, V);
  return Tensor::from_ints({B}, out);
}

Tensor multinomial_sample(const Tensor& logits, double temperature, Rng& rng) {
  check_logits("multinomial_sample", logits);
  const int64_t B = logits.dim(0), V = logits.dim(1);
  const std::vector<double> in = logits.to_vector();  // (B V)
  const double t = std::max(temperature, kMinTemperature);
  std::vector<double> p(static_cast<size_t>(V));
  std::vector<int32_t> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const double* row = in.data() + b * V;
    const double top = *std::max_element(row, row + V) / t;
    MNEMO_CHECK(std::isfinite(top), "[multinomial_sample] row " << b << " has no finite logit to sample");
    double total = 0;
    for (int64_t i = 0; i < V; ++i) total += p[size_t(i)] = std::exp(row[i] / t - top);
    // Inverse CDF; if rounding leaves u past the last step, take the last index with mass.
    const double u = rng.uniform() * total;
    int32_t pick = -1;
    double cum = 0;
    for (int64_t i = 0; i < V && pick < 0; ++i) {
      cum += p[size_t(i)];
      if (u < cum) pick = int32_t(i);
    }
    for (int64_t i = V - 1; pick < 0; --i)
      if (p[size_t(i)] > 0) pick = int32_t(i);
    out[size_t(b)] = pick;
  }
  return Tensor::from_ints({B}, out);
}

}  // namespace mnemo::nn
