// Benchmarks behind `mnemo bench`. Results and the command that produced them go to
// docs/BENCHMARKS.md; speed is never asserted by unit tests.
#pragma once

#include <CLI/CLI.hpp>

namespace mnemo::bench {

struct KernelsBenchOptions {
  bool quick = false;  // matmuls and the allocator only
};

int run_kernels_bench(const KernelsBenchOptions& opts);
void add_bench_command(CLI::App& app);

}  // namespace mnemo::bench
