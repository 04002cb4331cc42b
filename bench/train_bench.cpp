// `mnemo bench train CONFIG`: one experiment's training step, measured three ways.
//   model step:  train_batch on a fixed batch + clipping + AdamW (what the model costs)
//   trainer:     the run loop of `mnemo train` (data, logging, checkpoint cadence) for the
//                same steps, evaluation excluded; its excess over the model step is the
//                trainer's overhead
//   memory:      peak live tensor bytes during one step (the caching allocator's count); with
//                --device cuda the device allocator's peak, the bytes copied each way per
//                step and the host's waits for the device (what the step reads back: the
//                losses, the gradient norm)
// Rates: tokens/s at the median step; model FLOP/s counting 6 x parameters per token, and
// again with the attention products of the differentiated forwards added (ops.h,
// attention_flops), against this machine's sgemm at 1024^3 through mnemo; on a CUDA device
// against its GEMM at 8192^3 in the run's precision (the rate a GPU's figures are quoted by).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <unistd.h>

#include "autograd/ops/ops.h"
#include "common/progress.h"
#include "autograd/optim/adamw.h"
#include "bench/bench.h"
#include "bench/timing.h"
#include "experiments/bptt.h"
#include "experiments/models.h"
#include "experiments/run.h"
#include "experiments/run_data.h"
#include "experiments/on_device.h"
#include "kernels/emulated/device.h"
#include "kernels/memory.h"
#include "kernels/precision.h"


namespace mnemo::bench {
namespace {

namespace fs = std::filesystem;
using namespace mnemo::experiments;

// The best of five medians: one median swings by 20% on a shared machine, and the peak is
// what the fractions are about.
double gemm_gflops(int64_t n, Device device) {
  Rng rng(1);
  Tape tape;
  Tape::NoRecord nr(tape);
  Var a = tape.constant(Tensor::randn({n, n}, rng).to(device));
  Var b = tape.constant(Tensor::randn({n, n}, rng).to(device));
  auto product = [&] {
    (void)matmul(a, b);
    kernels::device::synchronize();  // a GPU's product is queued, not done, when matmul returns
  };
  double best = 0;
  const double flop = 2.0 * double(n) * double(n) * double(n);
  for (int i = 0; i < 5; ++i) best = std::max(best, flop / median_seconds(product) / 1e9);
  return best;
}

// What the step's FLOP/s are a fraction of: this CPU's sgemm, or a real CUDA device's GEMM
// in the run's precision (the emulated device's GEMMs are the CPU's).
struct Yardstick {
  double gflops;
  std::string name;
};
Yardstick yardstick(Device device, bool bf16) {
  if (device != Device::cuda || kernels::device::emulated()) return {gemm_gflops(1024, Device::cpu), "sgemm"};
  const kernels::MatmulPrecisionScope precision(bf16 ? kernels::MatmulPrecision::bf16 : kernels::MatmulPrecision::f32,
                                                kernels::GemmDevice::cuda);
  return {gemm_gflops(8192, Device::cuda), std::string("the device's ") + (bf16 ? "bf16" : "f32") + " GEMM at 8192^3"};
}

}  // namespace

int run_train_bench(const TrainBenchOptions& o) {
  std::vector<std::string> sets = o.sets;
  if (!o.precision.empty()) sets.push_back("train.precision=" + o.precision);
  if (!o.device.empty()) sets.push_back("device=" + o.device);
  ExperimentConfig cfg = load_config(o.config, sets);
  cfg.sweep.clear();
  const int threads = use_threads(cfg.train.threads);
  auto model = build_model(cfg);
  move_to(*model, cfg.device);  // built on the CPU, moved once, as a run does
  nn::train(*model);
  int64_t n_params = 0;
  for (Param* p : nn::params(*model)) n_params += p->value.numel();
  RunData data = make_run_data(cfg);
  AdamW opt(nn::named_params(*model), adamw_config(cfg.train.optimizer));
  BpttOptions b;
  b.mode = cfg.train.bptt;
  b.window = cfg.train.window;
  b.replay_recompute = cfg.train.replay_recompute;
  b.replay_snapshots = cfg.train.replay_snapshots;
  b.memory_dropout = cfg.train.memory_dropout;
  b.bf16 = cfg.train.precision == Precision::bf16;
  data::Batch batch = data.train->next();
  if (cfg.device == Device::cuda) batch = pinned_batch(batch);  // as the trainer's: copies from pinned memory
  arch::Memory memory = model->initial_memory(batch.batch_size());
  const int64_t tokens = data.tokens_per_batch;
  std::vector<Param*> params = opt.params();

  // Synthetic batches are independent sequences: every step starts from the initial memory,
  // as in the run loop, so the two measure the same model work.
  // Every model step counts on the progress bar (two warm-ups, the median's warm-up and reps,
  // the timed loop); a redraw costs a clock read, microseconds against a step's milliseconds.
  Progress progress({.label = "bench", .unit = "step", .total = 2 * int64_t(o.steps) + 3,
                     .rate_scale = double(tokens), .rate_unit = "tok",
                     .mode = o.quiet ? ProgressMode::off : ProgressMode::automatic});
  int64_t calls = 0;
  auto step = [&] {
    BpttResult r = train_batch(*model, batch, memory, b);
    memory = std::move(r.memory);
    clip_grad_norm(params, cfg.train.clip);
    opt.step();
    opt.zero_grad();
    progress.update(++calls);
  };
  step();
  kernels::reset_peak_memory();
  kernels::device::reset_peak();
  const size_t live_before = kernels::memory_stats().live_bytes;
  const kernels::device::Stats device_before = kernels::device::stats();
  const kernels::device::PinnedStats pinned_before = kernels::device::pinned_stats();
  step();
  const size_t peak_step = kernels::memory_stats().peak_live_bytes - live_before;
  const kernels::device::Stats device_after = kernels::device::stats();
  const kernels::device::PinnedStats pinned_after = kernels::device::pinned_stats();
  const double s = median_seconds(step, o.steps, 0);
  reset_attention_flops();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.steps; ++i) step();
  const double mean = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o.steps;
  const double attention_per_step = double(attention_flops()) / o.steps;
  progress.finish();

