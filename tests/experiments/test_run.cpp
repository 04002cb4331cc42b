// Runs from a config to a folder: the folder's files; resume after a stop continues bit for
// bit (20 steps straight vs 10 + resume + 10, synthetic and contiguous text streams);
// sweeps expand, tabulate and skip finished points; generation equals re-running the whole
// sequence segment by segment. Suite `plots` needs gnuplot and reports SKIP without it.
#include <algorithm>
#include <cmath>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "autograd/ops/ops.h"
#include "experiments/checkpoint.h"
#include "experiments/generate.h"
#include "experiments/models.h"
#include "experiments/run.h"
#include "experiments/sweep.h"
#include "tests/support/skip.h"
#include "tests/support/temp_dir.h"
#include "tests/support/read_text.h"
#include "tests/support/without_timing.h"

using namespace mnemo;
using namespace mnemo::experiments;
namespace fs = std::filesystem;

using mnemo::test::without_timing;

namespace {

using mnemo::test::read_text;

// A tiny Transformer-XL on a tiny task: 20 steps take well under a second.
std::string write_config(const test::TempDir& tmp, const std::string& data_block, const std::string& extra = "") {
  const std::string path = tmp / "tiny.yaml";
  std::ofstream(path) << "name: tiny\nseed: 7\n" << data_block
                      << "model: {arch: transformer_xl, dim: 16, depth: 1, heads: 2, transformer_xl: {mem_len: 8, "
                         "dropout: 0.1}}\n"
                         "train: {steps: 20, log_every: 5, eval_every: 10, checkpoint_every: 5, threads: 1,\n"
                         "        bptt: replay, memory_dropout: {'mem.*': 0.3},\n"
                         "        optimizer: {lr: 0.01}, schedule: {kind: warmup_cosine, warmup_steps: 3}}\n"
                         "eval: {batches: 2}\n"
                      << extra;
  return path;
}

const std::string kSynthetic = "data: {kind: synthetic, task: copy, copy_len: 3, segments: 2, segment_len: 8, batch_size: 2}\n";

}  // namespace

BOOST_AUTO_TEST_SUITE(run)

BOOST_AUTO_TEST_CASE(a_run_folder_holds_config_metrics_log_checkpoint_and_summary) {
  test::TempDir tmp("mnemo-run");
  const ExperimentConfig cfg = load_config(write_config(tmp, kSynthetic));
  const RunResult r = train_run(cfg, {.dir = tmp / "r", .progress = false});
  BOOST_TEST(r.finished);
  BOOST_TEST(r.steps == 20);
  for (const char* f : {"config.yaml", "metrics.jsonl", "train.jsonl", "log.txt", "summary.json",
                        "checkpoints/last.safetensors"})
    BOOST_TEST_CONTEXT(f) BOOST_TEST(fs::exists(fs::path(tmp / "r") / f));
  BOOST_TEST((load_run_config(tmp / "r") == cfg));  // the resolved config reads back the same
  const std::string metrics = read_text(fs::path(tmp / "r") / "metrics.jsonl");
  BOOST_TEST(metrics.find("{\"step\":10,") == 0u);  // evaluations at 10 and 20
  BOOST_TEST(metrics.find("{\"step\":20,") != std::string::npos);
  BOOST_TEST(metrics.find("\"val_accuracy\":") != std::string::npos);
  BOOST_TEST(load_checkpoint(checkpoint_path(tmp / "r")).step == 20);
  // A second run into the same folder is refused; --resume of a folder without a checkpoint too.
  BOOST_CHECK_EXCEPTION(train_run(cfg, {.dir = tmp / "r", .progress = false}), Error,
                        [](const Error& e) { return std::string(e.what()).find("already holds a run") != std::string::npos; });
  BOOST_CHECK_EXCEPTION(train_run(cfg, {.dir = tmp / "none", .resume = true, .progress = false}), Error,
                        [](const Error& e) { return std::string(e.what()).find("no checkpoint") != std::string::npos; });
}

