// CPU reductions along the middle axis of an (outer, n, inner) view, the max
// reduction's backward, and cumulative sums.
#include <cmath>
#include <limits>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace mnemo::kernels::cpu {

template <class T>
void reduce(Reduce op, T* y, const T* x, int64_t outer, int64_t n, int64_t inner) {
  const int64_t total = outer * inner;
#pragma omp parallel for schedule(static) if (total * n > kParallelMin && total > 1)
  for (int64_t q = 0; q < total; ++q) {
    const int64_t o = q / inner, j = q % inner;
    const T* p = x + o * n * inner + j;
    if (op == Reduce::sum) {
      double acc = 0;
      for (int64_t i = 0; i < n; ++i) acc += double(p[i * inner]);
      y[q] = T(acc);
    } else {
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t i = 0; i < n; ++i) m = std::max(m, p[i * inner]);
      y[q] = m;
    }
  }
}

template <class T>
void reduce_max_backward(T* dx, const T* dy, const T* x, const T* y, int64_t outer, int64_t n, int64_t inner) {
  const int64_t total = outer * inner;
#pragma omp parallel for schedule(static) if (total * n > kParallelMin && total > 1)
  for (int64_t q = 0; q < total; ++q) {
    const int64_t o = q / inner, j = q % inner;
    const int64_t base = o * n * inner + j;
    bool done = false;
    for (int64_t i = 0; i < n; ++i) {
      const bool hit = !done && x[base + i * inner] == y[q];
      dx[base + i * inner] = hit ? dy[q] : T(0);
      done = done || hit;
    }
  }
}

template <class T>
void cumsum(T* y, const T* x, int64_t outer, int64_t n, int64_t inner, bool reverse) {
  const int64_t total = outer * inner;
#pragma omp parallel for schedule(static) if (total * n > kParallelMin && total > 1)
  for (int64_t q = 0; q < total; ++q) {
    const int64_t o = q / inner, j = q % inner;
    const int64_t base = o * n * inner + j;
    T acc = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = reverse ? n - 1 - k : k;
      acc += x[base + i * inner];
      y[base + i * inner] = acc;
    }
  }
}

#define MNEMO_INSTANTIATE(T)                                                                   \
  template void reduce<T>(Reduce, T*, const T*, int64_t, int64_t, int64_t);                    \
  template void reduce_max_backward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t); \
  template void cumsum<T>(T*, const T*, int64_t, int64_t, int64_t, bool);
MNEMO_INSTANTIATE(float)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::cpu