  // The same number of steps through the run loop of `mnemo train`.
  double loop_step = 0, per_save = 0;
  if (!o.model_only) {
    const std::string dir = (fs::temp_directory_path() / ("mnemo-bench-" + std::to_string(::getpid()))).string();
    ExperimentConfig run_cfg = cfg;
    run_cfg.train.steps = o.steps;
    run_cfg.train.eval_every = 0;
    run_cfg.train.schedule = {};  // the schedule changes no cost; a short run cannot warm up
    run_cfg.eval.batches = 1;
    run_cfg.eval.generate_every = 0;
    const RunResult run = train_run(run_cfg, {.dir = dir, .progress = false});
    fs::remove_all(dir);
    // The run writes a checkpoint at its last step; a real run writes one every
    // checkpoint_every steps, so that cost is reported per save and amortised separately.
    loop_step = (run.loop_seconds - run.checkpoint_seconds) / double(run.steps);
    per_save = run.checkpoints ? run.checkpoint_seconds / double(run.checkpoints) : 0.0;
  }

  const double gflops = 6.0 * double(n_params) * double(tokens) / s / 1e9;
  const Yardstick peak_of = yardstick(cfg.device, b.bf16);
  const double peak = peak_of.gflops;
  std::printf("config            %s (%s, %ld parameters)\n", o.config.c_str(), cfg.model.arch.c_str(), long(n_params));
  std::printf("batch             %ld x %ld segments x %ld tokens, bptt %s, %d threads\n", long(cfg.data.batch_size),
              long(cfg.data.segments), long(cfg.data.segment_len), name_of(cfg.train.bptt), threads);
  std::printf("precision         %s GEMMs%s\n", name_of(cfg.train.precision),
              cfg.train.precision == Precision::bf16
                  ? " and attention tiles (bf16 operands, f32 accumulation); norms, softmax, losses, optimizer f32"
                  : "");
  std::printf("model step        %.2f ms median over %d steps: %.0f tokens/s\n", s * 1e3, o.steps, double(tokens) / s);
  const double with_attention = gflops + attention_per_step / s / 1e9;
  std::printf("model FLOP/s      %.1f GFLOP/s (6 x params per token) = %.1f%% of %s %.1f GFLOP/s\n", gflops,
              100 * gflops / peak, peak_of.name.c_str(), peak);
  std::printf("  + attention     %.1f GFLOP/s (%.2f GFLOP of attention per step) = %.1f%% of %s\n", with_attention,
              attention_per_step / 1e9, 100 * with_attention / peak, peak_of.name.c_str());
  if (!o.model_only)
    std::printf("trainer loop      %.2f ms per step (data, log every %ld) vs %.2f ms mean model step: overhead %+.1f%%\n",
                loop_step * 1e3, long(cfg.train.log_every), mean * 1e3, 100 * (loop_step / mean - 1));
  if (!o.model_only && cfg.train.checkpoint_every > 0)
    std::printf("checkpoints       %.1f ms per save, every %ld steps: %+.2f%% of step time\n", per_save * 1e3,
                long(cfg.train.checkpoint_every), 100 * per_save / (double(cfg.train.checkpoint_every) * mean));
  std::printf("peak step memory  %.1f MiB of tensors beyond the model and optimizer; peak RSS %.1f MiB\n",
              double(peak_step) / double(1 << 20), double(peak_resident_bytes()) / double(1 << 20));
  if (cfg.device == Device::cuda) {
    std::printf("device            cuda%s\n", kernels::device::emulated() ? " (emulated on the host: the times above are "
                                                                         "the CPU kernels')" : "");
    std::printf("peak device mem   %.1f MiB live during one step (%.1f MiB reserved by the caching allocator)\n",
                double(device_after.memory.peak_live_bytes) / double(1 << 20),
                double(device_after.memory.peak_reserved_bytes) / double(1 << 20));
    std::printf("copies per step   %lu to the device (%.1f KiB; %lu of them from pinned memory), %lu to the host (%.1f KiB)\n",
                (unsigned long)(device_after.to_device - device_before.to_device),
                double(device_after.to_device_bytes - device_before.to_device_bytes) / 1024.0,
                (unsigned long)(pinned_after.to_device - pinned_before.to_device),
                (unsigned long)(device_after.to_host - device_before.to_host),
                double(device_after.to_host_bytes - device_before.to_host_bytes) / 1024.0);
    std::printf("host waits        %lu per step (copies to the host and kernel results read back)\n",
                (unsigned long)(device_after.host_waits() - device_before.host_waits()));
  }
  return 0;
}

}  // namespace mnemo::bench
