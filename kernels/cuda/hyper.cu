// Hyper-connection mixing on the GPU (kernels.h HyperWidth* and HyperDepth*), the math in
// kernels/cuda/hyper_math.h. Width: one warp per row (forward) or per stream (backward)
// for the dots over D, the parameter gradients (dG, dbase, dscale) as sums over rows, one
// thread per element in double as the reference sums them, from the per-stream dc and
// dz / m the stream kernel leaves in two scratch buffers (R S C floats each). Depth: one
// thread per output element, and a warp per stream for dcoef's dots.
// Written for correctness first: a fused version would keep a row's S x D streams in
// shared memory instead of reading them once per coefficient column (C = S + 2 passes).
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/hyper_math.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.h"

namespace mnemo::kernels::cuda {

void hyper_width_forward(float* out, float* z, float* norm, const float* H, const float* G, const float* base,
                         const float* scale, int64_t R, int64_t S, int64_t D, float eps) {
  const int64_t C = S + 2, W = D + S * C;
  for_each_warp("hyper_width_forward", R, [=] __device__(int64_t r, int lane) {
    float* branch = out + r * W;
    float* coef = branch + D;
    for (int64_t i = lane; i < D; i += 32) branch[i] = 0.0f;
    for (int64_t s = 0; s < S; ++s) {
      const float* hs = H + (r * S + s) * D;
      const float n = sqrtf(warp_sum(hyper_lane_dot(hs, hs, D, lane, 32)));
      float coef0 = 0.0f;
      for (int64_t c = 0; c < C; ++c) {
        const float dot = warp_sum(hyper_lane_dot_column(hs, G, c, C, D, lane, 32));
        float zc;
        const float k = hyper_width_coefficient(dot, n, eps, base[s * C + c], scale[c], zc);
        if (lane == 0) z[(r * S + s) * C + c] = zc, coef[s * C + c] = k;
        if (c == 0) coef0 = k;
      }
      if (lane == 0) norm[r * S + s] = n;
      for (int64_t i = lane; i < D; i += 32) branch[i] += coef0 * hs[i];
    }
  });
}

void hyper_width_backward(float* dH, float* dG, float* dbase, float* dscale, const float* dout, const float* H,
                          const float* G, const float* scale, const float* out, const float* z, const float* norm,
                          int64_t R, int64_t S, int64_t D, float eps) {
  const int64_t C = S + 2, W = D + S * C, RS = R * S;
  if (RS == 0) {  // no stream: the parameter gradients are empty sums
    if (dG) fill(dG, D * C, 0.0f);
    if (dbase) fill(dbase, S * C, 0.0f);
    if (dscale) fill(dscale, C, 0.0f);
    return;
  }
  float* dc_all = static_cast<float*>(device_alloc(size_t(RS * C) * sizeof(float)));
  float* dzm_all = static_cast<float*>(device_alloc(size_t(RS * C) * sizeof(float)));
  for_each_warp("hyper_width_backward (streams)", RS, [=] __device__(int64_t rs, int lane) {
    const int64_t r = rs / S, s = rs % S;
    const float* hs = H + rs * D;
    const float* dbranch = dout + r * W;
    const float n = norm[rs], m = fmaxf(n, eps);
    const float via_branch = warp_sum(hyper_lane_dot(hs, dbranch, D, lane, 32));
    float radial = 0.0f;  // sum_c dz_c z_c
    for (int64_t c = 0; c < C; ++c) {
      const float zc = z[rs * C + c];
      const float dc = hyper_width_dc(dbranch[D + s * C + c], via_branch, c), dz = hyper_width_dz(dc, zc, scale[c]);
      radial += dz * zc;
      if (lane == 0) dc_all[rs * C + c] = dc, dzm_all[rs * C + c] = dz / m;
    }
    __syncwarp();  // lane 0's dz / m, read by every lane below
    if (!dH) return;
    const float k = hyper_width_radial(radial, n, eps), coef0 = out[r * W + D + s * C];
    for (int64_t i = lane; i < D; i += 32)
      dH[rs * D + i] = hyper_width_dh(coef0, dbranch[i], k, hs[i], G + i * C, dzm_all + rs * C, C);
  });
  if (dG)
    for_each_index("hyper_width_backward (dG)", D * C, [=] __device__(int64_t e) {
      const int64_t i = e / C, c = e % C;
      double sum = 0.0;
      for (int64_t rs = 0; rs < RS; ++rs) sum += double(H[rs * D + i]) * double(dzm_all[rs * C + c]);
      dG[e] = float(sum);
    });
  if (dbase)
    for_each_index("hyper_width_backward (dbase)", S * C, [=] __device__(int64_t sc) {
      double sum = 0.0;
      for (int64_t r = 0; r < R; ++r) sum += double(dc_all[r * S * C + sc]);
      dbase[sc] = float(sum);
    });
  if (dscale)
    for_each_index("hyper_width_backward (dscale)", C, [=] __device__(int64_t c) {
      double sum = 0.0;
      for (int64_t rs = 0; rs < RS; ++rs) sum += double(dc_all[rs * C + c]) * tanh(double(z[rs * C + c]));
      dscale[c] = float(sum);
    });
  device_free(dzm_all);  // stream order keeps both alive for the kernels queued above
  device_free(dc_all);
}

void hyper_depth_forward(float* out, const float* H, const float* coef, const float* b, int64_t R, int64_t S, int64_t D,
                         bool mix) {
  const int64_t C = S + 2;
  for_each_index("hyper_depth_forward", R * S * D, [=] __device__(int64_t e) {
    const int64_t r = e / (S * D), j = e / D % S, i = e % D;
    out[e] = hyper_depth_out(H + r * S * D, coef + r * S * C, b + r * D, S, D, j, i, mix);
  });
}

void hyper_depth_backward(float* dH, float* dcoef, float* db, const float* dout, const float* H, const float* coef,
                          const float* b, int64_t R, int64_t S, int64_t D, bool mix) {
  const int64_t C = S + 2;
  if (dH)
    for_each_index("hyper_depth_backward (dH)", R * S * D, [=] __device__(int64_t e) {
      const int64_t r = e / (S * D), s = e / D % S, i = e % D;
      dH[e] = hyper_depth_dh(dout + r * S * D, coef + r * S * C, S, D, s, i, mix);
    });
  if (db)
    for_each_index("hyper_depth_backward (db)", R * D, [=] __device__(int64_t e) {
      const int64_t r = e / D, i = e % D;
      db[e] = hyper_depth_db(dout + r * S * D, coef + r * S * C, S, D, i);
    });
  if (dcoef)
    for_each_warp("hyper_depth_backward (dcoef)", R * S, [=] __device__(int64_t rs, int lane) {
      const int64_t r = rs / S, s = rs % S;
      for (int64_t c = 0; c < C; ++c) {
        const HyperDepthDcoefRows rows =
            hyper_depth_dcoef_rows(H + r * S * D, dout + r * S * D, b + r * D, S, D, s, c, mix);
        // rows.x is the same in every lane: the whole warp sums, or none of it
        const float v = rows.x ? warp_sum(hyper_lane_dot(rows.x, rows.y, D, lane, 32)) : 0.0f;
        if (lane == 0) dcoef[rs * C + c] = v;
      }
    });
}

}  // namespace mnemo::kernels::cuda