BOOST_AUTO_TEST_CASE(resume_continues_bit_for_bit) {
  test::TempDir tmp("mnemo-resume");
  {
    std::ofstream text(tmp / "corpus.txt");
    for (int i = 0; i < 400; ++i) text << "line " << i * 7919 % 1000 << " of a small corpus;\n";
  }
  const std::string text_block = "data: {kind: text, path: " + (tmp / "corpus.txt") +
                                 ", segments: 2, segment_len: 8, batch_size: 2, val_fraction: 0.1}\n";
  // the third: an update per segment over 2 accumulated batches (checkpoints fall between
  // steps, so no accumulation is ever cut by one)
  const std::vector<std::string> per_segment = {"train.bptt=truncated", "train.window=1", "train.grad_accum=2",
                                                "train.optimizer.step_every=segment"};
  for (const auto& [data, sets] : {std::pair{kSynthetic, std::vector<std::string>{}}, std::pair{text_block, std::vector<std::string>{}},
                                   std::pair{kSynthetic, per_segment}}) {
    BOOST_TEST_CONTEXT(data << sets.size()) {
      const ExperimentConfig cfg = load_config(write_config(tmp, data), sets);
      const std::string a = tmp / "straight", b = tmp / "stopped";
      train_run(cfg, {.dir = a, .progress = false});
      const RunResult first = train_run(cfg, {.dir = b, .stop_after = 10, .progress = false});
      BOOST_TEST(!first.finished);
      BOOST_TEST(load_checkpoint(checkpoint_path(b)).step == 10);
      const RunResult second = train_run(load_run_config(b), {.dir = b, .resume = true, .progress = false});
      BOOST_TEST(second.finished);
      // Identical losses, evaluations and weights, bit for bit.
      BOOST_TEST(without_timing(read_text(fs::path(a) / "train.jsonl")) ==
                 without_timing(read_text(fs::path(b) / "train.jsonl")));
      BOOST_TEST(without_timing(read_text(fs::path(a) / "metrics.jsonl")) ==
                 without_timing(read_text(fs::path(b) / "metrics.jsonl")));
      const TrainingState sa = load_checkpoint(checkpoint_path(a)), sb = load_checkpoint(checkpoint_path(b));
      BOOST_REQUIRE(sa.weights.size() == sb.weights.size());
      for (size_t i = 0; i < sa.weights.size(); ++i)
        BOOST_TEST(sa.weights[i].second.to_vector() == sb.weights[i].second.to_vector());
      BOOST_TEST(sa.data_cursor == sb.data_cursor);
      fs::remove_all(a), fs::remove_all(b);
    }
  }
}

BOOST_AUTO_TEST_CASE(resume_refuses_a_corrupt_metrics_line_and_keeps_the_folder) {
  test::TempDir tmp("mnemo-resume-corrupt");
  const ExperimentConfig cfg = load_config(write_config(tmp, kSynthetic));
  const std::string dir = tmp / "r";
  train_run(cfg, {.dir = dir, .stop_after = 10, .progress = false});
  const fs::path metrics = fs::path(dir) / "metrics.jsonl";
  std::ofstream(metrics, std::ios::app) << "{\"step\":12,\"val_loss\":\n";  // a line cut short
  const std::string before = read_text(metrics);
  const int64_t lines = std::count(before.begin(), before.end(), '\n');
  BOOST_CHECK_EXCEPTION(train_run(load_run_config(dir), {.dir = dir, .resume = true, .progress = false}), Error,
                        [&](const Error& e) {
                          const std::string w = e.what();
                          return w.find(metrics.string() + ":" + std::to_string(lines) + ": bad JSON at byte") !=
                                 std::string::npos;
                        });
  BOOST_TEST(read_text(metrics) == before);
  BOOST_TEST(load_checkpoint(checkpoint_path(dir)).step == 10);
}

