// CPU data movement along one axis: block copies (slice, concat, pad, split),
// gather (index_select, embedding) and its adjoint scatter-add; an index of -1 is a hole: zeros
// out, nothing back.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace mnemo::kernels::cpu {

template <class T>
void copy_axis(T* dst, const T* src, const AxisCopy& d) {
  const int64_t run = d.len * d.inner;
#pragma omp parallel for schedule(static) if (d.outer * run > kParallelMin && d.outer > 1)
  for (int64_t o = 0; o < d.outer; ++o) {
    T* out = dst + (o * d.dst_n + d.dst_off) * d.inner;
    const T* in = src + (o * d.src_n + d.src_off) * d.inner;
    if (d.accumulate) {
      for (int64_t i = 0; i < run; ++i) out[i] += in[i];
    } else {
      std::memcpy(out, in, size_t(run) * sizeof(T));
    }
  }
}

template <class T>
void gather(T* out, const T* x, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx, int64_t inner) {
  const int64_t chunks = (n_idx + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (outer * n_idx * inner > kParallelMin && outer * chunks > 1)
  for (int64_t q = 0; q < outer * chunks; ++q) {  // chunks of indices: parallel even when outer is 1
    const int64_t o = q / chunks, i0 = (q % chunks) * kChunk, i1 = std::min(n_idx, i0 + kChunk);
    const T* __restrict src = x + o * n_src * inner;
    T* __restrict dst = out + o * n_idx * inner;
    if (inner == 1) {  // single elements (relative-position shifts): a vector gather, not a memcpy each
#pragma omp simd
      for (int64_t i = i0; i < i1; ++i) dst[i] = idx[i] >= 0 ? src[idx[i]] : T(0);
    } else {
      for (int64_t i = i0; i < i1; ++i)
        if (idx[i] >= 0) std::memcpy(dst + i * inner, src + idx[i] * inner, size_t(inner) * sizeof(T));
        else std::memset(dst + i * inner, 0, size_t(inner) * sizeof(T));
    }
  }
}

// Repeated indices add into the same row, so threads split the inner dim, never the indices.
template <class T>
void scatter_add(T* dx, const T* dy, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx,
                 int64_t inner) {
  const int64_t bands = (inner + 63) / 64;
#pragma omp parallel for schedule(static) if (outer * n_idx * inner > kParallelMin && outer * bands > 1)
  for (int64_t q = 0; q < outer * bands; ++q) {
    const int64_t o = q / bands, j0 = (q % bands) * 64, j1 = std::min(inner, j0 + 64);
    for (int64_t i = 0; i < n_idx; ++i) {
      if (idx[i] < 0) continue;  // a hole (index_select_or_zero)
      T* to = dx + (o * n_src + idx[i]) * inner;
      const T* from = dy + (o * n_idx + i) * inner;
      for (int64_t j = j0; j < j1; ++j) to[j] += from[j];
    }
  }
}

void transpose_blocked(int64_t rows, int64_t cols, const float* __restrict src, int64_t ld, float* __restrict dst) {
  constexpr int64_t kBlock = 64, kTile = 8;
  const int64_t row_blocks = (rows + kBlock - 1) / kBlock, col_blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for collapse(2) schedule(static) if (rows * cols > kParallelMin && row_blocks * col_blocks > 1)
  for (int64_t cb = 0; cb < col_blocks; ++cb)
    for (int64_t rb = 0; rb < row_blocks; ++rb) {
      const int64_t r_end = std::min(rows, (rb + 1) * kBlock), c_end = std::min(cols, (cb + 1) * kBlock);
      for (int64_t r0 = rb * kBlock; r0 < r_end; r0 += kTile)
        for (int64_t c0 = cb * kBlock; c0 < c_end; c0 += kTile) {
          const int64_t r1 = std::min(r_end, r0 + kTile), c1 = std::min(c_end, c0 + kTile);
          for (int64_t c = c0; c < c1; ++c)
            for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * ld + c];
        }
    }
}

#define MNEMO_INSTANTIATE(T)                                                                            \
  template void copy_axis<T>(T*, const T*, const AxisCopy&);                                            \
  template void gather<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t);             \
  template void scatter_add<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t);
MNEMO_INSTANTIATE(float)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::cpu
