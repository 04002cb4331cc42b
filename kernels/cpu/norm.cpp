// Normalisations over the last axis: layer norm, RMS norm, l2-normalise. One row at a
// time (it stays in L1), SIMD loops with accumulators in the element type; forward saves
// per-row statistics and backward recomputes x-hat from them. Gain and bias gradients are
// sums over rows, accumulated per thread in double and combined once.
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace mnemo::kernels::cpu {
namespace {

// Runs body(r, acc0, acc1) for every row, where acc0/acc1 are this thread's D-wide
// accumulators; afterwards adds them into out0/out1 (either may be null).
template <class T, class F>
void rows_with_column_sums(int64_t rows, int64_t D, T* out0, T* out1, F&& body) {
  const bool want = out0 || out1;
  std::vector<double> total0(want ? size_t(D) : 0, 0.0), total1(want ? size_t(D) : 0, 0.0);
#pragma omp parallel if (rows * D > kParallelMin && rows > 1)
  {
    std::vector<double> acc0(want ? size_t(D) : 0, 0.0), acc1(want ? size_t(D) : 0, 0.0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) body(r, acc0.data(), acc1.data());
    if (want) {
#pragma omp critical
      for (int64_t j = 0; j < D; ++j) {
        total0[size_t(j)] += acc0[size_t(j)];
        total1[size_t(j)] += acc1[size_t(j)];
      }
    }
  }
  for (int64_t j = 0; j < D && want; ++j) {
    if (out0) out0[j] = T(total0[size_t(j)]);
    if (out1) out1[j] = T(total1[size_t(j)]);
  }
}

}  // namespace

template <class T>
void layer_norm_forward(T* y, T* mean, T* rstd, const T* x, const T* gain, const T* bias, int64_t rows,
                        int64_t D, T eps) {
#pragma omp parallel for schedule(static) if (rows * D > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    const T mu = row_sum(xr, D) / T(D);
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < D; ++j) ss += (xr[j] - mu) * (xr[j] - mu);  // two passes: no cancellation
    const T rs = T(1) / std::sqrt(ss / T(D) + eps);
    mean[r] = mu;
    rstd[r] = rs;
    T* yr = y + r * D;
    if (gain && bias) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) yr[j] = (xr[j] - mu) * rs * gain[j] + bias[j];
    } else if (gain) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) yr[j] = (xr[j] - mu) * rs * gain[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) yr[j] = (xr[j] - mu) * rs + (bias ? bias[j] : T(0));
    }
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gain
template <class T>
void layer_norm_backward(T* dx, T* dgain, T* dbias, const T* dy, const T* x, const T* mean, const T* rstd,
                         const T* gain, int64_t rows, int64_t D) {
  rows_with_column_sums<T>(rows, D, dgain, dbias, [&](int64_t r, double* acc_g, double* acc_b) {
    const T* xr = x + r * D;
    const T* dyr = dy + r * D;
    const T mu = mean[r], rs = rstd[r];
    T mg = 0, mgx = 0;
#pragma omp simd reduction(+ : mg, mgx)
    for (int64_t j = 0; j < D; ++j) {
      const T g = dyr[j] * (gain ? gain[j] : T(1));
      mg += g;
      mgx += g * (xr[j] - mu) * rs;
    }
    mg /= T(D);
    mgx /= T(D);
    if (dgain) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) acc_g[j] += double(dyr[j] * (xr[j] - mu) * rs);
    }
    if (dbias) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) acc_b[j] += double(dyr[j]);
    }
    if (!dx) return;
    T* dxr = dx + r * D;
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) {
      const T g = dyr[j] * (gain ? gain[j] : T(1));
      dxr[j] = rs * (g - mg - (xr[j] - mu) * rs * mgx);
    }
  });
}

template <class T>
void rms_norm_forward(T* y, T* rstd, const T* x, const T* gain, int64_t rows, int64_t D, T eps) {
#pragma omp parallel for schedule(static) if (rows * D > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    const T rs = T(1) / std::sqrt(row_dot(xr, xr, D) / T(D) + eps);
    rstd[r] = rs;
    T* yr = y + r * D;
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) yr[j] = xr[j] * rs * (gain ? gain[j] : T(1));
  }
}

// dx = rstd * (g - x * rstd^2 * mean(g * x)),  g = dy * gain
template <class T>
void rms_norm_backward(T* dx, T* dgain, const T* dy, const T* x, const T* rstd, const T* gain, int64_t rows,
                       int64_t D) {
  rows_with_column_sums<T>(rows, D, dgain, nullptr, [&](int64_t r, double* acc_g, double*) {
    const T* xr = x + r * D;
    const T* dyr = dy + r * D;
    const T rs = rstd[r];
    T mgx = 0;
#pragma omp simd reduction(+ : mgx)
    for (int64_t j = 0; j < D; ++j) mgx += dyr[j] * (gain ? gain[j] : T(1)) * xr[j];
    mgx /= T(D);
    if (dgain) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) acc_g[j] += double(dyr[j] * xr[j] * rs);
    }
    if (!dx) return;
    T* dxr = dx + r * D;
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) dxr[j] = rs * (dyr[j] * (gain ? gain[j] : T(1)) - xr[j] * rs * rs * mgx);
  });
}

template <class T>
void l2_norm_forward(T* y, T* norm, const T* x, int64_t rows, int64_t D, T eps) {
#pragma omp parallel for schedule(static) if (rows * D > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    norm[r] = std::sqrt(row_dot(xr, xr, D));
    const T inv = T(1) / std::max(norm[r], eps);
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) y[r * D + j] = xr[j] * inv;
  }
}

// Where the norm is clamped at eps the map is linear (x / eps); elsewhere
// dx = (dy - y * <dy, y>) / ||x||.
template <class T>
void l2_norm_backward(T* dx, const T* dy, const T* y, const T* norm, int64_t rows, int64_t D, T eps) {
#pragma omp parallel for schedule(static) if (rows * D > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* yr = y + r * D;
    const T* g = dy + r * D;
    T* d = dx + r * D;
    if (norm[r] < eps) {
      for (int64_t j = 0; j < D; ++j) d[j] = g[j] / eps;
      continue;
    }
    const T dot = row_dot(g, yr, D), inv = T(1) / norm[r];
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) d[j] = (g[j] - yr[j] * dot) * inv;
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
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::cpu
