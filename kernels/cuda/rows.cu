// Row kernels over the last axis of (rows, n): softmax, cross-entropy and the three norms.
// One warp per row: each lane folds the columns lane, lane + 32, ... and the warp merges
// with shuffles (the log-sum-exp as OnlineLse states, math.h). Gain and bias gradients are
// column sums over rows: one thread per column, in double, as the reference.
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/math.h"

namespace mnemo::kernels::cuda {
namespace {

__device__ OnlineLse warp_lse(OnlineLse s) {
  for (int o = 16; o > 0; o /= 2) {
    OnlineLse other;
    other.max = __shfl_xor_sync(0xffffffffu, s.max, o);
    other.sum = __shfl_xor_sync(0xffffffffu, s.sum, o);
    s.merge(other);
  }
  return s;
}

__device__ float row_lse(const float* x, int64_t n, int lane) {
  OnlineLse s;
  for (int64_t i = lane; i < n; i += 32) s.push(x[i]);
  return warp_lse(s).value();
}

}  // namespace

void softmax_forward(float* y, const float* x, int64_t rows, int64_t n, bool log) {
  for_each_warp("softmax_forward", rows, [=] __device__(int64_t r, int lane) {
    const float* xr = x + r * n;
    const float lse = row_lse(xr, n, lane);
    const bool empty = lse == kNegInf;
    for (int64_t i = lane; i < n; i += 32) {
      const float log_p = xr[i] - lse;
      y[r * n + i] = log ? (empty ? lse : log_p) : (empty ? 0.0f : expf(log_p));
    }
  });
}

void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t n, bool log) {
  for_each_warp("softmax_backward", rows, [=] __device__(int64_t r, int lane) {
    float part = 0.0f;
    for (int64_t i = lane; i < n; i += 32) part += log ? dy[r * n + i] : dy[r * n + i] * y[r * n + i];
    const float s = warp_sum(part);
    for (int64_t i = lane; i < n; i += 32) {
      const float yi = y[r * n + i], g = dy[r * n + i];
      dx[r * n + i] = log ? g - expf(yi) * s : yi * (g - s);
    }
  });
}

void cross_entropy_forward(float* loss, float* lse, const float* logits, const int32_t* target, int64_t rows, int64_t V,
                           int32_t ignore_index) {
  for_each_warp("cross_entropy_forward", rows, [=] __device__(int64_t r, int lane) {
    const float l = row_lse(logits + r * V, V, lane);
    if (lane == 0) {
      lse[r] = l;
      loss[r] = target[r] == ignore_index ? 0.0f : l - logits[r * V + target[r]];
    }
  });
}

void cross_entropy_backward(float* dlogits, const float* dloss_rows, const float* logits, const float* lse,
                            const int32_t* target, int64_t rows, int64_t V, int32_t ignore_index) {
  for_each_index("cross_entropy_backward", rows * V, [=] __device__(int64_t e) {
    const int64_t r = e / V, i = e % V;
    const float p = expf(logits[e] - lse[r]), onehot = i == target[r] ? 1.0f : 0.0f;
    dlogits[e] = target[r] == ignore_index ? 0.0f : dloss_rows[r] * (p - onehot);
  });
}

void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gain, const float* bias,
                        int64_t rows, int64_t D, float eps) {
  for_each_warp("layer_norm_forward", rows, [=] __device__(int64_t r, int lane) {
    const float* xr = x + r * D;
    float part = 0.0f;
    for (int64_t j = lane; j < D; j += 32) part += xr[j];
    const float mu = warp_sum(part) / float(D);
    part = 0.0f;
    for (int64_t j = lane; j < D; j += 32) part += (xr[j] - mu) * (xr[j] - mu);
    const float rs = 1.0f / sqrtf(warp_sum(part) / float(D) + eps);
    if (lane == 0) mean[r] = mu, rstd[r] = rs;
    for (int64_t j = lane; j < D; j += 32)
      y[r * D + j] = (xr[j] - mu) * rs * (gain ? gain[j] : 1.0f) + (bias ? bias[j] : 0.0f);
  });
}

