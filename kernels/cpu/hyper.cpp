// Hyper-connection mixing (kernels.h, HyperWidth* and HyperDepth*). Each row r holds one
// token's S streams (S x D, a few KiB): a row is read once, from L1, for every product
// the mixing needs, where the composite ops (normalise, scale, project, two batched
// products, a broadcast multiply-add) made a pass over all rows each.
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec.h"

namespace mnemo::kernels::cpu {
namespace {

// y += a x
template <class T>
void add_scaled(T* y, const T* x, T a, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) y[j] += a * x[j];
}

// G (D, C) -> its transpose (C, D): the columns become contiguous rows for the dots.
template <class T>
std::vector<T> transposed(const T* G, int64_t D, int64_t C) {
  std::vector<T> gt(size_t(C * D));
  for (int64_t d = 0; d < D; ++d)
    for (int64_t c = 0; c < C; ++c) gt[size_t(c * D + d)] = G[d * C + c];
  return gt;
}

bool parallel_rows(int64_t R, int64_t S, int64_t D) { return R > 1 && R * S * D > kParallelMin; }

}  // namespace

template <class T>
void hyper_width_forward(T* out, T* z, T* norm, const T* H, const T* G, const T* base, const T* scale, int64_t R,
                         int64_t S, int64_t D, T eps) {
  const int64_t C = S + 2, W = D + S * C;
  const std::vector<T> gt = transposed(G, D, C);
#pragma omp parallel for schedule(static) if (parallel_rows(R, S, D))
  for (int64_t r = 0; r < R; ++r) {
    const T* h = H + r * S * D;
    T* branch = out + r * W;
    T* coef = branch + D;
    for (int64_t s = 0; s < S; ++s) {
      const T* hs = h + s * D;
      const T n = std::sqrt(row_dot(hs, hs, D)), inv = T(1) / std::max(n, eps);
      norm[r * S + s] = n;
      T* zs = z + (r * S + s) * C;
      for (int64_t c = 0; c < C; ++c) zs[c] = row_dot(hs, gt.data() + c * D, D) * inv;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) coef[s * C + c] = base[s * C + c] + scale[c] * fast_tanh(zs[c]);
    }
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) branch[j] = 0;
    for (int64_t s = 0; s < S; ++s) add_scaled(branch, h + s * D, coef[s * C], D);
  }
}

// Per row and stream, with u = tanh(z), m = max(||h||, eps) and dc the coefficient gradient
// (the output's plus <h, d branch> in column 0):
//   dz = dc scale (1 - u^2);  dh = coef_0 d branch + sum_c (dz_c / m) G[:, c] - [||h|| >= eps] (sum_c dz_c z_c / m) h / ||h||
//   dG[:, c] += h dz_c / m;  dbase += dc;  dscale[c] += dc_c u_c
template <class T>
void hyper_width_backward(T* dH, T* dG, T* dbase, T* dscale, const T* dout, const T* H, const T* G, const T* scale,
                          const T* out, const T* z, const T* norm, int64_t R, int64_t S, int64_t D, T eps) {
  const int64_t C = S + 2, W = D + S * C;
  const std::vector<T> gt = transposed(G, D, C);
  std::vector<double> dgt_total(dG ? size_t(C * D) : 0, 0.0), dbase_total(size_t(S * C), 0.0), dscale_total(size_t(C), 0.0);
#pragma omp parallel if (parallel_rows(R, S, D))
  {
    std::vector<T> dgt(dG ? size_t(C * D) : 0, T(0)), db(size_t(S * C), T(0)), ds(size_t(C), T(0)), dz(size_t(C), T(0));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      const T* h = H + r * S * D;
      const T* dbranch = dout + r * W;
      const T* dcoef = dbranch + D;
      const T* coef = out + r * W + D;
      for (int64_t s = 0; s < S; ++s) {
        const T* hs = h + s * D;
        const T n = norm[r * S + s], m = std::max(n, eps);
        const T* zs = z + (r * S + s) * C;
        const T via_branch = row_dot(hs, dbranch, D);
        T radial = 0;  // sum_c dz_c z_c
#pragma omp simd reduction(+ : radial)
        for (int64_t c = 0; c < C; ++c) {
          const T dc = dcoef[s * C + c] + (c == 0 ? via_branch : T(0));
          const T u = fast_tanh(zs[c]);
          db[size_t(s * C + c)] += dc;
          ds[size_t(c)] += dc * u;
          dz[size_t(c)] = dc * scale[c] * (T(1) - u * u);
          radial += dz[size_t(c)] * zs[c];
        }
        for (int64_t c = 0; c < C; ++c) dz[size_t(c)] /= m;  // now d loss / d <h, G[:, c]>
        if (dG)
          for (int64_t c = 0; c < C; ++c) add_scaled(dgt.data() + c * D, hs, dz[size_t(c)], D);
        if (!dH) continue;
        T* dhs = dH + (r * S + s) * D;
        const T k = n >= eps && n > 0 ? -radial / (m * n) : T(0);
        const T c0 = coef[s * C];
#pragma omp simd
        for (int64_t j = 0; j < D; ++j) dhs[j] = c0 * dbranch[j] + k * hs[j];
        for (int64_t c = 0; c < C; ++c) add_scaled(dhs, gt.data() + c * D, dz[size_t(c)], D);
      }
    }
#pragma omp critical
    {
      for (size_t i = 0; i < dgt.size(); ++i) dgt_total[i] += double(dgt[i]);
      for (size_t i = 0; i < db.size(); ++i) dbase_total[i] += double(db[i]);
      for (size_t i = 0; i < ds.size(); ++i) dscale_total[i] += double(ds[i]);
    }
  }
  if (dG)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t c = 0; c < C; ++c) dG[d * C + c] = T(dgt_total[size_t(c * D + d)]);
  for (int64_t i = 0; dbase && i < S * C; ++i) dbase[i] = T(dbase_total[size_t(i)]);
  for (int64_t c = 0; dscale && c < C; ++c) dscale[c] = T(dscale_total[size_t(c)]);
}

