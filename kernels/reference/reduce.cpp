// Reference reductions along the middle axis of an (outer, n, inner) view, the max
// reduction's backward, and cumulative sums along the same axis.
#include <limits>

#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {

template <class T>
void reduce(Reduce op, T* y, const T* x, int64_t outer, int64_t n, int64_t inner) {
#pragma omp parallel for if (worth_threads(outer * n * inner))
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      double sum = 0;
      T max = -std::numeric_limits<T>::infinity();
      for (int64_t i = 0; i < n; ++i) {
        const T v = x[(o * n + i) * inner + j];
        sum += double(v);
        if (v > max) max = v;
      }
      y[o * inner + j] = op == Reduce::sum ? T(sum) : max;
    }
}

// The gradient goes to the first position that holds the maximum, as a subgradient.
template <class T>
void reduce_max_backward(T* dx, const T* dy, const T* x, const T* y, int64_t outer, int64_t n, int64_t inner) {
#pragma omp parallel for if (worth_threads(outer * n * inner))
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      bool found = false;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t at = (o * n + i) * inner + j;
        const bool first_max = !found && x[at] == y[o * inner + j];
        dx[at] = first_max ? dy[o * inner + j] : T(0);
        found = found || first_max;
      }
    }
}

template <class T>
void cumsum(T* y, const T* x, int64_t outer, int64_t n, int64_t inner, bool reverse) {
#pragma omp parallel for if (worth_threads(outer * n * inner))
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      T sum = 0;
      for (int64_t k = 0; k < n; ++k) {
        const int64_t i = reverse ? n - 1 - k : k;
        sum += x[(o * n + i) * inner + j];
        y[(o * n + i) * inner + j] = sum;
      }
    }
}

#define MNEMO_INSTANTIATE(T)                                                                          \
  template void reduce<T>(Reduce, T*, const T*, int64_t, int64_t, int64_t);                           \
  template void reduce_max_backward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);  \
  template void cumsum<T>(T*, const T*, int64_t, int64_t, int64_t, bool);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
