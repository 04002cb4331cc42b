// CPU dropout. The keep mask is a pure function of (seed, element index), so
// backward regenerates it instead of storing it, and any thread count gives the same mask.
#include "common/random_hash.h"
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace mnemo::kernels::cpu {

template <class T>
void dropout(T* y, const T* x, int64_t n, T p, uint64_t seed) {
  const T scale = p < T(1) ? T(1) / (T(1) - p) : T(0);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = uniform01(seed, uint64_t(i)) >= double(p) ? x[i] * scale : T(0);
}

template void dropout<float>(float*, const float*, int64_t, float, uint64_t);

}  // namespace mnemo::kernels::cpu
