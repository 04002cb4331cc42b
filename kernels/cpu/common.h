// Loop helpers shared by the fast CPU kernels: OpenMP thresholds and the strided walk.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/kernels.h"

namespace mnemo::kernels::cpu {

// Below this many elements a loop stays on one thread: fork/join costs more than it saves.
inline constexpr int64_t kParallelMin = 1 << 15;
inline constexpr int64_t kChunk = 4096;

// Calls row(out_index, offsets[3], count) for runs along the last dim of s.dims, where
// out_index is the row-major linear index of the run's first element and offsets are each
// operand's element offset there. Runs are cut into chunks so long 1-D walks parallelise.
template <class F>
void for_each_run(const Strided& s, F&& row) {
  const int r = s.rank;
  const int64_t inner = r == 0 ? 1 : s.dims[r - 1];
  int64_t rows = 1;
  for (int d = 0; d + 1 < r; ++d) rows *= s.dims[d];
  const int64_t chunks = (inner + kChunk - 1) / kChunk;
  const int64_t items = rows * chunks;
#pragma omp parallel for schedule(static) if (rows * inner > kParallelMin && items > 1)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t q = it / chunks, c = it % chunks;
    int64_t off[3] = {0, 0, 0};
    int64_t rem = q;
    for (int d = r - 2; d >= 0; --d) {
      const int64_t i = rem % s.dims[d];
      rem /= s.dims[d];
      for (int k = 0; k < 3; ++k) off[k] += i * s.strides[k][d];
    }
    const int64_t start = c * kChunk;
    if (r > 0)
      for (int k = 0; k < 3; ++k) off[k] += start * s.strides[k][r - 1];
    row(q * inner + start, off, std::min(kChunk, inner - start));
  }
}

// Sums and dot products along one contiguous row, vectorised.
template <class T>
T row_sum(const T* x, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += x[j];
  return s;
}

template <class T>
T row_dot(const T* x, const T* y, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += x[j] * y[j];
  return s;
}

inline int64_t inner_stride(const Strided& s, int k) { return s.rank == 0 ? 0 : s.strides[k][s.rank - 1]; }

}  // namespace mnemo::kernels::cpu
