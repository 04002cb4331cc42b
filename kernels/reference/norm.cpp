// Reference normalisations over the last axis of (rows, D): layer norm, RMS norm and
// l2-normalise. Forward saves per-row statistics; backward rebuilds x-hat from them.
// Gain and bias gradients are column sums over rows, one column per loop iteration, so
// threads never share an accumulator.
#include <algorithm>
#include <cmath>

#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {

// y = (x - mean) rstd gain + bias,  rstd = 1 / sqrt(var + eps), var the biased variance
template <class T>
void layer_norm_forward(T* y, T* mean, T* rstd, const T* x, const T* gain, const T* bias, int64_t rows,
                        int64_t D, T eps) {
#pragma omp parallel for if (worth_threads(rows * D))
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    T sum = 0;
    for (int64_t j = 0; j < D; ++j) sum += xr[j];
    const T mu = sum / T(D);
    T sq = 0;
    for (int64_t j = 0; j < D; ++j) sq += (xr[j] - mu) * (xr[j] - mu);
    const T rs = T(1) / std::sqrt(sq / T(D) + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (int64_t j = 0; j < D; ++j)
      y[r * D + j] = (xr[j] - mu) * rs * (gain ? gain[j] : T(1)) + (bias ? bias[j] : T(0));
  }
}

// With xhat = (x - mean) rstd and g = dy gain:
//   dx = rstd (g - mean_j(g) - xhat mean_j(g xhat)),  dgain = sum_rows dy xhat,  dbias = sum_rows dy
template <class T>
void layer_norm_backward(T* dx, T* dgain, T* dbias, const T* dy, const T* x, const T* mean, const T* rstd,
                         const T* gain, int64_t rows, int64_t D) {
  auto xhat = [&](int64_t r, int64_t j) { return (x[r * D + j] - mean[r]) * rstd[r]; };
  if (dx) {
#pragma omp parallel for if (worth_threads(rows * D))
    for (int64_t r = 0; r < rows; ++r) {
      T mean_g = 0, mean_gx = 0;
      for (int64_t j = 0; j < D; ++j) {
        const T g = dy[r * D + j] * (gain ? gain[j] : T(1));
        mean_g += g / T(D);
        mean_gx += g * xhat(r, j) / T(D);
      }
      for (int64_t j = 0; j < D; ++j) {
        const T g = dy[r * D + j] * (gain ? gain[j] : T(1));
        dx[r * D + j] = rstd[r] * (g - mean_g - xhat(r, j) * mean_gx);
      }
    }
  }
#pragma omp parallel for if (worth_threads(rows * D))
  for (int64_t j = 0; j < D; ++j) {
    double sum_gain = 0, sum_bias = 0;
    for (int64_t r = 0; r < rows; ++r) {
      sum_gain += double(dy[r * D + j] * xhat(r, j));
      sum_bias += double(dy[r * D + j]);
    }
    if (dgain) dgain[j] = T(sum_gain);
    if (dbias) dbias[j] = T(sum_bias);
  }
}

// y = x rstd gain,  rstd = 1 / sqrt(mean_j(x^2) + eps)
template <class T>
void rms_norm_forward(T* y, T* rstd, const T* x, const T* gain, int64_t rows, int64_t D, T eps) {
#pragma omp parallel for if (worth_threads(rows * D))
  for (int64_t r = 0; r < rows; ++r) {
    T sq = 0;
    for (int64_t j = 0; j < D; ++j) sq += x[r * D + j] * x[r * D + j];
    rstd[r] = T(1) / std::sqrt(sq / T(D) + eps);
    for (int64_t j = 0; j < D; ++j) y[r * D + j] = x[r * D + j] * rstd[r] * (gain ? gain[j] : T(1));
  }
}

// With g = dy gain:  dx = rstd (g - x rstd^2 mean_j(g x)),  dgain = sum_rows dy x rstd
template <class T>
void rms_norm_backward(T* dx, T* dgain, const T* dy, const T* x, const T* rstd, const T* gain, int64_t rows,
                       int64_t D) {
  if (dx) {
#pragma omp parallel for if (worth_threads(rows * D))
    for (int64_t r = 0; r < rows; ++r) {
      T mean_gx = 0;
      for (int64_t j = 0; j < D; ++j) mean_gx += dy[r * D + j] * (gain ? gain[j] : T(1)) * x[r * D + j] / T(D);
      for (int64_t j = 0; j < D; ++j) {
        const T g = dy[r * D + j] * (gain ? gain[j] : T(1));
        dx[r * D + j] = rstd[r] * (g - x[r * D + j] * rstd[r] * rstd[r] * mean_gx);
      }
    }
  }
  if (!dgain) return;
#pragma omp parallel for if (worth_threads(rows * D))
  for (int64_t j = 0; j < D; ++j) {
    double sum = 0;
    for (int64_t r = 0; r < rows; ++r) sum += double(dy[r * D + j] * x[r * D + j] * rstd[r]);
    dgain[j] = T(sum);
  }
}

// y = x / max(||x||, eps); saves ||x|| itself, unclamped.
template <class T>
void l2_norm_forward(T* y, T* norm, const T* x, int64_t rows, int64_t D, T eps) {
#pragma omp parallel for if (worth_threads(rows * D))
  for (int64_t r = 0; r < rows; ++r) {
    T sq = 0;
    for (int64_t j = 0; j < D; ++j) sq += x[r * D + j] * x[r * D + j];
    norm[r] = std::sqrt(sq);
    for (int64_t j = 0; j < D; ++j) y[r * D + j] = x[r * D + j] / std::max(norm[r], eps);
  }
}

// Where the norm is clamped at eps the map is x / eps, linear; elsewhere
// dx = (dy - y <dy, y>) / ||x||.
template <class T>
void l2_norm_backward(T* dx, const T* dy, const T* y, const T* norm, int64_t rows, int64_t D, T eps) {
#pragma omp parallel for if (worth_threads(rows * D))
  for (int64_t r = 0; r < rows; ++r) {
    T dot = 0;
    for (int64_t j = 0; j < D; ++j) dot += dy[r * D + j] * y[r * D + j];
    for (int64_t j = 0; j < D; ++j)
      dx[r * D + j] = norm[r] < eps ? dy[r * D + j] / eps : (dy[r * D + j] - y[r * D + j] * dot) / norm[r];
  }
}

#define MNEMO_INSTANTIATE(T)                                                                                   \
  template void layer_norm_forward<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, T);          \
  template void layer_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t,  \
                                       int64_t);                                                               \
  template void rms_norm_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, T);                          \
  template void rms_norm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t);        \
  template void l2_norm_forward<T>(T*, T*, const T*, int64_t, int64_t, T);                                     \
  template void l2_norm_backward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, T);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