BOOST_AUTO_TEST_CASE(sweeps_expand_run_tabulate_and_skip_finished_points) {
  const auto points = expand_sweep({{"model.arch", {"transformer", "transformer_xl"}}, {"seed", {"1", "2", "3"}}});
  BOOST_REQUIRE(points.size() == 6u);
  BOOST_TEST(points[0].name == "arch=transformer,seed=1");
  BOOST_TEST(points[5].name == "arch=transformer_xl,seed=3");
  BOOST_TEST(points[4].overrides == (std::vector<std::string>{"model.arch=transformer_xl", "seed=2"}));

  test::TempDir tmp("mnemo-sweep");
  const std::string cfg = write_config(tmp, kSynthetic, "sweep: {model.arch: [transformer, transformer_xl]}\n");
  const std::vector<std::string> sets = {"train.steps=4", "train.memory_dropout={}", "model.transformer_xl.dropout=0"};
  const std::string dir = run_sweep(cfg, {.dir = tmp / "sw", .sets = sets, .progress = false});
  const std::string csv = read_text(fs::path(dir) / "summary.csv");
  BOOST_TEST(csv.find("run,model.arch,params,steps,final_val_loss") == 0u);
  BOOST_TEST(std::regex_search(csv, std::regex("\narch=transformer,transformer,[0-9]+,4,")));
  BOOST_TEST(std::regex_search(csv, std::regex("\narch=transformer_xl,transformer_xl,[0-9]+,4,")));
  BOOST_TEST(read_text(fs::path(dir) / "summary.md").find("| run | model.arch |") == 0u);
  // A point's folder is a run folder like any other: its config reads back (eval, resume).
  const ExperimentConfig point = load_run_config((fs::path(dir) / "arch=transformer_xl").string());
  BOOST_TEST(point.name == "tiny.arch=transformer_xl");
  BOOST_TEST(point.model.arch == "transformer_xl");
  // Running it again finds both points finished and trains nothing.
  const auto stamp = fs::last_write_time(fs::path(dir) / "arch=transformer" / "summary.json");
  run_sweep(cfg, {.dir = tmp / "sw", .sets = sets, .progress = false});
  BOOST_TEST((fs::last_write_time(fs::path(dir) / "arch=transformer" / "summary.json") == stamp));
  // A misspelt sweep key fails before any run starts.
  const std::string bad = write_config(tmp, kSynthetic, "sweep: {train.optimiser.lr: [0.1]}\n");
  BOOST_CHECK_EXCEPTION(run_sweep(bad, {.dir = tmp / "bad", .progress = false}), Error,
                        [](const Error& e) { return std::string(e.what()).find("optimiser") != std::string::npos; });
  BOOST_TEST(!fs::exists(fs::path(tmp / "bad") / "train.steps=4"));
}

BOOST_AUTO_TEST_CASE(sweep_values_carry_per_point_overrides_and_the_table_counts_parameters) {
  // `- transformer_xl: {model.dim: 32, ...}`: the points that take transformer_xl also set
  // those keys (a narrower or wider model per architecture, to match parameter counts).
  test::TempDir tmp("mnemo-sweep-overrides");
  const std::string cfg = write_config(
      tmp, kSynthetic, "sweep:\n  model.arch: [transformer, {transformer_xl: {model.dim: 32, train.optimizer.lr: 0.02}}]\n");
  const ExperimentConfig c = load_config(cfg);
  BOOST_REQUIRE(c.sweep.size() == 1u);
  BOOST_TEST(c.sweep[0].values == (std::vector<std::string>{"transformer", "transformer_xl"}));
  BOOST_REQUIRE(c.sweep[0].overrides.size() == 2u);
  BOOST_TEST(c.sweep[0].overrides[0].empty());
  BOOST_TEST((c.sweep[0].overrides[1] == std::vector<std::pair<std::string, std::string>>{
                                              {"model.dim", "32"}, {"train.optimizer.lr", "0.02"}}));
  // The resolved config writes them back in the same form.
  const std::string back = tmp / "back.yaml";
  std::ofstream(back) << to_yaml(c);
  BOOST_TEST((load_config(back) == c));

  const auto points = expand_sweep(c.sweep);
  BOOST_REQUIRE(points.size() == 2u);
  BOOST_TEST(points[1].name == "arch=transformer_xl");
  BOOST_TEST(points[0].overrides == (std::vector<std::string>{"model.arch=transformer"}));
  BOOST_TEST(points[1].overrides ==
             (std::vector<std::string>{"model.arch=transformer_xl", "model.dim=32", "train.optimizer.lr=0.02"}));

  const std::vector<std::string> sets = {"train.steps=4", "train.memory_dropout={}", "model.transformer_xl.dropout=0"};
  const std::string dir = run_sweep(cfg, {.dir = tmp / "sw", .sets = sets, .progress = false});
  const ExperimentConfig plain = load_run_config((fs::path(dir) / "arch=transformer").string());
  const ExperimentConfig wide = load_run_config((fs::path(dir) / "arch=transformer_xl").string());
  BOOST_TEST(plain.model.dim == 16);
  BOOST_TEST(wide.model.dim == 32);
  BOOST_TEST(wide.train.optimizer.lr == 0.02);
  // The table has a params column: the parameter count each run's summary.json records.
  const std::string csv = read_text(fs::path(dir) / "summary.csv");
  BOOST_TEST(csv.find("run,model.arch,params,steps,") == 0u);
  const auto params_of = [&](const std::string& run) {
    const size_t at = csv.find("\n" + run + ",");
    BOOST_REQUIRE(at != std::string::npos);
    std::stringstream row(csv.substr(at + 1));
    std::string cell;
    for (int i = 0; i < 3; ++i) std::getline(row, cell, ',');
    return std::stoll(cell);
  };
  auto model = build_model(plain);
  BOOST_TEST(params_of("arch=transformer") == nn::param_count(*model));
  BOOST_TEST(params_of("arch=transformer_xl") > 2 * params_of("arch=transformer"));
  BOOST_TEST(read_text(fs::path(dir) / "summary.md").find("| run | model.arch | params | steps |") == 0u);

  // An override is `seed` or a dotted key; a value map has one entry.
  const auto refused = [&](const std::string& sweep, const std::string& why) {
    const std::string bad = write_config(tmp, kSynthetic, sweep);
    try {
      load_config(bad);
    } catch (const Error& e) {
      BOOST_TEST_MESSAGE(e.what());
      return std::string(e.what()).find(why) != std::string::npos;
    }
    return false;
  };
  BOOST_TEST(refused("sweep: {model.arch: [transformer, {transformer_xl: {dim: 32}}]}\n",
                     "sweep.model.arch[1].transformer_xl.dim: an override is `seed` or a dotted key"));
  BOOST_TEST(refused("sweep: {model.arch: [{transformer: {}, transformer_xl: {}}]}\n",
                     "value 1: a sweep value is a scalar or a one-entry map"));
  BOOST_TEST(refused("sweep: {model.arch: [{transformer_xl: 32}]}\n",
                     "sweep.model.arch[0].transformer_xl: expected a map"));
}