void layer_norm_backward(float* dx, float* dgain, float* dbias, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* gain, int64_t rows, int64_t D) {
  if (dx)
    for_each_warp("layer_norm_backward", rows, [=] __device__(int64_t r, int lane) {
      float pg = 0.0f, pgx = 0.0f;
      for (int64_t j = lane; j < D; j += 32) {
        const float g = dy[r * D + j] * (gain ? gain[j] : 1.0f), xhat = (x[r * D + j] - mean[r]) * rstd[r];
        pg += g, pgx += g * xhat;
      }
      const float mean_g = warp_sum(pg) / float(D), mean_gx = warp_sum(pgx) / float(D);
      for (int64_t j = lane; j < D; j += 32) {
        const float g = dy[r * D + j] * (gain ? gain[j] : 1.0f), xhat = (x[r * D + j] - mean[r]) * rstd[r];
        dx[r * D + j] = rstd[r] * (g - mean_g - xhat * mean_gx);
      }
    });
  if (dgain || dbias)
    for_each_index("layer_norm_backward (columns)", D, [=] __device__(int64_t j) {
      double sum_gain = 0, sum_bias = 0;
      for (int64_t r = 0; r < rows; ++r) {
        sum_gain += double(dy[r * D + j] * ((x[r * D + j] - mean[r]) * rstd[r]));
        sum_bias += double(dy[r * D + j]);
      }
      if (dgain) dgain[j] = float(sum_gain);
      if (dbias) dbias[j] = float(sum_bias);
    });
}

void rms_norm_forward(float* y, float* rstd, const float* x, const float* gain, int64_t rows, int64_t D, float eps) {
  for_each_warp("rms_norm_forward", rows, [=] __device__(int64_t r, int lane) {
    float part = 0.0f;
    for (int64_t j = lane; j < D; j += 32) part += x[r * D + j] * x[r * D + j];
    const float rs = 1.0f / sqrtf(warp_sum(part) / float(D) + eps);
    if (lane == 0) rstd[r] = rs;
    for (int64_t j = lane; j < D; j += 32) y[r * D + j] = x[r * D + j] * rs * (gain ? gain[j] : 1.0f);
  });
}

void rms_norm_backward(float* dx, float* dgain, const float* dy, const float* x, const float* rstd, const float* gain,
                       int64_t rows, int64_t D) {
  if (dx)
    for_each_warp("rms_norm_backward", rows, [=] __device__(int64_t r, int lane) {
      float part = 0.0f;
      for (int64_t j = lane; j < D; j += 32) part += dy[r * D + j] * (gain ? gain[j] : 1.0f) * x[r * D + j];
      const float mean_gx = warp_sum(part) / float(D), rs = rstd[r];
      for (int64_t j = lane; j < D; j += 32) {
        const float g = dy[r * D + j] * (gain ? gain[j] : 1.0f);
        dx[r * D + j] = rs * (g - x[r * D + j] * rs * rs * mean_gx);
      }
    });
  if (dgain)
    for_each_index("rms_norm_backward (columns)", D, [=] __device__(int64_t j) {
      double sum = 0;
      for (int64_t r = 0; r < rows; ++r) sum += double(dy[r * D + j] * x[r * D + j] * rstd[r]);
      dgain[j] = float(sum);
    });
}

void l2_norm_forward(float* y, float* norm, const float* x, int64_t rows, int64_t D, float eps) {
  for_each_warp("l2_norm_forward", rows, [=] __device__(int64_t r, int lane) {
    float part = 0.0f;
    for (int64_t j = lane; j < D; j += 32) part += x[r * D + j] * x[r * D + j];
    const float nr = sqrtf(warp_sum(part));
    if (lane == 0) norm[r] = nr;
    for (int64_t j = lane; j < D; j += 32) y[r * D + j] = x[r * D + j] / fmaxf(nr, eps);
  });
}

void l2_norm_backward(float* dx, const float* dy, const float* y, const float* norm, int64_t rows, int64_t D,
                      float eps) {
  for_each_warp("l2_norm_backward", rows, [=] __device__(int64_t r, int lane) {
    float part = 0.0f;
    for (int64_t j = lane; j < D; j += 32) part += dy[r * D + j] * y[r * D + j];
    const float dot = warp_sum(part);
    for (int64_t j = lane; j < D; j += 32)
      dx[r * D + j] = norm[r] < eps ? dy[r * D + j] / eps : (dy[r * D + j] - y[r * D + j] * dot) / norm[r];
  });
}

}  // namespace mnemo::kernels::cuda
