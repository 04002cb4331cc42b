// Pinned host buffers for data and checkpoints (docs/CUDA.md), on the emulated device in
// every build: a trainer step on Device::cuda copies its batch data (tokens, masked targets)
// to the device from pinned memory only, evaluation too, with no new pinned backing
// allocation in a steady-state step; a CPU run allocates no pinned memory. A checkpoint of
// device tensors copies each one to the host once, into a pinned staging buffer, and reads
// back byte for byte. Bit-identity with the CPU run is test_emulated_device's.
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <fstream>
#include <string>

#include "experiments/checkpoint.h"
#include "experiments/config.h"
#include "experiments/evaluate.h"
#include "experiments/models.h"
#include "experiments/on_device.h"
#include "experiments/run_data.h"
#include "experiments/trainer.h"
#include "kernels/emulated/device.h"
#include "tests/support/temp_dir.h"

using namespace mnemo;
using namespace mnemo::experiments;
using kernels::device::ScopedEmulation;
namespace dev = kernels::device;

namespace {

constexpr int64_t kB = 2, kS = 3, kT = 8;  // the tiny config's batch, segments, segment length

ExperimentConfig tiny(const test::TempDir& tmp) {
  const std::string path = tmp / "pinned.yaml";
  std::ofstream(path) << "name: pinned\nseed: 5\n"
                      << "data: {kind: synthetic, task: copy, copy_len: 3, segments: " << kS << ", segment_len: " << kT
                      << ", batch_size: " << kB << "}\n"
                      << "model: {arch: transformer_xl, dim: 16, depth: 2, heads: 2, transformer_xl: {mem_len: 8}}\n"
                         "train: {steps: 3, bptt: full, threads: 1, optimizer: {lr: 0.01}}\n"
                         "eval: {batches: 2}\n";
  return load_config(path);
}

// A model of the tiny config on `device`, its data, optimizer and trainer.
struct Run {
  std::unique_ptr<arch::SegmentModel> model;
  RunData data;
  AdamW opt;
  Trainer trainer;
  Run(const ExperimentConfig& cfg, Device device)
      : model(on(build_model(cfg), device)),
        data(make_run_data(cfg)),
        opt(nn::named_params(*model), adamw_config(cfg.train.optimizer)),
        trainer(*model, *data.train, opt, {.bptt = {.mode = BpttMode::full}, .seed = 3}) {}
  static std::unique_ptr<arch::SegmentModel> on(std::unique_ptr<arch::SegmentModel> m, Device device) {
    move_to(*m, device);
    return m;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(pinned_buffers)

BOOST_AUTO_TEST_CASE(a_device_step_copies_its_batch_from_pinned_memory) {
  test::TempDir tmp("mnemo-pinned");
  const ExperimentConfig cfg = tiny(tmp);
  ScopedEmulation emulate;
  const uint64_t live = dev::pinned_stats().live_blocks;
  std::vector<double> losses;
  {
    Run run(cfg, Device::cuda);
    losses.push_back(run.trainer.step().loss);
    const dev::PinnedStats first = dev::pinned_stats();
    BOOST_TEST(first.memory.backing_allocs > 0u);
    for (int i = 0; i < 2; ++i) {
      const dev::PinnedStats p0 = dev::pinned_stats();
      losses.push_back(run.trainer.step().loss);
      const dev::PinnedStats p1 = dev::pinned_stats();
      // Each segment's tokens (the embedding) and masked targets (the loss), once each.
      BOOST_TEST(p1.to_device - p0.to_device == uint64_t(2 * kS));
      BOOST_TEST(p1.to_device_bytes - p0.to_device_bytes == uint64_t(2 * kS * kB * kT) * sizeof(int32_t));
      BOOST_TEST(p1.memory.allocations > p0.memory.allocations);
    }
    // Steps two and three: every pinned block from the cache.
    BOOST_TEST(dev::pinned_stats().memory.backing_allocs == first.memory.backing_allocs);
    BOOST_TEST(dev::pinned_stats().live_blocks == live);  // the batches are gone with their steps

    // Evaluation: each segment's tokens and targets, from pinned memory.
    const dev::PinnedStats e0 = dev::pinned_stats();
    nn::eval(*run.model);
    const EvalResult e = evaluate(*run.model, run.data.eval);
    BOOST_TEST(e.tokens > 0);
    const int64_t segments = int64_t(run.data.eval.size()) * kS;
    BOOST_TEST(dev::pinned_stats().to_device - e0.to_device == uint64_t(2 * segments));
  }
  // The same steps on the CPU: the same losses, and no pinned memory at all.
  const dev::PinnedStats p0 = dev::pinned_stats();
  const uint64_t to_device = dev::stats().to_device;
  Run cpu(cfg, Device::cpu);
  for (double loss : losses) BOOST_TEST(cpu.trainer.step().loss == loss);
  nn::eval(*cpu.model);
  (void)evaluate(*cpu.model, cpu.data.eval);
  BOOST_TEST(dev::pinned_stats().memory.allocations == p0.memory.allocations);
  BOOST_TEST(dev::pinned_stats().live_blocks == p0.live_blocks);
  BOOST_TEST(dev::stats().to_device == to_device);
}

BOOST_AUTO_TEST_CASE(a_device_checkpoint_copies_each_tensor_to_the_host_once) {
  test::TempDir tmp("mnemo-pinned-ckpt");
  const ExperimentConfig cfg = tiny(tmp);
  ScopedEmulation emulate;
  Run run(cfg, Device::cuda);
  run.trainer.step();  // AdamW moments and a carried memory to save
  const TrainingState state = capture(*run.model, run.opt, run.trainer.memory(), 7, run.data.train->cursor());
  const uint64_t tensors = state.weights.size() + state.optimizer.size() + state.memory.size();
  BOOST_TEST(state.optimizer.size() == 2 * state.weights.size());
  BOOST_TEST(state.memory.size() > 0u);
  BOOST_TEST_MESSAGE("saving " << state.weights.size() << " weights, " << state.optimizer.size() << " AdamW moments, "
                                << state.memory.size() << " memories");
  const std::string path = tmp / "state.safetensors";
  const dev::Stats s0 = dev::stats();
  const dev::PinnedStats p0 = dev::pinned_stats();
  save_checkpoint(path, state);
  BOOST_TEST(dev::stats().to_host - s0.to_host == tensors);  // once each: checksum and write read that copy
  BOOST_TEST(dev::pinned_stats().memory.allocations - p0.memory.allocations == tensors);  // staged in pinned memory
  BOOST_TEST(dev::pinned_stats().live_blocks == p0.live_blocks);                         // and given back

  // A second save of the same state: its staging buffers all come from the pinned cache.
  const uint64_t backing = dev::pinned_stats().memory.backing_allocs;
  save_checkpoint(tmp / "again.safetensors", state);
  BOOST_TEST(dev::pinned_stats().memory.backing_allocs == backing);

  // Read back on the host: every tensor's bytes as on the device.
  const TrainingState back = load_checkpoint(path);
  const auto same = [](const Tensor& a, const Tensor& b) {
    const Tensor x = a.to(Device::cpu), y = b.to(Device::cpu);
    return x.shape() == y.shape() && x.dtype() == y.dtype() && std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
  };
  BOOST_REQUIRE(back.weights.size() == state.weights.size());
  for (size_t i = 0; i < state.weights.size(); ++i) BOOST_TEST(same(back.weights[i].second, state.weights[i].second));
  BOOST_REQUIRE(back.optimizer.size() == state.optimizer.size());
  for (size_t i = 0; i < state.optimizer.size(); ++i)
    BOOST_TEST(same(back.optimizer[i].second, state.optimizer[i].second));
  BOOST_REQUIRE(back.memory.size() == state.memory.size());
  for (const auto& [name, t] : state.memory) BOOST_TEST(same(back.memory.at(name), t), "memory " << name);

  // On the CPU a save stages nothing.
  Run cpu(cfg, Device::cpu);
  cpu.trainer.step();
  const dev::PinnedStats c0 = dev::pinned_stats();
  const uint64_t to_host = dev::stats().to_host;
  save_checkpoint(tmp / "cpu.safetensors", capture(*cpu.model, cpu.opt, cpu.trainer.memory(), 7, {}));
  BOOST_TEST(dev::pinned_stats().memory.allocations == c0.memory.allocations);
  BOOST_TEST(dev::stats().to_host == to_host);
}

BOOST_AUTO_TEST_SUITE_END()
