// device: cuda on the emulated device (kernels/emulated/device.h), in every build: for each
// architecture a BPTT batch (loss, every gradient, carried memories), three trainer steps
// (losses, gradient norms, weights, memory), evaluation and cached generation give the same
// bits as on the CPU, so every host access of device memory went through an explicit copy.
// RMT with its default hyper-connections needs the four kernels CUDA lacks: the run fails
// naming the kernel, as it would on a GPU. A checkpoint written on the device resumes on the
// CPU and back on the device, bit for bit with a CPU run.
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "experiments/bptt.h"
#include "experiments/checkpoint.h"
#include "experiments/config.h"
#include "experiments/evaluate.h"
#include "experiments/generate.h"
#include "experiments/models.h"
#include "experiments/on_device.h"
#include "experiments/run.h"
#include "experiments/run_data.h"
#include "experiments/trainer.h"
#include "kernels/emulated/device.h"
#include "tests/support/error_of.h"
#include "tests/support/read_text.h"
#include "tests/support/temp_dir.h"
#include "tests/support/without_timing.h"

using namespace mnemo;
using namespace mnemo::experiments;
namespace fs = std::filesystem;
using kernels::device::ScopedEmulation;
using mnemo::test::read_text;

using mnemo::test::without_timing;

namespace {

// A tiny model of `arch` on the copy task: a few steps take well under a second.
ExperimentConfig tiny(const test::TempDir& tmp, const std::string& arch, const std::string& model_extra = "") {
  const std::string path = tmp / (arch + ".yaml");
  std::ofstream(path) << "name: dev_" << arch << "\nseed: 5\n"
                      << "data: {kind: synthetic, task: copy, copy_len: 3, segments: 3, segment_len: 8, batch_size: 2}\n"
                      << "model: {arch: " << arch << ", dim: 16, depth: 2, heads: 2" << model_extra << "}\n"
                      << "train: {steps: 6, bptt: full, log_every: 1, eval_every: 3, checkpoint_every: 2, threads: 1,\n"
                         "        optimizer: {lr: 0.01}, schedule: {kind: warmup_cosine, warmup_steps: 2}}\n"
                         "eval: {batches: 2}\n";
  return load_config(path);
}

// The bytes of a tensor, copied to the host: equal bytes are equal bits.
std::string bytes_of(const Tensor& t) {
  if (!t.defined()) return "<undefined>";
  const Tensor h = t.to(Device::cpu);
  std::ostringstream os;
  os << h.dtype() << h.shape() << ":";
  return os.str() + std::string(static_cast<const char*>(h.raw()), h.nbytes());
}

std::map<std::string, std::string> bytes_of(const arch::Memory& m) {
  std::map<std::string, std::string> out;
  for (const auto& [name, t] : m) out[name] = bytes_of(t);
  return out;
}

// Everything a device run must reproduce, on the host.
struct Outcome {
  Device weights_on = Device::cpu;
  double batch_loss = 0;
  std::map<std::string, std::string> grads, batch_memory;
  std::vector<double> losses, grad_norms;
  std::map<std::string, std::string> weights, memory;
  double eval_loss = 0, eval_accuracy = 0;
  std::string generated;
  std::map<std::string, std::string> generated_memory;
};

Outcome run_on(const ExperimentConfig& cfg, Device device) {
  Outcome o;
  const std::unique_ptr<arch::SegmentModel> model = build_model(cfg);  // built on the CPU
  move_to(*model, device);
  o.weights_on = device_of(*model);
  nn::train(*model);
  RunData data = make_run_data(cfg);
  AdamW opt(nn::named_params(*model), adamw_config(cfg.train.optimizer));
  // One batch of full BPTT: the loss, every gradient and the memory it leaves.
  const data::Batch batch = data.train->next();
  const BpttResult r = train_batch(*model, batch, model->initial_memory(batch.batch_size()),
                                   {.mode = BpttMode::full, .seed = 9});
  o.batch_loss = r.loss;
  for (const auto& [name, p] : nn::named_params(*model)) o.grads[name] = bytes_of(p->grad);
  o.batch_memory = bytes_of(r.memory);
  opt.zero_grad();
  // Three trainer steps: clipping, the schedule, AdamW, carried memory.
  Trainer trainer(*model, *data.train, opt,
                  {.bptt = {.mode = BpttMode::full}, .clip = 0.5,
                   .schedule = Schedule{.kind = Schedule::Kind::constant, .base_lr = 0.01}, .seed = 3});
  for (int i = 0; i < 3; ++i) {
    const StepMetrics m = trainer.step();
    o.losses.push_back(m.loss);
    o.grad_norms.push_back(m.grad_norm);
  }
  for (const auto& [name, p] : nn::named_params(*model)) o.weights[name] = bytes_of(p->value);
  o.memory = bytes_of(trainer.memory());
  // Evaluation and cached generation.
  nn::eval(*model);
  const EvalResult e = evaluate(*model, data.eval);
  o.eval_loss = e.loss, o.eval_accuracy = e.accuracy;
  const Tensor prime = Tensor::from_ints({2, 5}, {1, 2, 3, 4, 5, 9, 8, 7, 6, 5});
  const Generated g = generate(*model, cfg.data.segment_len, prime, {},
                               {.length = 12, .temperature = 1.0, .top_k = 20, .seed = 4, .use_cache = true});
  o.generated = bytes_of(g.tokens);
  o.generated_memory = bytes_of(g.memory);
  return o;
}

void check_same(const Outcome& cpu, const Outcome& dev, bool has_memory) {
  BOOST_TEST((cpu.weights_on == Device::cpu));
  BOOST_TEST((dev.weights_on == Device::cuda));
  BOOST_TEST(cpu.batch_loss == dev.batch_loss);
  BOOST_TEST(cpu.grads.size() > 0u);
  for (const auto& [name, g] : cpu.grads) BOOST_TEST((g == dev.grads.at(name)), "gradient of " << name);
  BOOST_TEST(cpu.batch_memory.size() == dev.batch_memory.size());
  BOOST_TEST(cpu.batch_memory.empty() == !has_memory);
  for (const auto& [name, m] : cpu.batch_memory) BOOST_TEST((m == dev.batch_memory.at(name)), "batch memory " << name);
  BOOST_TEST(cpu.losses == dev.losses, boost::test_tools::per_element());
  BOOST_TEST(cpu.grad_norms == dev.grad_norms, boost::test_tools::per_element());
  for (const auto& [name, w] : cpu.weights) BOOST_TEST((w == dev.weights.at(name)), "weight " << name);
  for (const auto& [name, m] : cpu.memory) BOOST_TEST((m == dev.memory.at(name)), "carried memory " << name);
  BOOST_TEST(cpu.memory.size() == dev.memory.size());
  BOOST_TEST(cpu.eval_loss == dev.eval_loss);
  BOOST_TEST(cpu.eval_accuracy == dev.eval_accuracy);
  BOOST_TEST((cpu.generated == dev.generated));
  for (const auto& [name, m] : cpu.generated_memory)
    BOOST_TEST((m == dev.generated_memory.at(name)), "generation memory " << name);
}

void same_bits_on_the_emulated_device(const std::string& arch, const std::string& model_extra = "",
                                      bool has_memory = true) {
  test::TempDir tmp("mnemo-emulated");
  const ExperimentConfig cfg = tiny(tmp, arch, model_extra);
  const Outcome cpu = run_on(cfg, Device::cpu);
  Outcome dev;
  {
    ScopedEmulation emulate;
    const uint64_t copies_before = kernels::device::stats().to_device;
    dev = run_on(cfg, Device::cuda);
    BOOST_TEST(kernels::device::stats().to_device > copies_before);  // the model went over, and data with it
    BOOST_TEST(kernels::device::stats().live_tensors == 0u);         // nothing left behind on the device
  }
  check_same(cpu, dev, has_memory);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(emulated_device)

BOOST_AUTO_TEST_CASE(transformer) { same_bits_on_the_emulated_device("transformer", "", /*has_memory=*/false); }
BOOST_AUTO_TEST_CASE(transformer_xl) { same_bits_on_the_emulated_device("transformer_xl", ", transformer_xl: {mem_len: 8}"); }
BOOST_AUTO_TEST_CASE(rmt_plain_residuals) {
  same_bits_on_the_emulated_device("rmt", ", rmt: {num_residual_streams: 1, num_memory_tokens: 2}");
}
BOOST_AUTO_TEST_CASE(brt) { same_bits_on_the_emulated_device("brt"); }
BOOST_AUTO_TEST_CASE(compressive) { same_bits_on_the_emulated_device("compressive"); }
BOOST_AUTO_TEST_CASE(memxl) { same_bits_on_the_emulated_device("memxl"); }

// RMT's default: four hyper-connection streams, whose kernels the CUDA backend has too.
BOOST_AUTO_TEST_CASE(rmt_hyper_connections) {
  same_bits_on_the_emulated_device("rmt", ", rmt: {num_memory_tokens: 2}");
}

// Written on the device, resumed on the CPU, then on the device again: the same files as a
// CPU run straight through (format unchanged: the CPU reads the device's checkpoint).
BOOST_AUTO_TEST_CASE(checkpoint_moves_between_device_and_cpu) {
  test::TempDir tmp("mnemo-emulated-ckpt");
  ExperimentConfig cfg = tiny(tmp, "transformer_xl", ", transformer_xl: {mem_len: 8}");
  const std::string a = tmp / "cpu", b = tmp / "moved";
  train_run(cfg, {.dir = a, .progress = false});
  {
    ScopedEmulation emulate;
    ExperimentConfig on_device = cfg;
    on_device.device = Device::cuda;
    BOOST_TEST(!train_run(on_device, {.dir = b, .stop_after = 2, .progress = false}).finished);
  }
  BOOST_TEST(read_text(fs::path(b) / "config.yaml").find("device: cuda") != std::string::npos);
  BOOST_TEST(!train_run(load_run_config(b, {"device=cpu"}), {.dir = b, .resume = true, .stop_after = 4,
                                                              .progress = false}).finished);
  {
    ScopedEmulation emulate;
    BOOST_TEST(train_run(load_run_config(b, {"device=cuda"}), {.dir = b, .resume = true, .progress = false}).finished);
  }
  BOOST_TEST(without_timing(read_text(fs::path(a) / "train.jsonl")) ==
             without_timing(read_text(fs::path(b) / "train.jsonl")));
  BOOST_TEST(without_timing(read_text(fs::path(a) / "metrics.jsonl")) ==
             without_timing(read_text(fs::path(b) / "metrics.jsonl")));
  const TrainingState sa = load_checkpoint(checkpoint_path(a)), sb = load_checkpoint(checkpoint_path(b));
  BOOST_TEST(sa.step == 6);
  BOOST_TEST(sb.step == 6);
  BOOST_REQUIRE(sa.weights.size() == sb.weights.size());
  for (size_t i = 0; i < sa.weights.size(); ++i) BOOST_TEST((bytes_of(sa.weights[i].second) == bytes_of(sb.weights[i].second)));
  BOOST_REQUIRE(sa.optimizer.size() == sb.optimizer.size());
  for (size_t i = 0; i < sa.optimizer.size(); ++i)
    BOOST_TEST((bytes_of(sa.optimizer[i].second) == bytes_of(sb.optimizer[i].second)));
  BOOST_TEST((bytes_of(sa.memory) == bytes_of(sb.memory)));
  BOOST_TEST(sa.memory.size() > 0u);
}

BOOST_AUTO_TEST_SUITE_END()
