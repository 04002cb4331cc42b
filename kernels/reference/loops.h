// What the reference kernels share: when a loop is worth threads, and the walk over a
// Strided description one element at a time.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace mnemo::kernels::ref {

// Threads only pay for themselves on loops this long (in element operations); below, the
// fork and join cost more than the work. Gradient checks run thousands of tiny calls.
inline bool worth_threads(int64_t work) { return work > (1 << 15); }

// Calls f(i, off) for every element of s.dims in row-major order, i its linear index and
// off[k] its element offset in operand k. An odometer, so no division per element.
template <class F>
void for_each_element(const Strided& s, F&& f) {
  int64_t n = 1;
  for (int d = 0; d < s.rank; ++d) n *= s.dims[d];
  int64_t idx[kMaxDims] = {}, off[3] = {0, 0, 0};
  for (int64_t i = 0; i < n; ++i) {
    f(i, static_cast<const int64_t*>(off));
    for (int d = s.rank - 1; d >= 0; --d) {  // next index: carry from the last dim
      for (int k = 0; k < 3; ++k) off[k] += s.strides[k][d];
      if (++idx[d] < s.dims[d]) break;
      for (int k = 0; k < 3; ++k) off[k] -= s.dims[d] * s.strides[k][d];
      idx[d] = 0;
    }
  }
}

}  // namespace mnemo::kernels::ref
