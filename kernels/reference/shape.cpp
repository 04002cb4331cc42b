// Reference data movement along the middle axis of (outer, n, inner) views: block copies
// (slice, concat, pad, split), gather (index_select, embedding) and its adjoint
// scatter-add. An index of -1 is a hole: zeros out, nothing back.
#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {

template <class T>
void copy_axis(T* dst, const T* src, const AxisCopy& d) {
  for (int64_t o = 0; o < d.outer; ++o)
    for (int64_t i = 0; i < d.len; ++i)
      for (int64_t j = 0; j < d.inner; ++j) {
        const T v = src[(o * d.src_n + d.src_off + i) * d.inner + j];
        T& to = dst[(o * d.dst_n + d.dst_off + i) * d.inner + j];
        to = d.accumulate ? to + v : v;
      }
}

template <class T>
void gather(T* out, const T* x, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n_idx; ++i)
      for (int64_t j = 0; j < inner; ++j)
        out[(o * n_idx + i) * inner + j] = idx[i] < 0 ? T(0) : x[(o * n_src + idx[i]) * inner + j];
}

// Repeated indices add into the same row: the loop over indices stays serial.
template <class T>
void scatter_add(T* dx, const T* dy, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx,
                 int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n_idx; ++i)
      if (idx[i] >= 0)
        for (int64_t j = 0; j < inner; ++j) dx[(o * n_src + idx[i]) * inner + j] += dy[(o * n_idx + i) * inner + j];
}

#define MNEMO_INSTANTIATE(T)                                                                             \
  template void copy_axis<T>(T*, const T*, const AxisCopy&);                                             \
  template void gather<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t);              \
  template void scatter_add<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
