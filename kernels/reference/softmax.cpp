// Reference softmax / log-softmax over the last axis of (rows, n), and cross-entropy on
// logits. A row that is all -inf has no distribution: softmax gives zeros, log-softmax
// -inf, and its log-sum-exp is -inf.
#include <cmath>
#include <limits>

#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {
namespace {

// log(sum_i exp(x_i)), shifted by the row's maximum so that no exp overflows.
template <class T>
T log_sum_exp(const T* x, int64_t n) {
  T max = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < n; ++i)
    if (x[i] > max) max = x[i];
  if (max == -std::numeric_limits<T>::infinity()) return max;
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - max);
  return max + std::log(sum);
}

}  // namespace

template <class T>
void softmax_forward(T* y, const T* x, int64_t rows, int64_t n, bool log) {
#pragma omp parallel for if (worth_threads(rows * n))
  for (int64_t r = 0; r < rows; ++r) {
    const T lse = log_sum_exp(x + r * n, n);
    const bool empty = lse == -std::numeric_limits<T>::infinity();
    for (int64_t i = 0; i < n; ++i) {
      const T log_p = x[r * n + i] - lse;
      y[r * n + i] = log ? (empty ? lse : log_p) : (empty ? T(0) : std::exp(log_p));
    }
  }
}

// softmax:      dx = y (dy - sum_j dy_j y_j)
// log-softmax:  dx = dy - exp(y) sum_j dy_j
template <class T>
void softmax_backward(T* dx, const T* dy, const T* y, int64_t rows, int64_t n, bool log) {
#pragma omp parallel for if (worth_threads(rows * n))
  for (int64_t r = 0; r < rows; ++r) {
    T s = 0;
    for (int64_t i = 0; i < n; ++i) s += log ? dy[r * n + i] : dy[r * n + i] * y[r * n + i];
    for (int64_t i = 0; i < n; ++i) {
      const T yi = y[r * n + i], g = dy[r * n + i];
      dx[r * n + i] = log ? g - std::exp(yi) * s : yi * (g - s);
    }
  }
}

template <class T>
void cross_entropy_forward(T* loss, T* lse, const T* logits, const int32_t* target, int64_t rows, int64_t V,
                           int32_t ignore_index) {
#pragma omp parallel for if (worth_threads(rows * V))
  for (int64_t r = 0; r < rows; ++r) {
    lse[r] = log_sum_exp(logits + r * V, V);
    loss[r] = target[r] == ignore_index ? T(0) : lse[r] - logits[r * V + target[r]];
  }
}

// dlogits = dloss (softmax(logits) - onehot(target)), with softmax = exp(logits - lse)
template <class T>
void cross_entropy_backward(T* dlogits, const T* dloss_rows, const T* logits, const T* lse, const int32_t* target,
                            int64_t rows, int64_t V, int32_t ignore_index) {
#pragma omp parallel for if (worth_threads(rows * V))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < V; ++i) {
      const bool ignored = target[r] == ignore_index;
      const T p = std::exp(logits[r * V + i] - lse[r]), onehot = i == target[r] ? T(1) : T(0);
      dlogits[r * V + i] = ignored ? T(0) : dloss_rows[r] * (p - onehot);
    }
}

#define MNEMO_INSTANTIATE(T)                                                                             \
  template void softmax_forward<T>(T*, const T*, int64_t, int64_t, bool);                                \
  template void softmax_backward<T>(T*, const T*, const T*, int64_t, int64_t, bool);                     \
  template void cross_entropy_forward<T>(T*, T*, const T*, const int32_t*, int64_t, int64_t, int32_t);   \
  template void cross_entropy_backward<T>(T*, const T*, const T*, const T*, const int32_t*, int64_t, int64_t, \
                                          int32_t);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
