// Reference kernels on flat vectors: fill, axpy, the two whole-tensor checks the
// optimizer and the trainer run (sum of squares, non-finite count), and dropout.
#include <cmath>

#include "common/random_hash.h"
#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {

template <class T>
void fill(T* y, int64_t n, T value) {
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}

template <class T>
void axpy(T* y, const T* x, int64_t n, T alpha) {
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// In double whatever T is: a gradient norm over millions of floats.
template <class T>
void sum_squares(double* out, const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
  *out = s;
}

template <class T>
int64_t count_non_finite(const T* x, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) ++c;
  return c;
}

// The keep decision is the shared counter-based hash of (seed, i), so every backend drops
// the same elements and backward regenerates the mask instead of storing it.
template <class T>
void dropout(T* y, const T* x, int64_t n, T p, uint64_t seed) {
  const T scale = p < T(1) ? T(1) / (T(1) - p) : T(0);
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = uniform01(seed, uint64_t(i)) >= double(p);
    y[i] = keep ? x[i] * scale : T(0);
  }
}

#define MNEMO_INSTANTIATE(T)                                   \
  template void fill<T>(T*, int64_t, T);                       \
  template void axpy<T>(T*, const T*, int64_t, T);             \
  template void sum_squares<T>(double*, const T*, int64_t);           \
  template int64_t count_non_finite<T>(const T*, int64_t);     \
  template void dropout<T>(T*, const T*, int64_t, T, uint64_t);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
