// Reference normalisations over the last axis: layer norm, RMS norm, l2-normalise.
// Forward saves per-row statistics; backward recomputes x-hat from them. Gain and bias
// gradients are sums over rows, accumulated per thread and combined once.
#include <cmath>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {
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
    double s = 0, ss = 0;
    for (int64_t j = 0; j < D; ++j) s += double(xr[j]);
    const double mu = s / double(D);
    for (int64_t j = 0; j < D; ++j) ss += (double(xr[j]) - mu) * (double(xr[j]) - mu);
    const T rs = T(1.0 / std::sqrt(ss / double(D) + double(eps)));
    mean[r] = T(mu);
    rstd[r] = rs;
    T* yr = y + r * D;
    for (int64_t j = 0; j < D; ++j) {
      T v = (xr[j] - T(mu)) * rs;
      if (gain) v *= gain[j];
      if (bias) v += bias[j];
      yr[j] = v;
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
    double mg = 0, mgx = 0;
    for (int64_t j = 0; j < D; ++j) {
      const double xh = double(xr[j] - mean[r]) * double(rstd[r]);
      const double g = double(dyr[j]) * (gain ? double(gain[j]) : 1.0);
      mg += g;
      mgx += g * xh;
      if (dgain) acc_g[j] += double(dyr[j]) * xh;
      if (dbias) acc_b[j] += double(dyr[j]);
    }
    mg /= double(D);
    mgx /= double(D);
    if (!dx) return;
    T* dxr = dx + r * D;
    for (int64_t j = 0; j < D; ++j) {
      const double xh = double(xr[j] - mean[r]) * double(rstd[r]);
      const double g = double(dyr[j]) * (gain ? double(gain[j]) : 1.0);
      dxr[j] = T(double(rstd[r]) * (g - mg - xh * mgx));
    }
  });
}

template <class T>
void rms_norm_forward(T* y, T* rstd, const T* x, const T* gain, int64_t rows, int64_t D, T eps) {
#pragma omp parallel for schedule(static) if (rows * D > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    double ss = 0;
    for (int64_t j = 0; j < D; ++j) ss += double(xr[j]) * double(xr[j]);
    const T rs = T(1.0 / std::sqrt(ss / double(D) + double(eps)));
    rstd[r] = rs;
    T* yr = y + r * D;
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
    const double rs = double(rstd[r]);
    double mgx = 0;
    for (int64_t j = 0; j < D; ++j) {
      const double g = double(dyr[j]) * (gain ? double(gain[j]) : 1.0);
      mgx += g * double(xr[j]);
      if (dgain) acc_g[j] += double(dyr[j]) * double(xr[j]) * rs;
    }
    mgx /= double(D);
    if (!dx) return;
    T* dxr = dx + r * D;
    for (int64_t j = 0; j < D; ++j) {
      const double g = double(dyr[j]) * (gain ? double(gain[j]) : 1.0);
      dxr[j] = T(rs * (g - double(xr[j]) * rs * rs * mgx));
    }
  });
}

template <class T>
void l2_norm_forward(T* y, T* norm, const T* x, int64_t rows, int64_t D, T eps) {
#pragma omp parallel for schedule(static) if (rows * D > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    double ss = 0;
    for (int64_t j = 0; j < D; ++j) ss += double(xr[j]) * double(xr[j]);
    norm[r] = T(std::sqrt(ss));
    const T denom = std::max(norm[r], eps);
    for (int64_t j = 0; j < D; ++j) y[r * D + j] = xr[j] / denom;
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
    double dot = 0;
    for (int64_t j = 0; j < D; ++j) dot += double(g[j]) * double(yr[j]);
    for (int64_t j = 0; j < D; ++j) d[j] = (g[j] - yr[j] * T(dot)) / norm[r];
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
