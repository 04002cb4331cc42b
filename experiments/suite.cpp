#include "experiments/suite.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>

#include "experiments/gnuplot.h"
#include "common/progress.h"
#include "experiments/checkpoint.h"
#include "experiments/json.h"
#include "experiments/run.h"
#include "experiments/sweep.h"
#include "experiments/yaml_reader.h"

extern char** environ;

namespace mnemo::experiments {
namespace fs = std::filesystem;

namespace {

// A value as --set takes it: a scalar as written, a list or map in YAML flow style.
std::string node_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e.SetMapFormat(YAML::Flow);
  e.SetSeqFormat(YAML::Flow);
  e << n;
  return e.c_str();
}

void check_dotted(YamlReader& at, const std::string& key, const char* what) {
  if (key != "seed" && key.find('.') == std::string::npos)
    at.fail(key, std::string(what) + " is `seed` or a dotted key such as data.segments or train.optimizer.lr");
}

// {dotted.key: value, ...}
KeyValues read_sets(YamlReader r) {
  KeyValues out;
  const YAML::Node& map = r.node();
  if (!map.IsMap() && !map.IsNull()) r.fail("", "expected a map of dotted keys to values");
  for (const std::string& k : r.keys()) {
    check_dotted(r, k, "a key");
    out.emplace_back(k, node_text(map[k]));
  }
  return out;
}

// [v1, {v2: {dotted.key: value}}, ...]: the sweep's syntax, a value's keys any YAML.
SweepAxis read_values(YamlReader& r, const std::string& list_key, const std::string& axis_key) {
  SweepAxis axis{axis_key, {}};
  const YAML::Node& map = r.node();  // const: operator[] must not insert
  const YAML::Node list = map[list_key];
  if (!list || !list.IsSequence() || list.size() == 0) r.fail(list_key, "expected a non-empty list of values");
  bool any = false;
  for (size_t i = 0; i < list.size(); ++i) {
    auto& pairs = axis.overrides.emplace_back();
    if (list[i].IsScalar()) {
      axis.values.push_back(list[i].Scalar());
      continue;
    }
    const std::string at = r.key_path(list_key) + "[" + std::to_string(i) + "]";
    YamlReader item(list[i], r.file(), at, r.sources());
    const std::vector<std::string> value = list[i].IsMap() ? item.keys() : std::vector<std::string>{};
    if (value.size() != 1)
      r.fail(list_key, "value " + std::to_string(i + 1) + ": a value is a scalar or a one-entry map "
                       "`value: {dotted.key: value, ...}`");
    axis.values.push_back(value[0]);
    pairs = read_sets(item.child(value[0]));
    any = any || !pairs.empty();
  }
  if (!any) axis.overrides.clear();
  std::set<std::string> seen;
  for (const std::string& v : axis.values)
    if (!seen.insert(v).second) r.fail(list_key, "value '" + v + "' appears twice");
  return axis;
}

// The maps holding lists of values are checked here: YamlReader::reject_unknown_keys knows only
// the keys read through it, and those lists (scalars mixed with one-entry maps) are read by hand.
void reject_unknown(const YAML::Node& map, const std::string& file, const std::string& path,
                    const std::vector<std::string>& known) {
  if (!map.IsMap()) return;
  for (const auto& kv : map) {
    const std::string k = kv.first.Scalar();
    if (std::find(known.begin(), known.end(), k) != known.end()) continue;
    const YAML::Mark m = kv.first.Mark();
    const std::string near = closest(k, known);
    MNEMO_FAIL(file << ":" << m.line + 1 << ":" << m.column + 1 << ": " << (path.empty() ? k : path + "." + k)
                    << ": unknown key" << (near.empty() ? "" : " (did you mean '" + near + "'?)"));
  }
}

std::string short_key(const std::string& dotted) {
  const size_t dot = dotted.rfind('.');
  return dot == std::string::npos ? dotted : dotted.substr(dot + 1);
}

std::string folder_safe(std::string s) {
  for (char& c : s)
    if (c == '/' || c == ' ' || c == '\\') c = '_';
  return s;
}

std::string fmt(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  MNEMO_CHECK(in, "[suite] cannot read " << p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool is_number(const std::string& s) {
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size();
}

}  // namespace

Suite load_suite(const std::string& path) {
  MNEMO_CHECK(fs::is_regular_file(path), "[suite] no such file: " << path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    MNEMO_FAIL(path << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": " << e.msg);
  }
  auto sources = std::make_shared<YamlSources>();
  sources->add_file_tree(root, path);
  YamlReader r(root, path, "", sources);
  reject_unknown(root, path, "", {"name", "experiment", "seeds", "models", "settings", "budgets"});
  Suite s;
  s.file = path;
  s.name = r.get("name", fs::path(path).stem().string());
  const std::string experiment = r.get("experiment", std::string{});
  if (experiment.empty()) r.fail("experiment", "required: the experiment file every run starts from");
  s.experiment = fs::path(experiment).is_absolute() ? experiment
                                                    : (fs::path(path).parent_path() / experiment).lexically_normal().string();
  if (!fs::is_regular_file(s.experiment)) r.fail("experiment", "no such file: " + s.experiment);
  s.seeds = r.get("seeds", std::vector<uint64_t>{1});
  if (s.seeds.empty()) r.fail("seeds", "expected a non-empty list of seeds");
  s.models = read_values(r, "models", "model.arch");
  const YAML::Node& top = root;
  const YAML::Node settings = top["settings"];
  if (!settings || !settings.IsSequence() || settings.size() == 0) r.fail("settings", "expected a non-empty list of settings");
  for (size_t i = 0; i < settings.size(); ++i) {
    YamlReader item(settings[i], path, "settings[" + std::to_string(i) + "]", sources);
    reject_unknown(settings[i], path, item.path(), {"name", "sets", "axis", "values"});
    SuiteSetting st;
    st.name = item.get("name", std::string{});
    if (st.name.empty() || folder_safe(st.name) != st.name || st.name == "." || st.name == "..")
      item.fail("name", "required: a name usable as a folder name");
    for (const SuiteSetting& other : s.settings)
      if (other.name == st.name) item.fail("name", "setting '" + st.name + "' appears twice");
    st.sets = read_sets(item.child("sets"));
    const std::string axis = item.get("axis", std::string{});
    if (axis.empty()) item.fail("axis", "required: the dotted key the setting varies (data.segments, ...)");
    if (axis.find('.') == std::string::npos) item.fail("axis", "expected a dotted key, got '" + axis + "'");
    st.axis = read_values(item, "values", axis);
    s.settings.push_back(std::move(st));
  }
  YamlReader budgets = r.child("budgets");
  for (const std::string& name : budgets.keys()) {
    YamlReader b = budgets.child(name);
    SuiteBudget budget;
    budget.sets = read_sets(b.child("sets"));
    budget.seeds = b.get("seeds", std::vector<uint64_t>{});
    YamlReader kept = b.child("settings");
    for (const std::string& sname : kept.keys()) {
      const auto it = std::find_if(s.settings.begin(), s.settings.end(), [&](const SuiteSetting& x) { return x.name == sname; });
      if (it == s.settings.end()) kept.fail(sname, "no setting '" + sname + "' in this suite");
      const std::vector<std::string> values = kept.get(sname, std::vector<std::string>{});
      for (const std::string& v : values)
        if (std::find(it->axis.values.begin(), it->axis.values.end(), v) == it->axis.values.end())
          kept.fail(sname, "setting '" + sname + "' has no " + it->axis.key + " value '" + v + "'");
      budget.settings.emplace_back(sname, values);
    }
    b.reject_unknown_keys();
    s.budgets[name] = std::move(budget);
  }
  return s;
}

std::vector<SuiteRun> expand_suite(const Suite& s, const std::string& budget_name) {
  SuiteBudget budget;
  if (!budget_name.empty()) {
    const auto it = s.budgets.find(budget_name);
    if (it == s.budgets.end()) {
      std::string known;
      for (const auto& [k, v] : s.budgets) known += (known.empty() ? "" : ", ") + k;
      MNEMO_FAIL("[suite] " << s.file << " has no budget '" << budget_name << "' (budgets: "
                            << (known.empty() ? "none" : known) << ")");
    }
    budget = it->second;
  }
  const std::vector<uint64_t>& seeds = budget.seeds.empty() ? s.seeds : budget.seeds;
  std::vector<SuiteRun> runs;
  for (const SuiteSetting& st : s.settings) {
    std::vector<std::string> kept = st.axis.values;
    if (!budget.settings.empty()) {
      const auto it = std::find_if(budget.settings.begin(), budget.settings.end(),
                                   [&](const auto& p) { return p.first == st.name; });
      if (it == budget.settings.end()) continue;
      if (!it->second.empty()) kept = it->second;
    }
    for (size_t vi = 0; vi < st.axis.values.size(); ++vi) {
      const std::string& value = st.axis.values[vi];
      if (std::find(kept.begin(), kept.end(), value) == kept.end()) continue;
      for (size_t mi = 0; mi < s.models.values.size(); ++mi) {
        const std::string& model = s.models.values[mi];
        for (uint64_t seed : seeds) {
          SuiteRun run{st.name, value, model, seed, "", {}};
          const auto add = [&](const KeyValues& kv) {
            for (const auto& [k, v] : kv) run.overrides.push_back(k + "=" + v);
          };
          add(budget.sets);
          add(st.sets);
          run.overrides.push_back(st.axis.key + "=" + value);
          if (vi < st.axis.overrides.size()) add(st.axis.overrides[vi]);
          run.overrides.push_back("model.arch=" + model);
          if (mi < s.models.overrides.size()) add(s.models.overrides[mi]);
          run.overrides.push_back("seed=" + std::to_string(seed));
          const std::string point = short_key(st.axis.key) + "=" + value + ",arch=" + model + ",seed=" + std::to_string(seed);
          run.folder = st.name + "/" + folder_safe(point);
          run.overrides.push_back("name=" + s.name + "." + st.name + "." + folder_safe(point));
          runs.push_back(std::move(run));
        }
      }
    }
  }
  MNEMO_CHECK(!runs.empty(), "[suite] budget '" << budget_name << "' of " << s.file << " keeps no run");
  return runs;
}

std::pair<int64_t, double> first_reaching(const std::string& run_dir, double threshold) {
  for (const auto& row : read_jsonl(fs::path(run_dir) / "metrics.jsonl")) {
    const auto acc = row.find("val_accuracy");
    if (acc == row.end() || acc->second.empty() || std::stod(acc->second) < threshold) continue;
    const auto el = row.find("elapsed_s");
    return {std::stoll(row.at("step")), el == row.end() || el->second.empty() ? -1.0 : std::stod(el->second)};
  }
  return {-1, -1.0};
}

std::vector<SuiteRow> aggregate_suite(const std::string& dir, const std::vector<SuiteRun>& runs, const Suite& s) {
  std::vector<SuiteRow> rows;
  for (const SuiteRun& run : runs) {
    auto it = std::find_if(rows.begin(), rows.end(), [&](const SuiteRow& r) {
      return r.setting == run.setting && r.value == run.value && r.model == run.model;
    });
    if (it == rows.end()) {
      std::string axis;
      for (const SuiteSetting& st : s.settings)
        if (st.name == run.setting) axis = st.axis.key;
      rows.push_back({.setting = run.setting, .axis = axis, .value = run.value, .model = run.model});
      it = rows.end() - 1;
    }
    SuiteRow& row = *it;
    ++row.seeds;
    const fs::path run_dir = fs::path(dir) / run.folder;
    const fs::path summary = run_dir / "summary.json";
    if (!fs::exists(summary)) continue;
    const auto sum = flat_object(read_text(summary), summary.string());
    const auto number = [&](const char* key) {
      const auto f = sum.find(key);
      MNEMO_CHECK(f != sum.end() && !f->second.empty(), "[suite] " << summary.string() << " has no " << key);
      return std::stod(f->second);
    };
    row.seed_ids.push_back(run.seed);
    row.accuracy.push_back(number("final_val_accuracy"));
    row.params = int64_t(number("params"));
    row.steps = int64_t(number("steps"));
    row.tokens_per_s += number("tokens_per_s");
    const auto [step, seconds] = first_reaching(run_dir.string(), 0.99);
    if (step >= 0) ++row.reached, row.steps_to += double(step), row.seconds_to += seconds;
  }
  for (SuiteRow& r : rows) {
    const double n = double(r.finished());
    if (n == 0) continue;
    r.tokens_per_s /= n;
    for (double a : r.accuracy) r.mean += a / n;
    double ss = 0;
    for (double a : r.accuracy) ss += (a - r.mean) * (a - r.mean);
    r.std = n > 1 ? std::sqrt(ss / (n - 1)) : 0.0;
    r.best = *std::max_element(r.accuracy.begin(), r.accuracy.end());
    if (r.reached > 0) r.steps_to /= double(r.reached), r.seconds_to /= double(r.reached);
  }
  return rows;
}

std::string longest_reach(const std::vector<SuiteRow>& rows, const std::string& setting, const std::string& model,
                          double threshold) {
  std::string reach;
  for (const SuiteRow& r : rows)
    if (r.setting == setting && r.model == model && r.finished() > 0 && r.mean >= threshold) reach = r.value;
  return reach;
}

SuiteReport suite_report(const std::vector<SuiteRow>& rows, const Suite& s, const std::string& image_dir) {
  SuiteReport out;
  out.csv = "setting,axis,value,model,params,steps,seeds,finished,mean_accuracy,std_accuracy,best_accuracy,"
            "seed_accuracies,reached_0.99,steps_to_0.99,seconds_to_0.99,tokens_per_s\n";
  for (const SuiteRow& r : rows) {
    std::string per_seed;
    for (size_t i = 0; i < r.accuracy.size(); ++i)
      per_seed += (i ? ";" : "") + std::to_string(r.seed_ids[i]) + ":" + fmt(r.accuracy[i], 4);
    const bool any = r.finished() > 0;
    out.csv += r.setting + "," + r.axis + "," + r.value + "," + r.model + "," + (any ? std::to_string(r.params) : "") +
               "," + (any ? std::to_string(r.steps) : "") + "," + std::to_string(r.seeds) + "," +
               std::to_string(r.finished()) + "," + (any ? fmt(r.mean, 4) : "") + "," + (any ? fmt(r.std, 4) : "") +
               "," + (any ? fmt(r.best, 4) : "") + "," + per_seed + "," + std::to_string(r.reached) + "," +
               (r.reached ? fmt(r.steps_to, 0) : "") + "," + (r.reached ? fmt(r.seconds_to, 1) : "") + "," +
               (any ? fmt(r.tokens_per_s, 0) : "") + "\n";
  }
  std::vector<std::string> models;
  for (const SuiteRow& r : rows)
    if (std::find(models.begin(), models.end(), r.model) == models.end()) models.push_back(r.model);
  std::vector<const SuiteSetting*> settings;
  for (const SuiteSetting& st : s.settings)
    if (std::any_of(rows.begin(), rows.end(), [&](const SuiteRow& r) { return r.setting == st.name; }))
      settings.push_back(&st);

  std::string& md = out.markdown;
  md += "Longest reach: the largest value of each setting's axis at which the mean held-out answer accuracy "
        "over seeds is at least 0.9 (- where no value is; not run: no finished run yet).\n\n| setting | axis |";
  for (const std::string& m : models) md += " " + m + " |";
  md += "\n|---|---|" + [&] { std::string sep; for (size_t i = 0; i < models.size(); ++i) sep += "---:|"; return sep; }() + "\n";
  for (const SuiteSetting* st : settings) {
    md += "| " + st->name + " | " + short_key(st->axis.key) + " |";
    for (const std::string& m : models) {
      const std::string reach = longest_reach(rows, st->name, m);
      const bool ran = std::any_of(rows.begin(), rows.end(), [&](const SuiteRow& r) {
        return r.setting == st->name && r.model == m && r.finished() > 0;
      });
      md += " " + (!ran ? std::string("not run") : reach.empty() ? std::string("-") : reach) + " |";
    }
    md += "\n";
  }
  // Matched sizes are the premise of the comparison: the spread is printed, not assumed.
  const SuiteRow* small = nullptr;
  const SuiteRow* large = nullptr;
  for (const SuiteRow& r : rows) {
    if (r.finished() == 0) continue;
    if (!small || r.params < small->params) small = &r;
    if (!large || r.params > large->params) large = &r;
  }
  if (small)
    md += "\nParameter counts from " + std::to_string(small->params) + " (" + small->model + ") to " +
          std::to_string(large->params) + " (" + large->model + "): the largest is " +
          fmt(100.0 * (double(large->params) / double(small->params) - 1), 1) + "% above the smallest.\n";
  for (const SuiteSetting* st : settings) {
    const std::string axis = short_key(st->axis.key);
    md += "\n#### " + st->name + "\n\n";
    if (!st->sets.empty()) {
      md += "Sets";
      for (size_t i = 0; i < st->sets.size(); ++i)
        md += std::string(i ? ", " : " ") + "`" + st->sets[i].first + ": " + st->sets[i].second + "`";
      md += "; the axis is `" + st->axis.key + "`.\n\n";
    }
    md += "![" + st->name + "](" + image_dir + st->name + ".png)\n\n";
    md += "| " + axis + " | model | params | seeds | mean | std | best | per seed | >= 0.99 | steps to 0.99 | "
          "s to 0.99 | tokens/s |\n|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n";
    for (const SuiteRow& r : rows) {
      if (r.setting != st->name) continue;
      const bool any = r.finished() > 0;
      std::string per_seed;
      for (size_t i = 0; i < r.accuracy.size(); ++i)
        per_seed += (i ? ", " : "") + std::to_string(r.seed_ids[i]) + ": " + fmt(r.accuracy[i], 3);
      md += "| " + r.value + " | " + r.model + " | " + (any ? std::to_string(r.params) : "") + " | " +
            std::to_string(r.finished()) + "/" + std::to_string(r.seeds) + " | " + (any ? fmt(r.mean, 3) : "") +
            " | " + (any ? fmt(r.std, 3) : "") + " | " + (any ? fmt(r.best, 3) : "") + " | " + per_seed + " | " +
            std::to_string(r.reached) + "/" + std::to_string(r.finished()) + " | " +
            (r.reached ? fmt(r.steps_to, 0) : "-") + " | " + (r.reached ? fmt(r.seconds_to, 1) : "-") + " | " +
            (any ? fmt(r.tokens_per_s, 0) : "") + " |\n";
    }
  }
  return out;
}

bool plot_setting(const std::vector<SuiteRow>& rows, const std::string& setting, const std::string& png,
                  std::string* why) {
  if (const std::string missing = gnuplot_missing(); !missing.empty()) {
    if (why) *why = missing;
    return false;
  }
  std::vector<std::string> models, values;
  std::string axis;
  for (const SuiteRow& r : rows) {
    if (r.setting != setting || r.finished() == 0) continue;
    axis = short_key(r.axis);
    if (std::find(models.begin(), models.end(), r.model) == models.end()) models.push_back(r.model);
    if (std::find(values.begin(), values.end(), r.value) == values.end()) values.push_back(r.value);
  }
  MNEMO_CHECK(!models.empty(), "[suite] setting '" << setting << "' has no finished run to plot");
  // Numeric axes are drawn to scale (log 2 when they span a factor of 8 or more), others by position.
  bool numeric = true;
  double lo = INFINITY, hi = -INFINITY;
  for (const std::string& v : values) {
    numeric = numeric && is_number(v);
    if (numeric) lo = std::min(lo, std::stod(v)), hi = std::max(hi, std::stod(v));
  }
  const auto x_of = [&](const std::string& v) {
    return numeric ? v : std::to_string(std::find(values.begin(), values.end(), v) - values.begin());
  };
  std::string script = "set terminal pngcairo size 900,550 noenhanced\nset output '" + png + "'\n";
  script += "set title '" + setting + ": held-out answer accuracy (mean and std over seeds)'\n";
  script += "set xlabel '" + axis + "'\nset ylabel 'answer accuracy'\nset yrange [0:1.05]\nset grid\n"
            "set key outside right\nset offsets graph 0.03, graph 0.03, 0, 0\n";
  if (numeric && lo > 0 && hi / lo >= 8) script += "set logscale x 2\n";
  if (values.size() == 1) {  // one value: gnuplot would warn about an empty x range
    const double x = numeric ? lo : 0.0;
    script += "set xrange [" + fmt(x - 1, 3) + ":" + fmt(x + 1, 3) + "]\n";
  }
  script += "set xtics (";
  for (size_t i = 0; i < values.size(); ++i) script += (i ? ", " : "") + std::string("'") + values[i] + "' " + x_of(values[i]);
  script += ")\n";
  std::string plots;
  for (size_t m = 0; m < models.size(); ++m) {
    script += "$d" + std::to_string(m) + " << EOD\n";
    for (const SuiteRow& r : rows)
      if (r.setting == setting && r.model == models[m] && r.finished() > 0)
        script += x_of(r.value) + " " + fmt(r.mean, 6) + " " + fmt(r.std, 6) + "\n";
    script += "EOD\n";
    plots += std::string(plots.empty() ? "plot " : ", ") + "$d" + std::to_string(m) +
             " using 1:2:3 with yerrorlines lw 2 title '" + models[m] + "'";
  }
  script += plots + ", 0.9 with lines dt 2 lc 'gray' title 'reach threshold 0.9'\n";
  run_gnuplot(script, png, "suite");
  return true;
}

void replace_marked_section(const std::string& path, const std::string& marker, const std::string& body) {
  const std::string begin = "<!-- BEGIN " + marker + " -->", end = "<!-- END " + marker + " -->";
  std::string text = fs::exists(path) ? read_text(path) : "";
  const size_t b = text.find(begin), e = text.find(end);
  MNEMO_CHECK((b == std::string::npos) == (e == std::string::npos),
              "[suite] " << path << " has '" << (b == std::string::npos ? end : begin) << "' without '"
                         << (b == std::string::npos ? begin : end) << "': fix the file by hand");
  const std::string section = begin + "\n" + body + (body.empty() || body.back() == '\n' ? "" : "\n") + end;
  if (b == std::string::npos) {
    if (!text.empty() && text.back() != '\n') text += "\n";
    text += (text.empty() ? "" : "\n") + section + "\n";
  } else {
    MNEMO_CHECK(b < e, "[suite] " << path << ": '" << end << "' comes before '" << begin << "'");
    text = text.substr(0, b) + section + text.substr(e + end.size());
  }
  write_file_atomic(path, text);
}

namespace {

volatile sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int sig) { g_stop_signal = sig; }

struct Outcome {
  std::vector<std::string> failed;  // "folder: why"
  int64_t trained = 0;
  int interrupted_by = 0;
};

// One run at a time in this process.
void run_in_process(const std::vector<SuiteRun>& runs, const std::vector<ExperimentConfig>& configs,
                    const std::vector<size_t>& todo, const fs::path& dir, bool progress, Progress& bar,
                    int64_t& done, Outcome& out) {
  for (size_t i : todo) {
    const std::string run_dir = (dir / runs[i].folder).string();
    bar.update(done, "run " + runs[i].folder);
    try {
      const RunResult r = train_run(configs[i], {.dir = run_dir, .resume = fs::exists(checkpoint_path(run_dir)),
                                                 .progress = progress});
      if (r.interrupted_by != 0) {
        out.interrupted_by = r.interrupted_by;
        return;
      }
      ++out.trained;
    } catch (const Error& e) {
      out.failed.push_back(runs[i].folder + ": " + e.what());
      bar.message("suite: " + runs[i].folder + " failed: " + e.what());
    }
    ++done;
  }
}

// `jobs` child processes at a time: `exe train EXPERIMENT --set ... --out RUN --quiet` (or
// `--resume RUN --set train.steps=N`), each one's output in RUN/stdout.txt. SIGINT and SIGTERM are passed to
// the children, which checkpoint; no new run starts after one.
void run_in_children(const Suite& s, const std::vector<SuiteRun>& runs, const std::vector<ExperimentConfig>& configs,
                     const std::vector<size_t>& todo,
                     const fs::path& dir, const SuiteOptions& o, Progress& bar, int64_t& done, Outcome& out) {
  MNEMO_CHECK(!o.exe.empty() && fs::exists(o.exe), "[suite] --jobs " << o.jobs << " needs the mnemo binary, got '"
                                                                       << o.exe << "'");
  struct sigaction sa {}, old_int{}, old_term{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: waitpid returns on a signal
  g_stop_signal = 0;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  std::map<pid_t, size_t> active;
  size_t next = 0;
  bool forwarded = false;
  while (next < todo.size() || !active.empty()) {
    while (g_stop_signal == 0 && active.size() < size_t(o.jobs) && next < todo.size()) {
      const size_t i = todo[next++];
      const fs::path run_dir = dir / runs[i].folder;
      fs::create_directories(run_dir);
      std::vector<std::string> args{o.exe, "train"};
      if (fs::exists(checkpoint_path(run_dir.string()))) {
        // The step count is the one key a resumed run takes from the suite (train --resume allows it).
        args.insert(args.end(), {"--resume", run_dir.string(), "--set",
                                 "train.steps=" + std::to_string(configs[i].train.steps)});
      } else {
        args.push_back(s.experiment);
        for (const std::string& ov : runs[i].overrides) args.insert(args.end(), {"--set", ov});
        for (const std::string& ov : o.sets) args.insert(args.end(), {"--set", ov});
        args.insert(args.end(), {"--out", run_dir.string()});
      }
      args.push_back("--quiet");
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      posix_spawn_file_actions_t fa;
      posix_spawn_file_actions_init(&fa);
      const std::string log = (run_dir / "stdout.txt").string();
      posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      posix_spawn_file_actions_adddup2(&fa, 1, 2);
      pid_t pid = 0;
      const int rc = posix_spawn(&pid, o.exe.c_str(), &fa, nullptr, argv.data(), environ);
      posix_spawn_file_actions_destroy(&fa);
      MNEMO_CHECK(rc == 0, "[suite] cannot start " << o.exe << ": " << std::strerror(rc));
      active[pid] = i;
      bar.update(done, "run " + runs[i].folder);
    }
    if (g_stop_signal != 0 && !forwarded) {
      for (const auto& [pid, i] : active) ::kill(pid, g_stop_signal);
      forwarded = true;
    }
    if (active.empty()) break;
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      MNEMO_FAIL("[suite] waitpid: " << std::strerror(errno));
    }
    const auto it = active.find(pid);
    if (it == active.end()) continue;
    const SuiteRun& run = runs[it->second];
    active.erase(it);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code == 0) {
      ++out.trained, ++done;
    } else if (code == 130 || code == 143) {
      out.interrupted_by = code - 128;
    } else {
      std::string last;  // the child's error line
      std::ifstream in(dir / run.folder / "stdout.txt");
      for (std::string line; std::getline(in, line);)
        if (line.find("error") != std::string::npos) last = line;
      out.failed.push_back(run.folder + ": exit " + std::to_string(code) + (last.empty() ? "" : ": " + last));
      bar.message("suite: " + out.failed.back());
      ++done;
    }
  }
  if (g_stop_signal != 0) out.interrupted_by = g_stop_signal;
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

}  // namespace

std::string run_suite(const std::string& path, const SuiteOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const Suite s = load_suite(path);
  const std::vector<SuiteRun> runs = expand_suite(s, o.budget);
  MNEMO_CHECK(o.jobs >= 1, "[suite] --jobs must be at least 1, got " << o.jobs);
  const fs::path dir = o.dir.empty() ? fs::path("runs") / (s.name + (o.budget.empty() ? "" : "-" + o.budget)) : fs::path(o.dir);
  fs::create_directories(dir);
  // Every run's config is checked before the first trains: a typo fails now, not after hours.
  std::vector<ExperimentConfig> configs;
  std::vector<size_t> todo;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::vector<std::string> sets = runs[i].overrides;
    sets.insert(sets.end(), o.sets.begin(), o.sets.end());
    try {
      configs.push_back(load_config(s.experiment, sets));
    } catch (const Error& e) {
      MNEMO_FAIL("[suite] " << s.file << ": run " << runs[i].folder << ": " << e.what());
    }
    if (!fs::exists(dir / runs[i].folder / "summary.json")) todo.push_back(i);
  }
  Outcome out;
  int64_t done = int64_t(runs.size() - todo.size());
  if (!o.report_only && !todo.empty()) {
    Progress bar({.label = "suite", .unit = "runs", .total = int64_t(runs.size()), .start = done,
                  .mode = o.progress ? ProgressMode::plain : ProgressMode::off, .plain_every_s = 0});
    if (o.jobs == 1) run_in_process(runs, configs, todo, dir, o.progress, bar, done, out);
    else run_in_children(s, runs, configs, todo, dir, o, bar, done, out);
    bar.finish();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    json::ObjectWriter w;
    w.add("finished_at", utc_now()).add("budget", o.budget).add("jobs", o.jobs).add("trained", out.trained);
    w.add("failed", int64_t(out.failed.size())).add("wall_s", wall);
    std::ofstream(dir / "invocations.jsonl", std::ios::app) << w.str() << "\n";
  }

