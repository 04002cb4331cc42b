// Reference softmax / log-softmax over the last axis, and the fused cross-entropy.
// Rows are independent, so rows are split across threads.
#include <cmath>
#include <limits>

#include "kernels/reference/common.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {
namespace {

template <class T>
T row_max(const T* x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// log(sum(exp(x))) for one row; -inf for an all -inf row.
template <class T>
T row_lse(const T* x, int64_t n) {
  const T m = row_max(x, n);
  if (m == -std::numeric_limits<T>::infinity()) return m;
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(x[i] - m));
  return m + T(std::log(s));
}

}  // namespace

template <class T>
void softmax_forward(T* y, const T* x, int64_t rows, int64_t n, bool log) {
#pragma omp parallel for schedule(static) if (rows * n > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    const T lse = row_lse(xr, n);
    const bool empty = lse == -std::numeric_limits<T>::infinity();
    for (int64_t i = 0; i < n; ++i) {
      if (log) yr[i] = empty ? lse : xr[i] - lse;
      else yr[i] = empty ? T(0) : std::exp(xr[i] - lse);
    }
  }
}

template <class T>
void softmax_backward(T* dx, const T* dy, const T* y, int64_t rows, int64_t n, bool log) {
#pragma omp parallel for schedule(static) if (rows * n > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* yr = y + r * n;
    const T* g = dy + r * n;
    T* d = dx + r * n;
    double s = 0;
    if (log) {  // dx = dy - softmax * sum(dy)
      for (int64_t i = 0; i < n; ++i) s += double(g[i]);
      for (int64_t i = 0; i < n; ++i) d[i] = g[i] - std::exp(yr[i]) * T(s);
    } else {    // dx = y * (dy - sum(dy * y))
      for (int64_t i = 0; i < n; ++i) s += double(g[i]) * double(yr[i]);
      for (int64_t i = 0; i < n; ++i) d[i] = yr[i] * (g[i] - T(s));
    }
  }
}

template <class T>
void cross_entropy_forward(T* loss, T* lse, const T* logits, const int32_t* target, int64_t rows, int64_t V,
                           int32_t ignore_index) {
#pragma omp parallel for schedule(static) if (rows * V > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = logits + r * V;
    lse[r] = row_lse(xr, V);
    loss[r] = target[r] == ignore_index ? T(0) : lse[r] - xr[target[r]];
  }
}

template <class T>
void cross_entropy_backward(T* dlogits, const T* dloss_rows, const T* logits, const T* lse, const int32_t* target,
                            int64_t rows, int64_t V, int32_t ignore_index) {
#pragma omp parallel for schedule(static) if (rows * V > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    T* d = dlogits + r * V;
    const T* xr = logits + r * V;
    if (target[r] == ignore_index) {
      for (int64_t i = 0; i < V; ++i) d[i] = T(0);
      continue;
    }
    const T g = dloss_rows[r];
    for (int64_t i = 0; i < V; ++i) d[i] = g * std::exp(xr[i] - lse[r]);
    d[target[r]] -= g;
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
