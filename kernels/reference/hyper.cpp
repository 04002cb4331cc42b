// Reference hyper-connection mixing, straight from the formulas in kernels.h. Per row r
// (one token) there are S streams h_s = H[r, s] of width D and C = S + 2 coefficient
// columns. The parameter gradients (dG, dbase, dscale) sum over rows; each is computed
// by a loop over its own elements so that threads never share an accumulator.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {
namespace {

template <class T>
T dot(const T* x, const T* y, int64_t n) {
  T s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

// <h, G[:, c]>, G (D, C) row-major
template <class T>
T dot_column(const T* h, const T* G, int64_t c, int64_t D, int64_t C) {
  T s = 0;
  for (int64_t i = 0; i < D; ++i) s += h[i] * G[i * C + c];
  return s;
}

}  // namespace

// coef[s, c] = base[s, c] + scale[c] tanh(z[s, c]),  z[s, c] = <h_s, G[:, c]> / max(||h_s||, eps)
// out[r] = (sum_s coef[s, 0] h_s, coef)
template <class T>
void hyper_width_forward(T* out, T* z, T* norm, const T* H, const T* G, const T* base, const T* scale, int64_t R,
                         int64_t S, int64_t D, T eps) {
  const int64_t C = S + 2, W = D + S * C;
#pragma omp parallel for if (worth_threads(R * S * D * C))
  for (int64_t r = 0; r < R; ++r) {
    T* coef = out + r * W + D;
    for (int64_t s = 0; s < S; ++s) {
      const T* h = H + (r * S + s) * D;
      norm[r * S + s] = std::sqrt(dot(h, h, D));
      const T m = std::max(norm[r * S + s], eps);
      for (int64_t c = 0; c < C; ++c) {
        z[(r * S + s) * C + c] = dot_column(h, G, c, D, C) / m;
        coef[s * C + c] = base[s * C + c] + scale[c] * std::tanh(z[(r * S + s) * C + c]);
      }
    }
    for (int64_t i = 0; i < D; ++i) {
      T branch = 0;
      for (int64_t s = 0; s < S; ++s) branch += coef[s * C] * H[(r * S + s) * D + i];
      out[r * W + i] = branch;
    }
  }
}

// With dc[s, c] the coefficient's whole gradient (dout's coefficient part, plus <h_s, dbranch>
// in column 0), u = tanh(z), n = ||h_s||, m = max(n, eps) and dz = dc scale (1 - u^2):
//   dbase = sum_r dc,  dscale[c] = sum_{r,s} dc u,  dG[:, c] = sum_{r,s} h_s dz_c / m,
//   dh_s = coef[s, 0] dbranch + sum_c dz_c (G[:, c] / m - [n >= eps] z_c h_s / (m n))
// (the last term is z's dependence on h through its norm; below eps the norm is a constant).
template <class T>
void hyper_width_backward(T* dH, T* dG, T* dbase, T* dscale, const T* dout, const T* H, const T* G, const T* scale,
                          const T* out, const T* z, const T* norm, int64_t R, int64_t S, int64_t D, T eps) {
  const int64_t C = S + 2, W = D + S * C;
  // dc and dz for every (r, s, c): every gradient below is a sum or a product of these.
  std::vector<T> dc(size_t(R * S * C)), dz(size_t(R * S * C));
#pragma omp parallel for if (worth_threads(R * S * D))
  for (int64_t r = 0; r < R; ++r)
    for (int64_t s = 0; s < S; ++s) {
      const T* h = H + (r * S + s) * D;
      const T* dbranch = dout + r * W;
      for (int64_t c = 0; c < C; ++c) {
        const int64_t at = (r * S + s) * C + c;
        const T u = std::tanh(z[at]);
        dc[size_t(at)] = dout[r * W + D + s * C + c] + (c == 0 ? dot(h, dbranch, D) : T(0));
        dz[size_t(at)] = dc[size_t(at)] * scale[c] * (T(1) - u * u);
      }
    }
  if (dbase)
    for (int64_t sc = 0; sc < S * C; ++sc) {
      double sum = 0;
      for (int64_t r = 0; r < R; ++r) sum += double(dc[size_t(r * S * C + sc)]);
      dbase[sc] = T(sum);
    }
  if (dscale)
    for (int64_t c = 0; c < C; ++c) {
      double sum = 0;
      for (int64_t rs = 0; rs < R * S; ++rs) sum += double(dc[size_t(rs * C + c)]) * std::tanh(double(z[rs * C + c]));
      dscale[c] = T(sum);
    }
  if (dG) {
#pragma omp parallel for if (worth_threads(R * S * D * C))
    for (int64_t i = 0; i < D; ++i)
      for (int64_t c = 0; c < C; ++c) {
        double sum = 0;
        for (int64_t rs = 0; rs < R * S; ++rs)
          sum += double(H[rs * D + i]) * double(dz[size_t(rs * C + c)]) / double(std::max(norm[rs], eps));
        dG[i * C + c] = T(sum);
      }
  }
  if (!dH) return;
#pragma omp parallel for if (worth_threads(R * S * D * C))
  for (int64_t r = 0; r < R; ++r)
    for (int64_t s = 0; s < S; ++s) {
      const int64_t rs = r * S + s;
      const T n = norm[rs], m = std::max(n, eps);
      const T* h = H + rs * D;
      T radial = 0;  // sum_c dz_c z_c
      for (int64_t c = 0; c < C; ++c) radial += dz[size_t(rs * C + c)] * z[rs * C + c];
      const bool through_norm = n >= eps && n > T(0);
      for (int64_t i = 0; i < D; ++i) {
        T g = out[r * W + D + s * C] * dout[r * W + i];  // coef[s, 0] dbranch
        for (int64_t c = 0; c < C; ++c) g += dz[size_t(rs * C + c)] * G[i * C + c] / m;
        if (through_norm) g -= radial * h[i] / (m * n);
        dH[rs * D + i] = g;
      }
    }
}

// out[j] = (mix ? sum_s coef[s, 1 + j] h_s : h_j) + coef[j, S + 1] b
template <class T>
void hyper_depth_forward(T* out, const T* H, const T* coef, const T* b, int64_t R, int64_t S, int64_t D, bool mix) {
  const int64_t C = S + 2;
#pragma omp parallel for if (worth_threads(R * S * S * D))
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < S; ++j)
      for (int64_t i = 0; i < D; ++i) {
        T v = 0;
        if (mix)
          for (int64_t s = 0; s < S; ++s) v += coef[(r * S + s) * C + 1 + j] * H[(r * S + s) * D + i];
        else
          v = H[(r * S + j) * D + i];
        out[(r * S + j) * D + i] = v + coef[(r * S + j) * C + S + 1] * b[r * D + i];
      }
}

