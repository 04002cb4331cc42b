#include "experiments/sweep.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "common/progress.h"
#include "experiments/checkpoint.h"
#include "experiments/gnuplot.h"
#include "experiments/json.h"
#include "experiments/run.h"

namespace mnemo::experiments {
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  MNEMO_CHECK(in, "[sweep] cannot read " << p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// train.memory_dropout's keys are memory names that hold dots and globs ("xl.*"): a dotted
// sweep key ends in one of them, as `--set` reads it (experiments/config.cpp).
constexpr std::string_view kDropoutPrefix = "train.memory_dropout.";

std::vector<std::string> key_path(const std::string& dotted) {
  if (dotted.starts_with(kDropoutPrefix))
    return {"train", "memory_dropout", dotted.substr(kDropoutPrefix.size())};
  std::vector<std::string> keys;
  std::stringstream in(dotted);
  for (std::string k; std::getline(in, k, '.');) keys.push_back(k);
  return keys;
}

// The value at a dotted key of a run's config.yaml, as text.
std::string config_value(const fs::path& run, const std::string& dotted) {
  YAML::Node n = YAML::LoadFile((run / "config.yaml").string());
  for (const std::string& k : key_path(dotted)) {
    if (!n.IsMap() || !n[k]) return "";
    n = n[k];
  }
  return n.IsScalar() ? n.Scalar() : "";
}

// Keeps a point name usable as one folder name.
std::string folder_safe(std::string s) {
  for (char& c : s)
    if (c == '/' || c == ' ' || c == '\\') c = '_';
  return s;
}

std::string short_key(const std::string& dotted) { return key_path(dotted).back(); }

std::string fixed(const std::string& number_text, int digits) {
  if (number_text.empty()) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, std::stod(number_text));
  return buf;
}

}  // namespace

// A flat JSON object's members as text (numbers keep their literal).
std::map<std::string, std::string> flat_object(const std::string& text, const std::string& what) {
  const json::Json j = json::parse(text, "[sweep] " + what);
  MNEMO_CHECK(j.kind == json::Json::Kind::object, "[sweep] " << what << " must hold a JSON object");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.members) out[k] = v.kind == json::Json::Kind::null ? "" : v.text;
  return out;
}

std::vector<std::map<std::string, std::string>> read_jsonl(const fs::path& p) {
  std::vector<std::map<std::string, std::string>> rows;
  if (!fs::exists(p)) return rows;
  std::ifstream in(p);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n)
    if (!line.empty()) rows.push_back(flat_object(line, p.string() + ":" + std::to_string(n)));
  return rows;
}

std::vector<SweepPoint> expand_sweep(const std::vector<SweepAxis>& axes) {
  std::vector<SweepPoint> points{{}};
  for (const SweepAxis& a : axes) {
    std::vector<SweepPoint> next;
    for (const SweepPoint& p : points)
      for (size_t i = 0; i < a.values.size(); ++i) {
        SweepPoint q = p;
        q.name += (q.name.empty() ? "" : ",") + short_key(a.key) + "=" + a.values[i];
        q.overrides.push_back(a.key + "=" + a.values[i]);
        if (i < a.overrides.size())
          for (const auto& [k, v] : a.overrides[i]) q.overrides.push_back(k + "=" + v);
        next.push_back(std::move(q));
      }
    points = std::move(next);
  }
  for (SweepPoint& p : points) p.name = folder_safe(p.name);
  return points;
}

SummaryTable summarize_runs(const std::vector<std::string>& run_dirs, const std::vector<SweepAxis>& axes) {
  const std::vector<std::pair<std::string, int>> metrics = {
      {"params", 0},         {"steps", 0},          {"final_val_loss", 4},     {"best_val_loss", 4}, {"final_val_accuracy", 4},
      {"best_val_accuracy", 4}, {"final_val_bpb", 4},   {"best_val_bpb", 4},  {"tokens_per_s", 0},
      {"train_seconds", 1}};
  std::vector<std::map<std::string, std::string>> rows;
  for (const std::string& d : run_dirs) {
    const fs::path summary = fs::path(d) / "summary.json";
    MNEMO_CHECK(fs::exists(summary), "[sweep] run '" << d << "' has not finished (no summary.json)");
    auto row = flat_object(read_text(summary), summary.string());
    row["run"] = fs::path(d).filename().string();
    for (const SweepAxis& a : axes) row[a.key] = config_value(d, a.key);
    rows.push_back(std::move(row));
  }
  std::vector<std::string> header{"run"};
  for (const SweepAxis& a : axes) header.push_back(a.key);
  for (const auto& [m, digits] : metrics) {
    bool any = false;
    for (const auto& r : rows) any = any || (r.count(m) && !r.at(m).empty());
    if (any) header.push_back(m);
  }
  SummaryTable t;
  std::string sep = "|";
  for (size_t i = 0; i < header.size(); ++i) {
    t.csv += (i ? "," : "") + header[i];
    t.markdown += "| " + header[i] + " ";
    sep += i < 1 + axes.size() ? "---|" : "---:|";
  }
  t.csv += "\n", t.markdown += "|\n" + sep + "\n";
  for (const auto& r : rows) {
    for (size_t i = 0; i < header.size(); ++i) {
      const std::string raw = r.count(header[i]) ? r.at(header[i]) : "";
      t.csv += (i ? "," : "") + raw;
      int digits = -1;
      for (const auto& [m, d] : metrics)
        if (m == header[i]) digits = d;
      t.markdown += "| " + (digits >= 0 ? fixed(raw, digits) : raw) + " ";
    }
    t.csv += "\n", t.markdown += "|\n";
  }
  return t;
}