BOOST_AUTO_TEST_CASE(a_memory_dropout_axis_names_its_points_and_column_by_the_memory) {
  // A memory name holds dots and globs ("mem.*"), as `--set train.memory_dropout.mem.*=p` reads
  // it: the points are "mem.*=..." (not "*=...") and the column shows each run's value.
  test::TempDir tmp("mnemo-sweep-dropout");
  const std::string cfg = write_config(tmp, kSynthetic, "sweep: {train.memory_dropout.mem.*: [0.0, 0.5]}\n");
  const auto points = expand_sweep(load_config(cfg).sweep);
  BOOST_REQUIRE(points.size() == 2u);
  BOOST_TEST(points[0].name == "mem.*=0.0");
  BOOST_TEST(points[1].overrides == (std::vector<std::string>{"train.memory_dropout.mem.*=0.5"}));
  const std::string dir = run_sweep(cfg, {.dir = tmp / "sw", .sets = {"train.steps=4"}, .progress = false});
  BOOST_TEST(load_run_config((fs::path(dir) / "mem.*=0.5").string()).train.memory_dropout.at("mem.*") == 0.5);
  const std::string csv = read_text(fs::path(dir) / "summary.csv");
  BOOST_TEST(csv.find("run,train.memory_dropout.mem.*,params,") == 0u);
  BOOST_TEST(std::regex_search(csv, std::regex("\nmem\\.\\*=0\\.0,0(\\.0)?,")), csv);
  BOOST_TEST(csv.find("\nmem.*=0.5,0.5,") != std::string::npos, csv);
}

