// Suites: many settings x models x seeds from one file (experiments/suites/*.yaml), for
// questions a single `sweep:` grid cannot ask, such as "how far back does each memory reach
// on copy, recall and needle". A setting is a task plus the axis its difficulty grows along
// (data.segments, data.num_pairs); every value of the axis is trained by every model at
// every seed. Runs go into <dir>/<setting>/<point>; finished ones are skipped and a started
// one resumes, as in a sweep. The results are aggregated over seeds per (setting, value,
// model): mean, standard deviation and best held-out answer accuracy, the seeds reaching
// 0.99 and their steps and seconds to it, tokens/s, and per model the longest reach at 0.9.
// Not an experiment config: the runs' config is the file named by `experiment:`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "experiments/config.h"

namespace mnemo::experiments {

using KeyValues = std::vector<std::pair<std::string, std::string>>;  // ("data.segments", "9"), --set style

struct SuiteSetting {
  std::string name;  // "copy", "needle_d50": also its folder
  KeyValues sets;    // what every run of the setting sets (data.task, ...)
  SweepAxis axis;    // the difficulty axis; its per-value overrides (a curriculum) apply at that value
};

// A budget scales the suite: keys set for every run, the seeds, and per setting the axis
// values kept (a setting it does not list is left out; an empty list keeps every value).
struct SuiteBudget {
  KeyValues sets;
  std::vector<uint64_t> seeds;                               // empty: the suite's
  std::vector<std::pair<std::string, std::vector<std::string>>> settings;  // empty: all, all values
};

struct Suite {
  std::string file;        // the suite file, as given
  std::string name;        // folder default runs/<name>
  std::string experiment;  // the base experiment config, resolved against the suite file's folder
  std::vector<uint64_t> seeds;
  SweepAxis models;        // key model.arch; per-model overrides match parameter counts
  std::vector<SuiteSetting> settings;
  std::map<std::string, SuiteBudget> budgets;
};

/// Reads a suite file strictly: unknown keys, an empty list, a budget naming an unknown
/// setting or value fail with file:line:column and the key.
Suite load_suite(const std::string& path);

struct SuiteRun {
  std::string setting, value, model;
  uint64_t seed = 0;
  std::string folder;        // <setting>/<axis>=<value>,arch=<model>,seed=<seed>
  std::vector<std::string> overrides;  // budget, setting, value, model, seed, name: "key=value"
};

/// Every run of `budget` ("" = the whole suite) in order: setting, value, model, seed.
std::vector<SuiteRun> expand_suite(const Suite& s, const std::string& budget);

// One (setting, value, model) over its seeds. Accuracies are the finished runs' final
// held-out answer accuracy; std is the sample standard deviation (0 for one seed).
struct SuiteRow {
  std::string setting, axis, value, model;
  int64_t seeds = 0;                 // runs planned
  std::vector<uint64_t> seed_ids = {};  // finished runs' seeds, with their accuracies:
  std::vector<double> accuracy = {};
  double mean = 0, std = 0, best = 0;
  int64_t params = 0, steps = 0;
  int64_t reached = 0;               // finished seeds whose evaluations reached 0.99
  double steps_to = 0, seconds_to = 0;  // mean over those seeds of the first such evaluation's step and training seconds
  double tokens_per_s = 0;           // mean over finished seeds
  int64_t finished() const { return int64_t(accuracy.size()); }
};

/// The rows of `runs` in `dir` (unfinished runs count in `seeds` only).
std::vector<SuiteRow> aggregate_suite(const std::string& dir, const std::vector<SuiteRun>& runs,
                                      const Suite& s);
/// The first evaluation row of metrics.jsonl with val_accuracy >= threshold: (step, elapsed_s);
/// (-1, -1) when none.
std::pair<int64_t, double> first_reaching(const std::string& run_dir, double threshold);

// The largest value of the setting's axis (in axis order) whose mean accuracy is >= 0.9, per
// model; "" when none.
std::string longest_reach(const std::vector<SuiteRow>& rows, const std::string& setting, const std::string& model,
                          double threshold = 0.9);

struct SuiteReport {
  std::string csv;       // one line per row
  std::string markdown;  // a reach table, then one table per setting
};
SuiteReport suite_report(const std::vector<SuiteRow>& rows, const Suite& s, const std::string& image_dir = "");

/// Accuracy (mean, error bars of one std) against the setting's axis, one line per model.
/// False with `why` when gnuplot is missing.
bool plot_setting(const std::vector<SuiteRow>& rows, const std::string& setting, const std::string& png,
                  std::string* why = nullptr);

/// Replaces the text between `<!-- BEGIN marker -->` and `<!-- END marker -->` in the Markdown file
/// `path` with `body` (appends the marked section when the file has none; creates the file).
/// Throws when only one of the two markers is present or they are out of order.
void replace_marked_section(const std::string& path, const std::string& marker, const std::string& body);

struct SuiteOptions {
  std::string dir = {};            // default runs/<name>[-<budget>]
  std::string budget = {};
  std::vector<std::string> sets = {};  // for every run, after the suite's own keys
  int64_t jobs = 1;                // runs at once: > 1 runs each in a child `exe train` process
  std::string exe = {};            // the mnemo binary, for jobs > 1
  std::string results_md = {};     // also write the report between markers there, plots beside it
  std::string command = {};        // the command line, quoted in the report
  bool progress = true;
  bool report_only = false;        // train nothing: tabulate what is finished
};

/// Runs (or resumes) every run, then writes results.csv, results.md and one PNG per setting
/// into the suite folder (and the section of results_md); returns the folder. Runs that fail
/// do not stop the others; the call throws after the report, naming them.
std::string run_suite(const std::string& path, const SuiteOptions& opts);

}  // namespace mnemo::experiments
