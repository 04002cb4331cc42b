// Sweeps and plots. A `sweep:` grid of dotted keys expands into one run per point (the
// cartesian product, in file order); runs go sequentially into <dir>/<point name>, and a
// sweep that is stopped and started again skips finished points and resumes a started one.
// The summary is a CSV and a Markdown table (one row per run: the swept values, final and
// best metrics, tokens/s) and a PNG of the validation curves drawn with gnuplot.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "experiments/config.h"

namespace mnemo::experiments {

struct SweepPoint {
  std::string name;                     // "lr=0.001,arch=rmt": also its folder name
  std::vector<std::string> overrides;   // "train.optimizer.lr=0.001", ...
};

// A flat JSON object's members as text (numbers keep their literal, null is ""); `what`
// names it in errors. read_jsonl: one such object per non-empty line; none when the file is absent.
std::map<std::string, std::string> flat_object(const std::string& text, const std::string& what);
std::vector<std::map<std::string, std::string>> read_jsonl(const std::filesystem::path& p);

std::vector<SweepPoint> expand_sweep(const std::vector<SweepAxis>& axes);

struct SweepOptions {
  std::string dir = {};       // default runs/<name>
  std::vector<std::string> sets = {};
  bool progress = true;
};

// Runs every point of `config_path`'s sweep, then writes summary.csv, summary.md and
// curves.png (when gnuplot is installed) into the sweep folder; returns that folder.
std::string run_sweep(const std::string& config_path, const SweepOptions& opts);

// The table of finished runs (folders with summary.json), one row each.
struct SummaryTable {
  std::string csv, markdown;
};
SummaryTable summarize_runs(const std::vector<std::string>& run_dirs, const std::vector<SweepAxis>& axes = {});

// Curves of `metric` (val_loss | val_accuracy | val_bpb from metrics.jsonl, or train_loss from
// train.jsonl) of each run into a PNG with gnuplot. Returns false, with `why`, when gnuplot
// is missing; throws on unreadable runs. `x` is step, seconds (training time, evaluations
// excluded) or tokens (trained tokens); the last two only for the validation metrics.
bool plot_runs(const std::vector<std::string>& run_dirs, const std::string& metric, const std::string& png,
               std::string* why = nullptr, const std::string& x = "step");

}  // namespace mnemo::experiments