BOOST_AUTO_TEST_CASE(greedy_generation_equals_rerunning_the_whole_sequence) {
  test::TempDir tmp("mnemo-gen");
  const ExperimentConfig cfg = load_config(write_config(tmp, kSynthetic));
  auto model = build_model(cfg);
  nn::eval(*model);
  const int64_t T = cfg.data.segment_len;
  const std::vector<int32_t> prompt = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'};
  const std::vector<int32_t> got = generate(*model, T, prompt, {.length = 14, .temperature = 0});
  BOOST_REQUIRE(got.size() == 14u);
  // Reference: for every new token, the whole sequence from the initial memory in segments of T.
  std::vector<int32_t> seq = prompt;
  for (size_t n = 0; n < got.size(); ++n) {
    arch::Memory mem = model->initial_memory(1);
    Tensor last;
    for (size_t start = 0; start < seq.size(); start += size_t(T)) {
      const size_t len = std::min(size_t(T), seq.size() - start);
      Tape tape;
      Tape::NoRecord nr(tape);
      arch::MemoryVars in;
      for (const auto& [k, v] : mem) in.emplace(k, tape.constant(v));
      const std::vector<int32_t> seg(seq.begin() + long(start), seq.begin() + long(start + len));
      arch::SegmentOut out = model->forward(tape, Tensor::from_ints({1, int64_t(len)}, seg), in);
      last = out.logits.value();
      mem.clear();
      for (const auto& [k, v] : out.memory) mem.emplace(k, v.value());
    }
    const std::vector<double> l = last.to_vector();
    const int64_t V = last.dim(2), at = (last.dim(1) - 1) * V;
    int32_t best = 0;
    for (int32_t v = 1; v < V; ++v)
      if (l[size_t(at + v)] > l[size_t(at + best)]) best = v;
    BOOST_TEST_CONTEXT("token " << n) BOOST_TEST(got[n] == best);
    seq.push_back(best);
  }
  // Sampling is a function of the seed.
  const GenerateOptions s{.length = 20, .temperature = 1.0, .top_k = 5, .seed = 3};
  BOOST_TEST(generate(*model, T, prompt, s) == generate(*model, T, prompt, s));
  BOOST_TEST(printable({'a', 0, '\n'}) == "a\\x00\n");
}

BOOST_AUTO_TEST_CASE(generation_reports_each_token_as_sampled_and_refuses_bad_options) {
  test::TempDir tmp("mnemo-gen-stream");
  const ExperimentConfig cfg = load_config(write_config(tmp, kSynthetic));
  auto model = build_model(cfg);
  nn::eval(*model);
  const int64_t T = cfg.data.segment_len;
  // Bytes of a UTF-8 prompt ("é" is 0xc3 0xa9) are tokens 195 and 169.
  const std::vector<int32_t> prompt = {'h', 0xc3, 0xa9};
  const GenerateOptions o{.length = 12, .temperature = 1.0, .top_k = 4, .seed = 7};
  std::vector<int32_t> streamed;
  const std::vector<int32_t> got = generate(*model, T, prompt, o, [&](const Tensor& t) {
    BOOST_TEST(t.numel() == 1);
    // Called before the next token is sampled: exactly one token per call, in order.
    streamed.push_back(t.data<int32_t>()[0]);
  });
  BOOST_TEST(streamed == got);
  BOOST_TEST(generate(*model, T, prompt, o) == got);
  const auto refused = [&](GenerateOptions bad, const char* what) {
    BOOST_CHECK_EXCEPTION(generate(*model, T, prompt, bad), Error, [&](const Error& e) {
      return std::string(e.what()).find(what) != std::string::npos;
    });
  };
  refused({.length = -1}, "length must be >= 0");
  refused({.temperature = std::nan("")}, "temperature must be finite");
  refused({.temperature = -1}, "temperature must be finite and >= 0");
  refused({.top_k = -2}, "top_k must be >= 0");
}

BOOST_AUTO_TEST_SUITE_END()

// The sweep's curves need gnuplot: without it this suite is SKIP (exit 77), not a pass.
BOOST_AUTO_TEST_SUITE(plots)

BOOST_AUTO_TEST_CASE(sweep_writes_curves_png) {
  if (!test::have_program("gnuplot")) test::skip_test("gnuplot is not installed, so no curves.png");
  test::TempDir tmp("mnemo-plots");
  const std::string cfg = write_config(tmp, kSynthetic, "sweep: {seed: [1, 2]}\n");
  const std::string dir =
      run_sweep(cfg, {.dir = tmp / "sw", .sets = {"train.steps=4", "train.eval_every=2"}, .progress = false});
  BOOST_TEST(fs::file_size(fs::path(dir) / "curves.png") > 1000u);
}

BOOST_AUTO_TEST_SUITE_END()
