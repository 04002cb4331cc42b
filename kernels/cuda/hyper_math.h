// The hyper-connection kernels' math (kernels.h HyperWidth* and HyperDepth*) as MNEMO_HD
// functions: kernels/cuda/hyper.cu calls exactly these, and tests/kernels/test_cuda_math.cpp
// runs them on the CPU in the kernels' order against the reference backend.
// The width kernels give one warp to a row r (forward) or to a stream (r, s) (backward): a
// lane folds the elements lane, lane + 32, ... of each dot over D (hyper_lane_dot*), the warp
// sums the 32 partials, and every lane then holds the same sums and computes the same
// per-coefficient scalars. The depth kernels are elementwise, one thread per output element.
// C++17, <cmath> only: nvcc 11.8 compiles it too.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/hd.h"

namespace mnemo::kernels::cuda {

// A lane's share of <x, y> over n elements: x[i] y[i] for i = lane, lane + lanes, ...
MNEMO_HD float hyper_lane_dot(const float* x, const float* y, int64_t n, int lane, int lanes) {
  float s = 0.0f;
  for (int64_t i = lane; i < n; i += lanes) s += x[i] * y[i];
  return s;
}

// A lane's share of <h, G[:, c]>, G (D, C) row-major.
MNEMO_HD float hyper_lane_dot_column(const float* h, const float* G, int64_t c, int64_t C, int64_t D, int lane,
                                     int lanes) {
  float s = 0.0f;
  for (int64_t i = lane; i < D; i += lanes) s += h[i] * G[i * C + c];
  return s;
}

// ---- width forward ----

// z = <h, G[:, c]> / max(||h||, eps) and the coefficient base + scale tanh(z), from the two sums.
MNEMO_HD float hyper_width_coefficient(float dot, float norm, float eps, float base, float scale, float& z) {
  z = dot / fmaxf(norm, eps);
  return base + scale * tanhf(z);
}

// ---- width backward, per stream (r, s) and coefficient column c ----

// The coefficient's whole gradient: dout's coefficient part, plus <h, d branch> in column 0.
MNEMO_HD float hyper_width_dc(float dcoef, float via_branch, int64_t c) {
  return dcoef + (c == 0 ? via_branch : 0.0f);
}

// d loss / d z from dc (through coef = base + scale tanh z).
MNEMO_HD float hyper_width_dz(float dc, float z, float scale) {
  const float u = tanhf(z);
  return dc * scale * (1.0f - u * u);
}

// The factor k of h in dh (z's dependence on h through its norm): -sum_c dz_c z_c / (m n),
// 0 when the norm is clamped at eps (a constant there) or zero.
MNEMO_HD float hyper_width_radial(float radial, float norm, float eps) {
  return norm >= eps && norm > 0.0f ? -radial / (fmaxf(norm, eps) * norm) : 0.0f;
}

// dh[i] = coef_0 dbranch[i] + k h[i] + sum_c dzm[c] G[i, c], dzm = dz / max(||h||, eps).
MNEMO_HD float hyper_width_dh(float coef0, float dbranch_i, float k, float h_i, const float* G_row, const float* dzm,
                              int64_t C) {
  float g = coef0 * dbranch_i + k * h_i;
  for (int64_t c = 0; c < C; ++c) g += dzm[c] * G_row[c];
  return g;
}

// ---- depth: one output element each; H, coef, dout and b point at row r ----

// out[j][i] = (mix ? sum_s coef[s, 1 + j] H[s][i] : H[j][i]) + coef[j, S + 1] b[i]
MNEMO_HD float hyper_depth_out(const float* H, const float* coef, const float* b, int64_t S, int64_t D, int64_t j,
                               int64_t i, bool mix) {
  const int64_t C = S + 2;
  float v = 0.0f;
  if (mix)
    for (int64_t s = 0; s < S; ++s) v += coef[s * C + 1 + j] * H[s * D + i];
  else
    v = H[j * D + i];
  return v + coef[j * C + S + 1] * b[i];
}

// dH[s][i] = mix ? sum_j coef[s, 1 + j] dout[j][i] : dout[s][i]
MNEMO_HD float hyper_depth_dh(const float* dout, const float* coef, int64_t S, int64_t D, int64_t s, int64_t i,
                              bool mix) {
  if (!mix) return dout[s * D + i];
  const int64_t C = S + 2;
  float v = 0.0f;
  for (int64_t j = 0; j < S; ++j) v += coef[s * C + 1 + j] * dout[j * D + i];
  return v;
}

// db[i] = sum_j coef[j, S + 1] dout[j][i]
MNEMO_HD float hyper_depth_db(const float* dout, const float* coef, int64_t S, int64_t D, int64_t i) {
  const int64_t C = S + 2;
  float v = 0.0f;
  for (int64_t j = 0; j < S; ++j) v += coef[j * C + S + 1] * dout[j * D + i];
  return v;
}

// dcoef[s, c] is a dot over D: which two rows of width D, or none (the entry is 0).
// Column 0 gets nothing, 1 + j gets <H[s], dout[j]> when mixing, S + 1 gets <dout[s], b>.
struct HyperDepthDcoefRows {
  const float* x = nullptr;
  const float* y = nullptr;
};
MNEMO_HD HyperDepthDcoefRows hyper_depth_dcoef_rows(const float* H, const float* dout, const float* b, int64_t S,
                                                    int64_t D, int64_t s, int64_t c, bool mix) {
  HyperDepthDcoefRows r;
  if (c == S + 1)
    r.x = dout + s * D, r.y = b;
  else if (c >= 1 && mix)
    r.x = H + s * D, r.y = dout + (c - 1) * D;
  return r;
}

}  // namespace mnemo::kernels::cuda