bool plot_runs(const std::vector<std::string>& run_dirs, const std::string& metric, const std::string& png,
               std::string* why, const std::string& x) {
  MNEMO_CHECK(!run_dirs.empty(), "[plot] no runs given");
  const bool train = metric == "train_loss";
  // train.jsonl rows have no clock or token count; metrics.jsonl rows have both.
  const std::string x_field = x == "step" ? "step" : x == "seconds" ? "elapsed_s" : x == "tokens" ? "train_tokens" : "";
  MNEMO_CHECK(!x_field.empty(), "[plot] unknown x axis '" << x << "' (step, seconds or tokens)");
  MNEMO_CHECK(!train || x == "step", "[plot] train_loss is logged per step only; use --x step with it");
  MNEMO_CHECK(train || metric == "val_loss" || metric == "val_accuracy" || metric == "val_bpb",
              "[plot] unknown metric '" << metric << "' (val_loss, val_accuracy, val_bpb or train_loss)");
  if (const std::string missing = gnuplot_missing(); !missing.empty()) {
    if (why) *why = missing;
    return false;
  }
  std::string script = "set terminal pngcairo size 1000,600 noenhanced\nset output '" + png + "'\n";
  script += "set xlabel '" + std::string(x == "seconds" ? "training seconds" : x == "tokens" ? "training tokens" : "step") +
            "'\n";
  script += "set ylabel '" + metric + "'\nset grid\nset key outside right\n";
  std::string plots;
  for (size_t i = 0; i < run_dirs.size(); ++i) {
    const fs::path dir(run_dirs[i]);
    const auto rows = read_jsonl(dir / (train ? "train.jsonl" : "metrics.jsonl"));
    const std::string field = train ? "loss" : metric;
    script += "$d" + std::to_string(i) + " << EOD\n";
    int64_t points = 0;
    for (const auto& r : rows)
      if (r.count(field) && !r.at(field).empty() && r.count(x_field))
        script += r.at(x_field) + " " + r.at(field) + "\n", ++points;
    MNEMO_CHECK(points > 0, "[plot] run '" << run_dirs[i] << "' has no " << metric << " rows"
                                            << (x == "tokens" ? " with train_tokens (written since 2026-12-07)" : "") << " yet");
    script += "EOD\n";
    std::string title = dir.filename().string();
    if (title.empty()) title = dir.parent_path().filename().string();
    for (char& c : title)
      if (c == '\'') c = '`';
    plots += std::string(plots.empty() ? "plot " : ", ") + "$d" + std::to_string(i) + " using 1:2 with linespoints title '" +
             title + "'";
  }
  script += plots + "\n";
  run_gnuplot(script, png, "plot");
  return true;
}

std::string run_sweep(const std::string& config_path, const SweepOptions& o) {
  const ExperimentConfig base = load_config(config_path, o.sets);
  MNEMO_CHECK(!base.sweep.empty(), "[sweep] " << config_path << " has no `sweep:` grid");
  const fs::path dir = o.dir.empty() ? fs::path(default_run_dir(base)) : fs::path(o.dir);
  fs::create_directories(dir);
  const std::vector<SweepPoint> points = expand_sweep(base.sweep);
  // Every point is validated before the first run starts: a typo fails now, not after hours.
  std::vector<ExperimentConfig> configs;
  for (const SweepPoint& p : points) {
    std::vector<std::string> sets = o.sets;
    sets.insert(sets.end(), p.overrides.begin(), p.overrides.end());
    configs.push_back(load_config(config_path, sets));
    configs.back().name = base.name + "." + p.name;  // a run name is one file name (config.cpp)
  }
  std::vector<std::string> run_dirs;
  // A plain line as each run starts (runs done, rate, ETA); each run draws its own bar.
  int64_t done = 0;
  for (const SweepPoint& p : points) done += fs::exists(dir / p.name / "summary.json");
  Progress progress({.label = "sweep", .unit = "runs", .total = int64_t(points.size()), .start = done,
                     .mode = o.progress ? ProgressMode::plain : ProgressMode::off, .plain_every_s = 0});
  for (size_t i = 0; i < points.size(); ++i) {
    const std::string run = (dir / points[i].name).string();
    run_dirs.push_back(run);
    if (fs::exists(fs::path(run) / "summary.json")) {
      progress.message("sweep: " + points[i].name + " already finished");
      continue;
    }
    progress.update(done, "run " + std::to_string(i + 1) + ": " + points[i].name);
    train_run(configs[i], {.dir = run, .resume = fs::exists(checkpoint_path(run)), .progress = o.progress});
    ++done;
  }
  progress.finish();
  const SummaryTable t = summarize_runs(run_dirs, base.sweep);
  write_file_atomic((dir / "summary.csv").string(), t.csv);
  write_file_atomic((dir / "summary.md").string(), t.markdown);
  const bool synthetic = base.data.kind == DataKind::synthetic;
  std::string why;
  if (!plot_runs(run_dirs, synthetic ? "val_accuracy" : "val_loss", (dir / "curves.png").string(), &why))
    std::cerr << "sweep: no plot: " << why << "\n";
  return dir.string();
}

}  // namespace mnemo::experiments
