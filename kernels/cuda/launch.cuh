// Grid-stride launches of a device lambda (nvcc --extended-lambda) over n items, or one warp
// per item, on the run's stream, and the odometer of a Strided walk for one linear index.
#pragma once

#include "kernels/cuda/check.h"
#include "kernels/kernels.h"

namespace mnemo::kernels::cuda {

template <class F>
__global__ void each_kernel(int64_t n, F f) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) f(i);
}

// f(i) for i < n, in any order; `name` names the kernel in a launch error.
template <class F>
void for_each_index(const char* name, int64_t n, F f) {
  if (n <= 0) return;
  constexpr int kThreads = 256;
  each_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(n, f);
  MNEMO_CUDA_LAUNCHED(name);
}

// One warp per item (rows of a row kernel, streams of the hyper-connections): each lane folds
// a strided share of the item, the warp merges with shuffles.
constexpr int kWarpsPerBlock = 4;

// The sum over the warp, in every lane (xor butterfly: each lane adds the same pairs).
__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <class F>
__global__ void warps_kernel(int64_t items, F f) {
  const int lane = threadIdx.x % 32;
  const int64_t first = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  for (int64_t w = first; w < items; w += int64_t(gridDim.x) * kWarpsPerBlock) f(w, lane);
}

// f(item, lane), one warp per item; every lane of a warp walks the same items (shuffles).
template <class F>
void for_each_warp(const char* name, int64_t items, F f) {
  if (items <= 0) return;
  warps_kernel<<<blocks_for(items, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream()>>>(items, f);
  MNEMO_CUDA_LAUNCHED(name);
}

// The element offsets of linear index i in operands 0..2 of s.
__device__ inline void strided_offsets(const Strided& s, int64_t i, int64_t off[3]) {
  off[0] = off[1] = off[2] = 0;
  for (int d = s.rank - 1; d >= 0; --d) {
    const int64_t idx = i % s.dims[d];
    i /= s.dims[d];
    for (int k = 0; k < 3; ++k) off[k] += idx * s.strides[k][d];
  }
}

inline int64_t strided_count(const Strided& s) {
  int64_t n = 1;
  for (int d = 0; d < s.rank; ++d) n *= s.dims[d];
  return n;
}

}  // namespace mnemo::kernels::cuda