  const std::vector<SuiteRow> rows = aggregate_suite(dir.string(), runs, s);
  std::set<std::string> settings_run;
  for (const SuiteRun& r : runs) settings_run.insert(r.setting);
  int64_t finished = 0;
  double train_s = 0, wall_s = 0;
  int64_t invocations = 0, max_jobs = 0;
  for (const SuiteRun& r : runs)
    if (fs::exists(dir / r.folder / "summary.json")) {
      ++finished;
      train_s += std::stod(flat_object(read_text(dir / r.folder / "summary.json"), r.folder).at("train_seconds"));
    }
  for (const auto& inv : read_jsonl(dir / "invocations.jsonl"))
    if (inv.at("budget") == o.budget && std::stoll(inv.at("trained")) > 0)
      ++invocations, wall_s += std::stod(inv.at("wall_s")), max_jobs = std::max<int64_t>(max_jobs, std::stoll(inv.at("jobs")));
  std::vector<std::string> plotted;
  for (const SuiteSetting& st : s.settings) {
    if (!std::any_of(rows.begin(), rows.end(), [&](const SuiteRow& r) { return r.setting == st.name && r.finished() > 0; }))
      continue;
    std::string why;
    if (plot_setting(rows, st.name, (dir / (st.name + ".png")).string(), &why)) plotted.push_back(st.name);
    else std::cerr << "suite: no plot: " << why << "\n";
  }
  const SuiteReport local = suite_report(rows, s);
  write_file_atomic((dir / "results.csv").string(), local.csv);
  char head[512];
  std::snprintf(head, sizeof head,
                "%ld of %ld runs finished (%s%s, %zu settings x %zu models); training time summed over runs %s; "
                "wall time %s over %ld invocation(s) that trained, up to %ld runs at once. Report written %s.\n\n",
                long(finished), long(runs.size()), o.budget.empty() ? "the whole suite" : "budget ",
                o.budget.c_str(), settings_run.size(), s.models.values.size(), format_duration(train_s).c_str(),
                format_duration(wall_s).c_str(), long(invocations), long(std::max<int64_t>(max_jobs, 1)),
                utc_now().c_str());
  const std::string command = o.command.empty() ? "" : "```\n" + o.command + "\n```\n\n";
  write_file_atomic((dir / "results.md").string(), command + head + local.markdown);
  if (!o.results_md.empty()) {
    const fs::path md(o.results_md);
    const fs::path images = fs::path("results") / (s.name + (o.budget.empty() ? "" : "-" + o.budget));
    fs::create_directories(md.parent_path() / images);
    for (const std::string& p : plotted)
      fs::copy_file(dir / (p + ".png"), md.parent_path() / images / (p + ".png"), fs::copy_options::overwrite_existing);
    const SuiteReport doc = suite_report(rows, s, images.string() + "/");
    replace_marked_section(o.results_md, "mnemo suite " + s.name + (o.budget.empty() ? "" : " " + o.budget),
                           "Regenerated by the command below; edit around the markers, not between them.\n\n" +
                               command + head + doc.markdown);
  }
  if (out.interrupted_by != 0)
    MNEMO_FAIL("[suite] stopped by signal " << out.interrupted_by << " (finished runs are kept, started ones "
                                             "checkpointed): run the same command again to resume");
  if (!out.failed.empty()) {
    std::string list;
    for (const std::string& f : out.failed) list += "\n  " + f;
    MNEMO_FAIL("[suite] " << out.failed.size() << " run(s) failed (the others are in the report):" << list);
  }
  return dir.string();
}

}  // namespace mnemo::experiments
