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
  tr->add_option("--precision", t->precision, "train.precision for the step: f32 or bf16 (the config's if absent)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  tr->add_flag("--model-only", t->model_only, "Time the model step only, not the trainer loop");
  tr->add_option("--device", t->device, "cpu or cuda (the config's if absent); cuda also reports peak device memory")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  tr->callback([t] { throw CLI::RuntimeError(run_train_bench(*t)); });
  auto g = std::make_shared<GenerateBenchOptions>();
  CLI::App* ge = cmd->add_subcommand("generate", "Generation tokens/s with the model's cache and without, interleaved");
  ge->add_option("config", g->config, "Experiment YAML file")->required();
  ge->add_option("--set", g->sets, "Override a config key (repeatable)");
  ge->add_option("--length", g->length, "Tokens per run")->capture_default_str()->check(CLI::PositiveNumber);
  ge->add_option("--reps", g->reps, "Runs of each")->capture_default_str()->check(CLI::PositiveNumber);
  ge->add_option("--mode", g->mode, "both, cached or uncached")->capture_default_str()
      ->check(CLI::IsMember({"both", "cached", "uncached"}));
  ge->callback([g] { throw CLI::RuntimeError(run_generate_bench(*g)); });
  CLI::App* c = cmd->add_subcommand("cuda", "CUDA kernels on the GPU: GEMM rate, fused attention at the medium shape");
  c->callback([] { throw CLI::RuntimeError(run_cuda_bench()); });
}

}  // namespace mnemo::bench
