// Grid-stride launches of a device lambda (nvcc --extended-lambda) over n items on the
// run's stream, and the odometer of a Strided walk for one linear index.
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
