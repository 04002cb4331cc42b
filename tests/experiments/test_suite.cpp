// Suites (experiments/suite.h): a suite file expands into settings x values x models x seeds
// with their overrides and budgets; bad files fail at the key; aggregation over seeds on
// hand-written run folders (mean, std, best, steps and seconds to 0.99, longest reach); a
// suite skips finished runs and resumes a started one; the marked Markdown section is
// replaced in place and nothing around it changes.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "experiments/models.h"
#include "experiments/run.h"
#include "experiments/suite.h"
#include "experiments/sweep.h"
#include "tests/support/error_of.h"
#include "tests/support/skip.h"
#include "tests/support/temp_dir.h"
#include "tests/support/read_text.h"

using namespace mnemo;
using namespace mnemo::experiments;
namespace fs = std::filesystem;

namespace {

using mnemo::test::read_text;

// A tiny synthetic experiment (a few steps take well under a second) and a suite over it:
// two settings, two models (one narrowed), two seeds, and a budget.
std::string write_suite(const test::TempDir& tmp, const std::string& extra = "") {
  std::ofstream(tmp / "base.yaml")
      << "name: base\nseed: 1\n"
         "data: {kind: synthetic, task: copy, copy_len: 2, segments: 2, segment_len: 8, batch_size: 2}\n"
         "model: {arch: transformer, dim: 16, depth: 1, heads: 2, transformer_xl: {mem_len: 8}}\n"
         "train: {steps: 6, log_every: 3, eval_every: 3, checkpoint_every: 3, threads: 1, bptt: full}\n"
         "eval: {batches: 1}\n";
  const std::string path = tmp / "tiny_suite.yaml";
  std::ofstream(path) << "name: tiny\nexperiment: base.yaml\nseeds: [1, 2]\n"
                         "models:\n  - transformer\n  - transformer_xl: {model.dim: 12}\n"
                         "settings:\n"
                         "  - name: copy\n    sets: {data.task: copy}\n    axis: data.segments\n"
                         "    values:\n      - 2\n      - 4: {data.curriculum.segments: [2, 3], data.curriculum.steps: 2}\n"
                         "  - name: recall\n    sets: {data.task: assoc_recall, data.segments: 4}\n"
                         "    axis: data.num_pairs\n    values: [2, 3]\n"
                         "budgets:\n  small:\n    sets: {train.steps: 4}\n    seeds: [3]\n"
                         "    settings: {copy: [4], recall: []}\n"
                      << extra;
  return path;
}

// A finished run folder as train_run leaves it, with the numbers a test chooses.
void fake_run(const fs::path& dir, double accuracy, const std::vector<std::pair<int64_t, double>>& curve,
              double tokens_per_s = 1000) {
  fs::create_directories(dir);
  std::ofstream m(dir / "metrics.jsonl");
  for (size_t i = 0; i < curve.size(); ++i)
    m << "{\"step\":" << curve[i].first << ",\"val_accuracy\":" << curve[i].second << ",\"elapsed_s\":" << 2.5 * double(i + 1)
      << "}\n";
  std::ofstream(dir / "summary.json") << "{\"params\":1234,\"steps\":300,\"final_val_accuracy\":" << accuracy
                                      << ",\"tokens_per_s\":" << tokens_per_s << ",\"train_seconds\":7.5}\n";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(suites)

BOOST_AUTO_TEST_CASE(expands_settings_values_models_seeds_in_order) {
  test::TempDir tmp("mnemo-suite");
  const Suite s = load_suite(write_suite(tmp));
  BOOST_TEST(s.name == "tiny");
  BOOST_TEST(s.experiment == (tmp.dir / "base.yaml").lexically_normal().string());
  const std::vector<SuiteRun> all = expand_suite(s, "");
  BOOST_TEST_REQUIRE(all.size() == 2u * 2u * 2u * 2u);  // settings x values x models x seeds
  BOOST_TEST(all[0].folder == "copy/segments=2,arch=transformer,seed=1");
  BOOST_TEST(all[3].folder == "copy/segments=2,arch=transformer_xl,seed=2");
  BOOST_TEST(all[15].folder == "recall/num_pairs=3,arch=transformer_xl,seed=2");
  // The value's curriculum (a list, in flow style), the model's width, the seed, the name.
  const std::vector<std::string> want = {"data.task=copy",        "data.segments=4", "data.curriculum.segments=[2, 3]",
                                         "data.curriculum.steps=2", "model.arch=transformer_xl", "model.dim=12",
                                         "seed=1",                "name=tiny.copy.segments=4,arch=transformer_xl,seed=1"};
  BOOST_TEST(all[6].overrides == want, boost::test_tools::per_element());
  // Every run's overrides make a valid config with what they say.
  const ExperimentConfig c = load_config(s.experiment, all[6].overrides);
  BOOST_TEST(c.data.segments == 4);
  BOOST_TEST(c.data.curriculum_segments == (std::vector<int64_t>{2, 3}), boost::test_tools::per_element());
  BOOST_TEST(c.model.dim == 12);
  BOOST_TEST(c.model.arch == "transformer_xl");

  // The budget: its keys first, its seeds, the listed values (an empty list keeps them all).
  const std::vector<SuiteRun> small = expand_suite(s, "small");
  BOOST_TEST_REQUIRE(small.size() == (1u + 2u) * 2u);
  BOOST_TEST(small[0].folder == "copy/segments=4,arch=transformer,seed=3");
  BOOST_TEST(small[0].overrides.front() == "train.steps=4");
  BOOST_TEST(small[5].folder == "recall/num_pairs=3,arch=transformer_xl,seed=3");
  BOOST_TEST(test::error_of([&] { expand_suite(s, "huge"); }).find("no budget 'huge' (budgets: small)") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_suite_files_fail_at_the_key) {
  test::TempDir tmp("mnemo-suite");
  const auto error_with = [&](const std::string& extra) {
    return test::error_of([&] { load_suite(write_suite(tmp, extra)); });
  };
  std::string e = error_with("jobs: 2\n");
  BOOST_TEST(e.find("tiny_suite.yaml:23:1") != std::string::npos, e);
  BOOST_TEST(e.find("jobs") != std::string::npos, e);
  e = error_with("  tiny:\n    settings: {copy: [3]}\n");
  BOOST_TEST(e.find("budgets.tiny.settings.copy: setting 'copy' has no data.segments value '3'") != std::string::npos, e);
  e = error_with("  other:\n    settings: {needle: []}\n");
  BOOST_TEST(e.find("budgets.other.settings.needle: no setting 'needle'") != std::string::npos, e);
  std::ofstream(tmp / "no_models.yaml") << "experiment: base.yaml\nmodels: []\nsettings: []\n";
  e = test::error_of([&] { load_suite(tmp / "no_models.yaml"); });
  BOOST_TEST(e.find("no_models.yaml:2:9: models: expected a non-empty list of values") != std::string::npos, e);
  std::ofstream(tmp / "missing.yaml") << "experiment: nowhere.yaml\nmodels: [rmt]\n";
  e = test::error_of([&] { load_suite(tmp / "missing.yaml"); });
  BOOST_TEST(e.find("experiment: no such file") != std::string::npos, e);
  // A key the experiment does not have fails before anything trains, naming the run.
  e = test::error_of([&] {
    run_suite(write_suite(tmp), {.dir = tmp / "out", .sets = {"train.stepz=3"}, .progress = false});
  });
  BOOST_TEST(e.find("run copy/segments=2,arch=transformer,seed=1") != std::string::npos, e);
  BOOST_TEST(e.find("train.stepz") != std::string::npos, e);
  BOOST_TEST(!fs::exists(tmp.dir / "out" / "copy"));
}

BOOST_AUTO_TEST_CASE(aggregates_over_seeds) {
  test::TempDir tmp("mnemo-suite");
  const Suite s = load_suite(write_suite(tmp));
  const std::vector<SuiteRun> runs = expand_suite(s, "");
  const fs::path d = tmp / "agg";
  // copy at 2 segments: transformer seeds 1, 2 at 0.5 and 1.0; it reaches 0.99 only on seed 2,
  // at its second evaluation (step 200, 5 s); transformer_xl: seed 1 finished, seed 2 not.
  fake_run(d / "copy/segments=2,arch=transformer,seed=1", 0.5, {{100, 0.2}, {200, 0.5}});
  fake_run(d / "copy/segments=2,arch=transformer,seed=2", 1.0, {{100, 0.4}, {200, 0.995}, {300, 1.0}}, 3000);
  fake_run(d / "copy/segments=2,arch=transformer_xl,seed=1", 0.995, {{100, 0.991}});
  fs::create_directories(d / "copy/segments=2,arch=transformer_xl,seed=2/checkpoints");
  // copy at 4 segments: transformer falls to 0.9, 0.95 (mean 0.925: still within reach).
  fake_run(d / "copy/segments=4,arch=transformer,seed=1", 0.9, {{100, 0.9}});
  fake_run(d / "copy/segments=4,arch=transformer,seed=2", 0.95, {{100, 0.95}});

  const std::vector<SuiteRow> rows = aggregate_suite(d.string(), runs, s);
  BOOST_TEST_REQUIRE(rows.size() == 2u * 2u * 2u);
  const SuiteRow& t2 = rows[0];
  BOOST_TEST(t2.setting == "copy");
  BOOST_TEST(t2.axis == "data.segments");
  BOOST_TEST(t2.value == "2");
  BOOST_TEST(t2.model == "transformer");
  BOOST_TEST(t2.seeds == 2);
  BOOST_TEST(t2.finished() == 2);
  BOOST_TEST(t2.mean == 0.75, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(t2.std == std::sqrt(0.125), boost::test_tools::tolerance(1e-12));  // sample std of {0.5, 1}
  BOOST_TEST(t2.best == 1.0);
  BOOST_TEST(t2.reached == 1);
  BOOST_TEST(t2.steps_to == 200.0);
  BOOST_TEST(t2.seconds_to == 5.0);
  BOOST_TEST(t2.tokens_per_s == 2000.0);
  BOOST_TEST(t2.params == 1234);
  const SuiteRow& x2 = rows[1];
  BOOST_TEST(x2.model == "transformer_xl");
  BOOST_TEST(x2.seeds == 2);
  BOOST_TEST(x2.finished() == 1);
  BOOST_TEST(x2.std == 0.0);
  BOOST_TEST(x2.reached == 1);
  BOOST_TEST(x2.steps_to == 100.0);
  BOOST_TEST(rows[2].mean == 0.925, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(rows[2].reached == 0);
  BOOST_TEST(rows[7].finished() == 0);

  BOOST_TEST(longest_reach(rows, "copy", "transformer") == "4");
  BOOST_TEST(longest_reach(rows, "copy", "transformer_xl") == "2");
  BOOST_TEST(longest_reach(rows, "recall", "transformer").empty());

  const SuiteReport rep = suite_report(rows, s, "img/");
  BOOST_TEST(rep.csv.find("copy,data.segments,2,transformer,1234,300,2,2,0.7500,0.3536,1.0000,1:0.5000;2:1.0000,1,200,5.0,2000\n") !=
                 std::string::npos,
             rep.csv);
  BOOST_TEST(rep.markdown.find("| copy | segments | 4 | 2 |") != std::string::npos, rep.markdown);
  BOOST_TEST(rep.markdown.find("| recall | num_pairs | not run | not run |") != std::string::npos, rep.markdown);
  BOOST_TEST(rep.markdown.find("![copy](img/copy.png)") != std::string::npos, rep.markdown);
  BOOST_TEST(rep.markdown.find("| 2 | transformer | 1234 | 2/2 | 0.750 | 0.354 | 1.000 | 1: 0.500, 2: 1.000 | 1/2 | 200 | 5.0 | 2000 |") !=
                 std::string::npos,
             rep.markdown);
}

BOOST_AUTO_TEST_CASE(first_reaching_reads_the_first_evaluation_at_the_threshold) {
  test::TempDir tmp("mnemo-suite");
  fake_run(tmp.dir / "r", 1.0, {{50, 0.3}, {100, 0.99}, {150, 0.98}, {200, 1.0}});
  BOOST_TEST(first_reaching((tmp.dir / "r").string(), 0.99).first == 100);
  BOOST_TEST(first_reaching((tmp.dir / "r").string(), 0.99).second == 5.0);
  BOOST_TEST(first_reaching((tmp.dir / "r").string(), 0.999).first == 200);
  BOOST_TEST(first_reaching((tmp.dir / "r").string(), 1.5).first == -1);
}

BOOST_AUTO_TEST_CASE(skips_finished_runs_and_resumes_a_started_one) {
  test::TempDir tmp("mnemo-suite");
  const std::string file = write_suite(tmp);
  const std::string out = tmp / "out";
  const SuiteOptions o{.dir = out, .budget = "small", .progress = false};
  // One run started and stopped at step 3 of 4 (its checkpoint), before the suite runs.
  const Suite s = load_suite(file);
  const std::vector<SuiteRun> runs = expand_suite(s, "small");
  const SuiteRun& started = runs[1];
  train_run(load_config(s.experiment, started.overrides), {.dir = out + "/" + started.folder, .stop_after = 3,
                                                           .progress = false});
  BOOST_TEST_REQUIRE(!fs::exists(fs::path(out) / started.folder / "summary.json"));

  run_suite(file, o);
  for (const SuiteRun& r : runs) BOOST_TEST(fs::exists(fs::path(out) / r.folder / "summary.json"), r.folder);
  // The started run went on from its checkpoint: the log says so, and its evaluations are the
  // one at step 3 (from before the stop) and the final one at step 4.
  BOOST_TEST(read_text(fs::path(out) / started.folder / "log.txt").find("resum") != std::string::npos);
  const auto rows = read_jsonl(fs::path(out) / started.folder / "metrics.jsonl");
  BOOST_TEST_REQUIRE(rows.size() == 2u);
  BOOST_TEST(rows[0].at("step") == "3");
  BOOST_TEST(rows[1].at("step") == "4");
  auto invocations = read_jsonl(fs::path(out) / "invocations.jsonl");
  BOOST_TEST_REQUIRE(invocations.size() == 1u);
  BOOST_TEST(invocations[0].at("trained") == std::to_string(runs.size()));

  // Again: nothing trains (no new invocation line, summaries untouched) and the report is the same.
  const auto stamp = fs::last_write_time(fs::path(out) / runs[0].folder / "summary.json");
  const std::string csv = read_text(fs::path(out) / "results.csv");
  run_suite(file, o);
  BOOST_TEST(read_jsonl(fs::path(out) / "invocations.jsonl").size() == 1u);
  BOOST_TEST((fs::last_write_time(fs::path(out) / runs[0].folder / "summary.json") == stamp));
  BOOST_TEST(read_text(fs::path(out) / "results.csv") == csv);

  // A run folder removed is trained again, and only it.
  fs::remove_all(fs::path(out) / runs[2].folder);
  run_suite(file, o);
  invocations = read_jsonl(fs::path(out) / "invocations.jsonl");
  BOOST_TEST_REQUIRE(invocations.size() == 2u);
  BOOST_TEST(invocations[1].at("trained") == "1");
  BOOST_TEST(fs::exists(fs::path(out) / runs[2].folder / "summary.json"));
  // One row per (setting, value, model), each with its one seed.
  const std::string results = read_text(fs::path(out) / "results.csv");
  BOOST_TEST(std::count(results.begin(), results.end(), '\n') == 1 + 3 * 2, results);
  BOOST_TEST(results.find("recall,data.num_pairs,3,transformer_xl,") != std::string::npos, results);
}

BOOST_AUTO_TEST_CASE(results_markdown_section_is_replaced_between_its_markers) {
  test::TempDir tmp("mnemo-suite");
  const std::string md = tmp / "RESULTS.md";
  std::ofstream(md) << "# results\n\nBefore.\n";
  replace_marked_section(md, "mnemo suite x", "first\n");
  BOOST_TEST(read_text(md) == "# results\n\nBefore.\n\n<!-- BEGIN mnemo suite x -->\nfirst\n<!-- END mnemo suite x -->\n");
  std::ofstream(md, std::ios::app) << "\nAfter.\n";
  replace_marked_section(md, "mnemo suite x", "second\nlines");
  const std::string want = "# results\n\nBefore.\n\n<!-- BEGIN mnemo suite x -->\nsecond\nlines\n<!-- END mnemo suite x -->\n\nAfter.\n";
  BOOST_TEST(read_text(md) == want);
  replace_marked_section(md, "mnemo suite x", "second\nlines");
  BOOST_TEST(read_text(md) == want);  // regenerating is idempotent
  // Another suite's section is a section of its own.
  replace_marked_section(md, "mnemo suite y", "other");
  BOOST_TEST(read_text(md).find(want) == 0u);
  // A lone marker is not guessed around.
  std::ofstream(md) << "<!-- BEGIN mnemo suite x -->\nhalf\n";
  const std::string e = test::error_of([&] { replace_marked_section(md, "mnemo suite x", "new"); });
  BOOST_TEST(e.find("without '<!-- END mnemo suite x -->'") != std::string::npos, e);
  BOOST_TEST(read_text(md) == "<!-- BEGIN mnemo suite x -->\nhalf\n");
}

BOOST_AUTO_TEST_CASE(results_md_gets_the_report_and_the_plots) {
  test::TempDir tmp("mnemo-suite");
  const std::string file = write_suite(tmp);
  const std::string md = tmp / "docs/RESULTS.md";
  fs::create_directories(tmp.dir / "docs");
  std::ofstream(md) << "# results\n";
  run_suite(file, {.dir = tmp / "out", .budget = "small", .results_md = md, .command = "mnemo suite tiny_suite.yaml",
                   .progress = false});
  const std::string text = read_text(md);
  BOOST_TEST(text.find("<!-- BEGIN mnemo suite tiny small -->") != std::string::npos);
  BOOST_TEST(text.find("```\nmnemo suite tiny_suite.yaml\n```") != std::string::npos, text);
  BOOST_TEST(text.find("6 of 6 runs finished (budget small") != std::string::npos, text);
  BOOST_TEST(text.find("![copy](results/tiny-small/copy.png)") != std::string::npos, text);
  BOOST_TEST(text.find("| copy | segments |") != std::string::npos, text);
}

// The shipped suite, at both budgets: every run's config loads with its overrides and its model
// builds, and the models of each point lie within 10% of each other's parameter count (the
// issue's matched sizes), so an edited model line cannot break a long run hours in.
BOOST_AUTO_TEST_CASE(shipped_longrange_suite_loads_and_matches_parameter_counts) {
  const Suite s = load_suite(std::string(MNEMO_SOURCE_DIR) + "/experiments/suites/longrange.yaml");
  for (const std::string budget : {"small", ""}) {
    std::map<std::string, std::pair<int64_t, int64_t>> span;  // point -> (min, max) params
    std::set<std::string> built;
    for (const SuiteRun& r : expand_suite(s, budget)) {
      const std::string point = r.setting + " " + r.value, key = point + " " + r.model;
      if (!built.insert(key).second) continue;  // seeds change the draws, not the size
      BOOST_TEST_CONTEXT(r.folder) {
        const ExperimentConfig cfg = load_config(s.experiment, r.overrides);
        const int64_t n = nn::param_count(*build_model(cfg));
        auto [it, fresh] = span.try_emplace(point, n, n);
        it->second = {std::min(it->second.first, n), std::max(it->second.second, n)};
      }
    }
    BOOST_TEST(built.size() == (budget.empty() ? 156u : 42u));
    for (const auto& [point, mm] : span)
      BOOST_TEST(double(mm.second) <= 1.10 * double(mm.first), point << ": " << mm.first << " to " << mm.second);
  }
}

BOOST_AUTO_TEST_SUITE_END()

// The plots need gnuplot: without it this suite is SKIP (exit 77), not a pass.
BOOST_AUTO_TEST_SUITE(suite_plots)

BOOST_AUTO_TEST_CASE(results_md_plots_sit_beside_it) {
  if (!test::have_program("gnuplot")) test::skip_test("gnuplot is not installed, so no plots");
  test::TempDir tmp("mnemo-suite");
  const std::string md = tmp / "docs/RESULTS.md";
  run_suite(write_suite(tmp), {.dir = tmp / "out", .budget = "small", .results_md = md, .progress = false});
  for (const char* setting : {"copy", "recall"}) {
    BOOST_TEST(fs::file_size(tmp.dir / "out" / (std::string(setting) + ".png")) > 1000u);
    BOOST_TEST(fs::file_size(tmp.dir / "docs/results/tiny-small" / (std::string(setting) + ".png")) > 1000u);
  }
}

BOOST_AUTO_TEST_SUITE_END()
