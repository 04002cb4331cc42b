// Softmax / log-softmax over the last axis, and the fused cross-entropy (log-softmax and
// NLL in one pass per row). Rows are split across threads; each row is walked with SIMD
// loops and the vectorised exp of vec.h (std::exp for double).
#include <cmath>
#include <limits>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec.h"

namespace mnemo::kernels::cpu {
namespace {

template <class T>
T row_max(const T* x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;  // std::max here defeats GCC 12's SIMD reduction
  return m;
}

template <class T>
T row_sum_exp(const T* x, int64_t n, T shift) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += fast_exp(x[i] - shift);
  return s;
}

// log(sum(exp(x))) for one row; -inf for an all -inf row.
template <class T>
T row_lse(const T* x, int64_t n) {
  const T m = row_max(x, n);
  if (m == -std::numeric_limits<T>::infinity()) return m;
  return m + std::log(row_sum_exp(x, n, m));
}

}  // namespace

// One read of the row for the max, one pass writing exp(x - max) (softmax) or x - lse
// (log-softmax), and for softmax a scaling pass over the row while it is in L1.
template <class T>
void softmax_forward(T* y, const T* x, int64_t rows, int64_t n, bool log) {
#pragma omp parallel for schedule(static) if (rows * n > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    const T m = row_max(xr, n);
    if (m == -std::numeric_limits<T>::infinity()) {
      std::fill(yr, yr + n, log ? m : T(0));
      continue;
    }
    if (log) {
      const T lse = m + std::log(row_sum_exp(xr, n, m));
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - lse;
    } else {
      const T inv = T(1) / exp_shifted_sum(yr, xr, n, m);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
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
    T s = 0;
    if (log) {  // dx = dy - softmax * sum(dy)
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < n; ++i) s += g[i];
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) d[i] = g[i] - fast_exp(yr[i]) * s;
    } else {    // dx = y * (dy - sum(dy * y))
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < n; ++i) s += g[i] * yr[i];
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) d[i] = yr[i] * (g[i] - s);
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
      std::fill(d, d + V, T(0));
      continue;
    }
    const T g = dloss_rows[r], l = lse[r];
#pragma omp simd
    for (int64_t i = 0; i < V; ++i) d[i] = g * fast_exp(xr[i] - l);
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
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::cpu
