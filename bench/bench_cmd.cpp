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
}

}  // namespace mnemo::bench