//   dh_s = mix ? sum_j coef[s, 1 + j] dout_j : dout_s
//   dcoef[s, 0] = 0,  dcoef[s, 1 + j] = mix ? <h_s, dout_j> : 0,  dcoef[j, S + 1] = <dout_j, b>
//   db = sum_j coef[j, S + 1] dout_j
template <class T>
void hyper_depth_backward(T* dH, T* dcoef, T* db, const T* dout, const T* H, const T* coef, const T* b, int64_t R,
                          int64_t S, int64_t D, bool mix) {
  const int64_t C = S + 2;
#pragma omp parallel for if (worth_threads(R * S * S * D))
  for (int64_t r = 0; r < R; ++r) {
    const T* g = dout + r * S * D;  // dout_j = g + j D
    for (int64_t s = 0; dH && s < S; ++s)
      for (int64_t i = 0; i < D; ++i) {
        T v = 0;
        if (mix)
          for (int64_t j = 0; j < S; ++j) v += coef[(r * S + s) * C + 1 + j] * g[j * D + i];
        else
          v = g[s * D + i];
        dH[(r * S + s) * D + i] = v;
      }
    for (int64_t s = 0; dcoef && s < S; ++s) {
      T* dc = dcoef + (r * S + s) * C;
      dc[0] = 0;
      for (int64_t j = 0; j < S; ++j) dc[1 + j] = mix ? dot(H + (r * S + s) * D, g + j * D, D) : T(0);
      dc[S + 1] = dot(g + s * D, b + r * D, D);
    }
    for (int64_t i = 0; db && i < D; ++i) {
      T v = 0;
      for (int64_t j = 0; j < S; ++j) v += coef[(r * S + j) * C + S + 1] * g[j * D + i];
      db[r * D + i] = v;
    }
  }
}

#define MNEMO_INSTANTIATE(T)                                                                                    \
  template void hyper_width_forward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t,   \
                                       int64_t, T);                                                             \
  template void hyper_width_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*,      \
                                        const T*, const T*, int64_t, int64_t, int64_t, T);                      \
  template void hyper_depth_forward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, bool);      \
  template void hyper_depth_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t,  \
                                        int64_t, bool);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
