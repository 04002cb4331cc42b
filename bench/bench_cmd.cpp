// `mnemo bench <what>`.
#include "bench/bench.h"

namespace mnemo::bench {

void add_bench_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("bench", "Benchmarks (results belong in docs/BENCHMARKS.md)");
  cmd->require_subcommand(1);
  auto opts = std::make_shared<KernelsBenchOptions>();
  CLI::App* k = cmd->add_subcommand("kernels", "Machine limits, then each kernel through mnemo's ops");
  k->add_flag("--quick", opts->quick, "Matmuls and the allocator only");
  k->callback([opts] { throw CLI::RuntimeError(run_kernels_bench(*opts)); });
  auto t = std::make_shared<TrainBenchOptions>();
  CLI::App* tr = cmd->add_subcommand("train", "One experiment's training step: tokens/s, FLOP/s, trainer overhead, memory");
  tr->add_option("config", t->config, "Experiment YAML file")->required();
  tr->add_option("--set", t->sets, "Override a config key (repeatable)");
  tr->add_option("--steps", t->steps, "Timed steps")->capture_default_str();
  tr->add_flag("--quiet", t->quiet, "No progress bar or lines");
  tr->callback([t] { throw CLI::RuntimeError(run_train_bench(*t)); });
  CLI::App* c = cmd->add_subcommand("cuda", "CUDA kernels on the GPU: GEMM rate, fused attention at the medium shape");
  c->callback([] { throw CLI::RuntimeError(run_cuda_bench()); });
}

}  // namespace mnemo::bench
