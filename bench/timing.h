// Timing helpers for benchmarks: the median of repeated runs after a warm-up, and a table
// row printer. Medians, not means: the machines are shared and noisy.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace mnemo::bench {

// Applies a config's train.threads (0: the runtime's default) and returns the thread count
// the bench runs with, for its header line.
inline int use_threads(int64_t requested) {
#ifdef _OPENMP
  if (requested > 0) omp_set_num_threads(int(requested));
  return omp_get_max_threads();
#else
  (void)requested;
  return 1;
#endif
}

template <class F>
double median_seconds(F&& f, int reps = 11, double min_total = 0.2) {
  f();  // warm-up: primitive creation, caches, first-touch pages
  std::vector<double> t;
  double total = 0;
  while (int(t.size()) < reps || (total < min_total && t.size() < 200)) {
    const auto a = std::chrono::steady_clock::now();
    f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
    t.push_back(s);
    total += s;
  }
  std::nth_element(t.begin(), t.begin() + long(t.size() / 2), t.end());
  return t[t.size() / 2];
}

struct Row {
  std::string kernel, shape;
  double seconds = 0;
  double rate = 0;       // GFLOP/s or GB/s
  const char* unit = "GFLOP/s";
  double fraction = 0;   // of the measured peak for that unit
};

inline void print_header() {
  std::printf("%-34s %-22s %12s %12s %8s  %s\n", "kernel", "shape", "median (ms)", "rate", "unit", "of peak");
}

inline void print_row(const Row& r) {
  std::printf("%-34s %-22s %12.4f %12.1f %8s  %5.1f%%\n", r.kernel.c_str(), r.shape.c_str(), r.seconds * 1e3, r.rate,
              r.unit, r.fraction * 100);
  std::fflush(stdout);
}

}  // namespace mnemo::bench
