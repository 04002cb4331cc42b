// A scope whose OpenMP parallel regions (ours and oneDNN's) run on the calling thread alone,
// for work too small to share: below a few rows every parallel region costs a wake-up of
// the other threads that outweighs their share of the work (a cached decoder's token step,
// where two threads ran 1.9x slower than one: docs/BENCHMARKS.md, "Generation").
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

#include <cstdint>

namespace mnemo {

// A cached decoder's step of at most this many rows (streams x new tokens) runs serially.
inline constexpr int64_t kSerialDecodeRows = 8;

class SerialScope {
 public:
  explicit SerialScope(bool serial = true) {
#ifdef _OPENMP
    if (serial && omp_get_max_threads() > 1) saved_ = omp_get_max_threads(), omp_set_num_threads(1);
#else
    (void)serial;
#endif
  }
  ~SerialScope() {
#ifdef _OPENMP
    if (saved_ > 0) omp_set_num_threads(saved_);
#endif
  }
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;

 private:
  int saved_ = 0;  // the thread count to restore, 0: unchanged
};

}  // namespace mnemo
