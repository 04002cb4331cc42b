// Benchmarks behind `mnemo bench`. Results and the command that produced them go to
// docs/BENCHMARKS.md; speed is never asserted by unit tests.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace mnemo::bench {

struct KernelsBenchOptions {
  bool quick = false;  // matmuls and the allocator only
};

int run_kernels_bench(const KernelsBenchOptions& opts);

struct TrainBenchOptions {
  std::string config;
  std::vector<std::string> sets = {};
  int steps = 10;  // timed steps (after one warm-up and one measured for memory)
  bool quiet = false;  // no progress bar or lines on stderr
  std::string precision = "";  // train.precision (f32, bf16); empty: the config's
  bool model_only = false;     // skip the trainer-loop comparison (half the time)
  std::string device = "";     // cpu or cuda (the emulated device under MNEMO_EMULATE_CUDA=1); empty: the config's
};

int run_train_bench(const TrainBenchOptions& opts);

struct GenerateBenchOptions {
  std::string config;
  std::vector<std::string> sets = {};
  int64_t length = 512;          // tokens per run
  int reps = 3;                  // runs of each, interleaved
  std::string mode = "both";     // both | cached | uncached
};

int run_generate_bench(const GenerateBenchOptions& opts);

// The CUDA kernels on the GPU (bench/cuda_bench.cpp); 77 without a CUDA build or device.
int run_cuda_bench();
void add_bench_command(CLI::App& app);

}  // namespace mnemo::bench
