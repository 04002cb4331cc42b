// A training step on the device, checked on the emulated device.
// host_waits: how often a step makes the host wait for the device (copies to the host and
// kernel results read back): once per batch for its loss figures and once for the gradient
// norm, however many segments and parameters there are. A wait per segment or per parameter
// would stall a GPU's queue that many times a step.
// device_precision: train.precision: bf16 asks the run's device whether it can (cuBLAS on a
// GPU); device_precision_bf16: on the emulated device (the CPU's kernels) it trains bit for bit
// as on the CPU (SKIP where the CPU has no bf16).
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "experiments/config.h"
#include "experiments/models.h"
#include "experiments/on_device.h"
#include "experiments/run_data.h"
#include "experiments/trainer.h"
#include "kernels/emulated/device.h"
#include "kernels/precision.h"
#include "tests/support/skip.h"
#include "tests/support/temp_dir.h"

using namespace mnemo;
using namespace mnemo::experiments;
using kernels::device::ScopedEmulation;

namespace {

struct Case {
  std::string arch, model_extra;
  BpttMode mode = BpttMode::full;
};

// A tiny model of `c` on the copy task, with `segments` segments a batch.
ExperimentConfig tiny(const test::TempDir& tmp, const Case& c, int segments, const std::string& train_extra = "") {
  const std::string path = tmp / "w.yaml";
  std::ofstream(path) << "name: step\nseed: 5\n"
                      << "data: {kind: synthetic, task: copy, copy_len: 2, segments: " << segments
                      << ", segment_len: 8, batch_size: 2}\n"
                      << "model: {arch: " << c.arch << ", dim: 16, depth: 2, heads: 2" << c.model_extra << "}\n"
                      << "train: {steps: 3, threads: 1, optimizer: {lr: 0.01}" << train_extra << "}\n";
  return load_config(path);
}

// A model, its data and optimizer, and a trainer over them, on `device`.
struct Training {
  std::unique_ptr<arch::SegmentModel> model;
  RunData data;
  std::unique_ptr<AdamW> opt;
  std::unique_ptr<Trainer> trainer;

  Training(const ExperimentConfig& cfg, Device device, BpttOptions bptt, int64_t grad_accum = 1)
      : model(build_model(cfg)), data(make_run_data(cfg)) {
    move_to(*model, device);
    nn::train(*model);
    opt = std::make_unique<AdamW>(nn::named_params(*model), adamw_config(cfg.train.optimizer));
    trainer = std::make_unique<Trainer>(*model, *data.train, *opt,
                                        TrainerOptions{.bptt = bptt, .grad_accum = grad_accum, .clip = 0.5});
  }
};

// The waits of one step (the third: the first two fill caches and grow XL memories), with
// `segments` segments a batch and `grad_accum` batches a step.
uint64_t waits_of_a_step(const Case& c, int segments, int grad_accum) {
  test::TempDir tmp("mnemo-waits");
  const ExperimentConfig cfg = tiny(tmp, c, segments);
  ScopedEmulation emulate;
  Training t(cfg, Device::cuda, {.mode = c.mode}, grad_accum);
  t.trainer->step();
  t.trainer->step();
  const uint64_t before = kernels::device::stats().host_waits();
  const StepMetrics m = t.trainer->step();
  BOOST_TEST(std::isfinite(m.loss));
  BOOST_TEST(m.grad_norm > 0.0);
  return kernels::device::stats().host_waits() - before;
}

const std::vector<Case> kCases = {
    {"transformer", ""},
    {"transformer_xl", ", transformer_xl: {mem_len: 8}"},
    {"rmt", ", rmt: {num_memory_tokens: 2}", BpttMode::replay},
    {"rmt", ", rmt: {num_residual_streams: 1, num_memory_tokens: 2}"},
    {"brt", ""},
    {"compressive", ""},  // with its reconstruction (aux) loss
    {"memxl", "", BpttMode::truncated},
};

}  // namespace

BOOST_AUTO_TEST_SUITE(host_waits)

BOOST_AUTO_TEST_CASE(one_wait_per_batch_and_one_for_the_norm) {
  for (const Case& c : kCases) {
    BOOST_TEST_CONTEXT(c.arch << c.model_extra << ", bptt " << int(c.mode)) {
      const uint64_t three = waits_of_a_step(c, 3, 1), six = waits_of_a_step(c, 6, 1);
      BOOST_TEST(three == 2u);  // the batch's losses, the gradient norm
      BOOST_TEST(six == three);
      BOOST_TEST(waits_of_a_step(c, 3, 2) == 3u);  // two batches' losses, one norm
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(device_precision)

BOOST_AUTO_TEST_CASE(bf16_on_cuda_asks_the_device) {
  using kernels::GemmDevice;
  const std::string why = kernels::bf16_unavailable(GemmDevice::cuda);
  if (kernels::device::unavailable().empty()) BOOST_TEST(why == "");  // a GPU: every targeted one has bf16
  else BOOST_TEST(why.find("no CUDA device") != std::string::npos, why);
  ScopedEmulation emulate;  // the emulated device's GEMMs are the CPU's, and so is its answer
  BOOST_TEST(kernels::bf16_unavailable(GemmDevice::cuda) == kernels::bf16_unavailable(GemmDevice::cpu));
}

BOOST_AUTO_TEST_SUITE_END()

// SKIP where the CPU cannot run bf16 (the emulated device's GEMMs are the CPU's).
BOOST_AUTO_TEST_SUITE(device_precision_bf16)

// The batch's precision scope goes to the model's device: on the emulated one that is the
// CPU's bf16 again, so the run matches the CPU's bf16 run bit for bit and differs from f32.
BOOST_AUTO_TEST_CASE(bf16_training_on_the_emulated_device_matches_the_cpus) {
  if (const std::string why = kernels::bf16_unavailable(); !why.empty()) test::skip_test(why);
  test::TempDir tmp("mnemo-device-bf16");
  const Case c{"memxl", "", BpttMode::truncated};
  auto losses = [&](Device device, bool bf16) {
    std::optional<ScopedEmulation> emulate;
    if (device == Device::cuda) emulate.emplace();
    const ExperimentConfig cfg = tiny(tmp, c, 3, bf16 ? ", precision: bf16" : "");
    BOOST_TEST((cfg.train.precision == (bf16 ? Precision::bf16 : Precision::f32)));
    Training t(cfg, device, {.mode = c.mode, .bf16 = bf16});
    std::vector<double> out;
    for (int i = 0; i < 3; ++i) out.push_back(t.trainer->step().loss);
    out.push_back(t.trainer->step().grad_norm);
    return out;
  };
  const std::vector<double> cpu = losses(Device::cpu, true), dev = losses(Device::cuda, true);
  BOOST_TEST(cpu == dev, boost::test_tools::per_element());
  BOOST_TEST(cpu != losses(Device::cuda, false));
  BOOST_TEST((kernels::matmul_precision() == kernels::MatmulPrecision::f32));  // the scope ended
}

BOOST_AUTO_TEST_SUITE_END()