template <class T>
void hyper_depth_forward(T* out, const T* H, const T* coef, const T* b, int64_t R, int64_t S, int64_t D, bool mix) {
  const int64_t C = S + 2;
#pragma omp parallel for schedule(static) if (parallel_rows(R, S, D))
  for (int64_t r = 0; r < R; ++r) {
    const T* h = H + r * S * D;
    const T* cf = coef + r * S * C;
    const T* br = b + r * D;
    for (int64_t j = 0; j < S; ++j) {
      T* o = out + (r * S + j) * D;
      const T beta = cf[j * C + C - 1];
      if (!mix) {
#pragma omp simd
        for (int64_t i = 0; i < D; ++i) o[i] = h[j * D + i] + beta * br[i];
        continue;
      }
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) o[i] = beta * br[i];
      for (int64_t s = 0; s < S; ++s) add_scaled(o, h + s * D, cf[s * C + 1 + j], D);
    }
  }
}

template <class T>
void hyper_depth_backward(T* dH, T* dcoef, T* db, const T* dout, const T* H, const T* coef, const T* b, int64_t R,
                          int64_t S, int64_t D, bool mix) {
  const int64_t C = S + 2;
#pragma omp parallel for schedule(static) if (parallel_rows(R, S, D))
  for (int64_t r = 0; r < R; ++r) {
    const T* h = H + r * S * D;
    const T* cf = coef + r * S * C;
    const T* g = dout + r * S * D;
    const T* br = b + r * D;
    if (db) {
      T* dbr = db + r * D;
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) dbr[i] = 0;
      for (int64_t j = 0; j < S; ++j) add_scaled(dbr, g + j * D, cf[j * C + C - 1], D);
    }
    if (dcoef) {
      T* dc = dcoef + r * S * C;
      for (int64_t s = 0; s < S; ++s) {
        dc[s * C] = 0;
        dc[s * C + C - 1] = row_dot(g + s * D, br, D);
        for (int64_t j = 0; j < S; ++j) dc[s * C + 1 + j] = mix ? row_dot(h + s * D, g + j * D, D) : T(0);
      }
    }
    if (!dH) continue;
    for (int64_t s = 0; s < S; ++s) {
      T* dh = dH + (r * S + s) * D;
      if (!mix) {
#pragma omp simd
        for (int64_t i = 0; i < D; ++i) dh[i] = g[s * D + i];
        continue;
      }
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) dh[i] = 0;
      for (int64_t j = 0; j < S; ++j) add_scaled(dh, g + j * D, cf[s * C + 1 + j], D);
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
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::cpu
