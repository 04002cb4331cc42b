// Fused attention on the GPU, tiled with an online softmax: no Tq x Tk matrix is stored,
// backward recomputes the scores from q, k and the saved log-sum-exp (FlashAttention-2's
// split: one kernel owns dk, dv per key, one owns dq and dbias per query row). Same mask
// description and bias as the CPU kernels (kernels.h AttentionDesc); the per-tile math is
// math.h's AttnRow and attention_backward_*_tile, tested on the CPU. Keys and queries move
// through shared memory in tiles of kAttnTile rows, zero-padded to the head width D (32,
// 64 or 128) the kernel is instantiated for. Under AttentionDesc::bf16 the products' operands
// are rounded to bf16 as they are loaded (P and dS where the tile steps make them), with f32
// accumulation, as the cpu backend's bf16 tiles: the numbers bf16 tensor cores would read,
// in f32 arithmetic (no tensor cores yet).
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/math.h"
#include "kernels/cuda/runtime.h"

namespace mnemo::kernels::cuda {
namespace {

constexpr int kRows = 64;  // query rows (forward, dq) or keys (dk, dv) per block: one per thread

// rows x D floats of a tile from `src` (rows of d floats, `have` of them), zero past d and
// past `have`; rounded to bf16 under a.bf16 (attention_operand), once per tile.
template <int D>
__device__ void load_tile(const AttentionDesc& a, float* tile, const float* src, int64_t have) {
  for (int e = threadIdx.x; e < kAttnTile * D; e += blockDim.x) {
    const int t = e / D, c = e % D;
    tile[e] = t < have && c < a.d ? attention_operand(a, src[t * a.d + c]) : 0.0f;
  }
}

template <int D>
__device__ void load_row(const AttentionDesc& a, float* dst, const float* src) {
  for (int c = 0; c < D; ++c) dst[c] = c < a.d ? attention_operand(a, src[c]) : 0.0f;
}

__device__ int64_t kv_offset(const AttentionDesc& a, int64_t b, int64_t h) {
  return (b * a.Hk + (a.Hk == 1 ? 0 : h)) * a.Tk * a.d;
}

// The keys some row of this block can see ([first, last] of main keys, plus the prefix):
// tiles outside are skipped by the whole block (causal attention halves its work so).
__device__ void block_key_range(const AttentionDesc& a, int64_t i, bool active, long long* lo_hi) {
  if (threadIdx.x == 0) lo_hi[0] = 1LL << 62, lo_hi[1] = -1;
  __syncthreads();
  if (active) {
    int64_t lo, hi;
    attention_row_interval(a, i, lo, hi);
    if (lo <= hi) {
      atomicMin(&lo_hi[0], (long long)lo);
      atomicMax(&lo_hi[1], (long long)hi);
    }
  }
  __syncthreads();
}

__device__ bool tile_needed(const AttentionDesc& a, int64_t j0, const long long* lo_hi) {
  if (j0 < a.prefix) return true;
  const int64_t last = j0 + kAttnTile - 1 - a.prefix, first = j0 - a.prefix;
  return lo_hi[0] <= lo_hi[1] && last >= lo_hi[0] && first <= lo_hi[1];
}

template <int D>
__global__ void forward_kernel(AttentionDesc a, float* o, float* lse, const float* q, const float* k, const float* v,
                               const float* bias) {
  __shared__ float K[kAttnTile * D], V[kAttnTile * D];
  __shared__ long long lo_hi[2];
  const int64_t b = blockIdx.z, h = blockIdx.y, i = int64_t(blockIdx.x) * kRows + threadIdx.x;
  const bool active = i < a.Tq;
  const int64_t r = (b * a.H + h) * a.Tq + i;
  AttnRow<D> row;
  float qr[D];
  if (active) {
    row.start(a, b, h, i);
    load_row<D>(a, qr, q + r * a.d);
  }
  block_key_range(a, i, active, lo_hi);
  const float* kb = k + kv_offset(a, b, h);
  const float* vb = v + kv_offset(a, b, h);
  const float* bias_row = active ? attention_bias_row(a, bias, b, h, i) : nullptr;
  for (int64_t j0 = 0; j0 < a.Tk; j0 += kAttnTile) {
    if (!tile_needed(a, j0, lo_hi)) continue;  // the same for every thread of the block
    const int64_t n = a.Tk - j0 < kAttnTile ? a.Tk - j0 : kAttnTile;
    load_tile<D>(a, K, kb + j0 * a.d, n);
    load_tile<D>(a, V, vb + j0 * a.d, n);
    __syncthreads();
    if (active) row.forward_tile(a, qr, K, V, bias_row, j0, int(n));
    __syncthreads();
  }
  if (active) row.finish(o + r * a.d, lse + r, a.d);
}

// dk, dv of one key per thread, over every query tile of every head that reads the key.
template <int D>
__global__ void backward_kv_kernel(AttentionDesc a, float* dk, float* dv, const float* dout, const float* q,
                                   const float* k, const float* v, const float* bias, const float* lse,
                                   const float* Drow) {
  __shared__ float Q[kAttnTile * D], dO[kAttnTile * D], L[kAttnTile], Dr[kAttnTile];
  const int64_t b = blockIdx.z, hk = blockIdx.y, j = int64_t(blockIdx.x) * kRows + threadIdx.x;
  const bool active = j < a.Tk;
  const int64_t kr = (b * a.Hk + hk) * a.Tk + j;
  float kj[D], vj[D], dkj[D], dvj[D];
  for (int c = 0; c < D; ++c) dkj[c] = dvj[c] = 0.0f;
  if (active) {
    load_row<D>(a, kj, k + kr * a.d);
    load_row<D>(a, vj, v + kr * a.d);
  }
  const int64_t h_first = a.Hk == 1 ? 0 : hk, h_end = a.Hk == 1 ? a.H : hk + 1;
  for (int64_t h = h_first; h < h_end; ++h)
    for (int64_t i0 = 0; i0 < a.Tq; i0 += kAttnTile) {
      const int64_t n = a.Tq - i0 < kAttnTile ? a.Tq - i0 : kAttnTile, r0 = (b * a.H + h) * a.Tq + i0;
      load_tile<D>(a, Q, q + r0 * a.d, n);
      load_tile<D>(a, dO, dout + r0 * a.d, n);
      for (int t = threadIdx.x; t < kAttnTile; t += blockDim.x) {
        L[t] = t < n ? lse[r0 + t] : kNegInf;
        Dr[t] = t < n ? Drow[r0 + t] : 0.0f;
      }
      __syncthreads();
      if (active) attention_backward_kv_tile<D>(a, b, h, j, kj, vj, Q, dO, L, Dr, bias, i0, int(n), dkj, dvj);
      __syncthreads();
    }
  if (active)
    for (int64_t c = 0; c < a.d; ++c) dk[kr * a.d + c] = dkj[c], dv[kr * a.d + c] = dvj[c];
}

// dq (and dbias) of one query row per thread. With a bias shared by the batch, one thread
// walks every batch for its (h, i), so its dbias row has one writer.
template <int D>
__global__ void backward_q_kernel(AttentionDesc a, float* dq, float* dbias, const float* dout, const float* q,
                                  const float* k, const float* v, const float* bias, const float* lse,
                                  const float* Drow, bool batches_in_thread) {
  __shared__ float K[kAttnTile * D], V[kAttnTile * D];
  __shared__ long long lo_hi[2];
  const int64_t h = blockIdx.y, i = int64_t(blockIdx.x) * kRows + threadIdx.x;
  const bool active = i < a.Tq;
  const int64_t b_first = batches_in_thread ? 0 : blockIdx.z, b_end = batches_in_thread ? a.B : b_first + 1;
  int64_t lo = 0, hi = -1;
  if (active) attention_row_interval(a, i, lo, hi);
  block_key_range(a, i, active, lo_hi);
  if (active && dbias && batches_in_thread) {
    float* row = dbias + (h * a.Tq + i) * a.Tk;
    for (int64_t j = 0; j < a.Tk; ++j) row[j] = 0.0f;
  }
  for (int64_t b = b_first; b < b_end; ++b) {
    const int64_t r = (b * a.H + h) * a.Tq + i;
    float qr[D], dor[D], dqr[D];
    for (int c = 0; c < D; ++c) dqr[c] = 0.0f;
    float* dbias_row = nullptr;
    if (active) {
      load_row<D>(a, qr, q + r * a.d);
      load_row<D>(a, dor, dout + r * a.d);
      if (dbias) {
        dbias_row = dbias + (((a.bias_per_batch ? b * a.H : 0) + h) * a.Tq + i) * a.Tk;
        if (!batches_in_thread)
          for (int64_t j = 0; j < a.Tk; ++j) dbias_row[j] = 0.0f;
      }
    }
    const float* kb = k + kv_offset(a, b, h);
    const float* vb = v + kv_offset(a, b, h);
    for (int64_t j0 = 0; j0 < a.Tk; j0 += kAttnTile) {
      if (!tile_needed(a, j0, lo_hi)) continue;
      const int64_t n = a.Tk - j0 < kAttnTile ? a.Tk - j0 : kAttnTile;
      load_tile<D>(a, K, kb + j0 * a.d, n);
      load_tile<D>(a, V, vb + j0 * a.d, n);
      __syncthreads();
      if (active)
        attention_backward_q_tile<D>(a, b, h, i, lo, hi, qr, dor, lse[r], Drow[r], K, V,
                                     attention_bias_row(a, bias, b, h, i), j0, int(n), dqr, dbias_row);
      __syncthreads();
    }
    if (active)
      for (int64_t c = 0; c < a.d; ++c) dq[r * a.d + c] = dqr[c];
  }
}

int width_or_throw(const AttentionDesc& a, const char* op) {
  const int w = attention_width(a.d);
  if (w == 0)
    throw std::invalid_argument(std::string("[") + op +
                                "] the CUDA kernel takes head sizes up to 128, got d = " + std::to_string(a.d));
  return w;
}

template <int D>
void forward(const AttentionDesc& a, float* o, float* lse, const float* q, const float* k, const float* v,
             const float* bias) {
  const dim3 grid(unsigned((a.Tq + kRows - 1) / kRows), unsigned(a.H), unsigned(a.B));
  forward_kernel<D><<<grid, kRows, 0, stream()>>>(a, o, lse, q, k, v, bias);
  MNEMO_CUDA_LAUNCHED("attention_forward");
}

template <int D>
void backward(const AttentionDesc& a, float* dq, float* dk, float* dv, float* dbias, const float* dout, const float* q,
              const float* k, const float* v, const float* bias, const float* lse, const float* Drow) {
  const dim3 kv_grid(unsigned((a.Tk + kRows - 1) / kRows), unsigned(a.Hk), unsigned(a.B));
  backward_kv_kernel<D><<<kv_grid, kRows, 0, stream()>>>(a, dk, dv, dout, q, k, v, bias, lse, Drow);
  MNEMO_CUDA_LAUNCHED("attention_backward (dk, dv)");
  const bool batches_in_thread = dbias && !a.bias_per_batch;
  const dim3 q_grid(unsigned((a.Tq + kRows - 1) / kRows), unsigned(a.H), unsigned(batches_in_thread ? 1 : a.B));
  backward_q_kernel<D><<<q_grid, kRows, 0, stream()>>>(a, dq, dbias, dout, q, k, v, bias, lse, Drow, batches_in_thread);
  MNEMO_CUDA_LAUNCHED("attention_backward (dq, dbias)");
}

}  // namespace

void attention_forward(const AttentionDesc& a, float* o, float* lse, const float* q, const float* k, const float* v,
                       const float* bias) {
  if (a.B * a.H * a.Tq == 0) return;
  switch (width_or_throw(a, "attention_forward")) {
    case 32:
      return forward<32>(a, o, lse, q, k, v, bias);
    case 64:
      return forward<64>(a, o, lse, q, k, v, bias);
    default:
      return forward<128>(a, o, lse, q, k, v, bias);
  }
}

void attention_backward(const AttentionDesc& a, float* dq, float* dk, float* dv, float* dbias, const float* dout,
                        const float* q, const float* k, const float* v, const float* bias, const float* o,
                        const float* lse) {
  if (a.B * a.H * a.Tq == 0) {  // no query: nothing flows back to the keys
    fill(dk, a.B * a.Hk * a.Tk * a.d, 0.0f);
    fill(dv, a.B * a.Hk * a.Tk * a.d, 0.0f);
    return;
  }
  const int w = width_or_throw(a, "attention_backward");
  // Drow_i = <dout_i, o_i>, one per query row, in a buffer from the device cache
  const int64_t rows = a.B * a.H * a.Tq, d = a.d;
  float* Drow = static_cast<float*>(device_alloc(size_t(rows) * sizeof(float)));
  for_each_index("attention_backward (rowsum)", rows, [=] __device__(int64_t r) {
    float s = 0.0f;
    for (int64_t c = 0; c < d; ++c) s += dout[r * d + c] * o[r * d + c];
    Drow[r] = s;
  });
  switch (w) {
    case 32:
      backward<32>(a, dq, dk, dv, dbias, dout, q, k, v, bias, lse, Drow);
      break;
    case 64:
      backward<64>(a, dq, dk, dv, dbias, dout, q, k, v, bias, lse, Drow);
      break;
    default:
      backward<128>(a, dq, dk, dv, dbias, dout, q, k, v, bias, lse, Drow);
      break;
  }
  device_free(Drow);  // stream order keeps it alive for the kernels queued above
}

}  // namespace mnemo::kernels::cuda
