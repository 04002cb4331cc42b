#include "tools/sweep_cmd.h"

#include <filesystem>
#include <fstream>
#include <iostream>

#include "experiments/sweep.h"

namespace mnemo::tools {
namespace {

struct SweepArgs {
  std::string config;
  experiments::SweepOptions opts;
  bool quiet = false;
};

int sweep(SweepArgs a) {
  a.opts.progress = !a.quiet;
  const std::string dir = experiments::run_sweep(a.config, a.opts);
  std::cout << "table: " << dir << "/summary.md (and summary.csv)\n";
  if (std::filesystem::exists(dir + "/curves.png")) std::cout << "plot:  " << dir << "/curves.png\n";
  std::cout << std::ifstream(dir + "/summary.md").rdbuf();
  return 0;
}

struct PlotArgs {
  std::vector<std::string> runs;
  std::string metric = "val_loss", out = "curves.png", x = "step";
};

int plot(const PlotArgs& a) {
  std::string why;
  if (!experiments::plot_runs(a.runs, a.metric, a.out, &why, a.x)) {
    std::cerr << "mnemo plot: " << why << "\n";
    return 1;
  }
  std::cout << "plot: " << a.out << "\n";
  return 0;
}

}  // namespace

void add_sweep_commands(CLI::App& app) {
  {
    auto a = std::make_shared<SweepArgs>();
    CLI::App* c = app.add_subcommand("sweep", "Run the grid of an experiment's `sweep:` block, then tabulate and plot it");
    c->add_option("config", a->config, "Experiment YAML file with a sweep: block")->required();
    c->add_option("--set", a->opts.sets, "Override a config key for every run (repeatable)");
    c->add_option("--out", a->opts.dir, "Sweep folder (default: runs/<name>)");
    c->add_flag("--quiet", a->quiet, "No progress lines");
    c->footer("Example block:\n  sweep:\n    model.arch: [transformer, transformer_xl]\n    seed: [1, 2, 3]\n"
              "A value written as a one-entry map also sets keys at its points:\n"
              "    model.arch: [transformer, {brt: {model.dim: 60, train.optimizer.lr: 3.0e-3}}]\n"
              "Finished runs are skipped and a started one resumes when the sweep is run again.");
    c->callback([a] { throw CLI::RuntimeError(sweep(*a)); });
  }
  {
    auto a = std::make_shared<PlotArgs>();
    CLI::App* c = app.add_subcommand("plot", "Draw the curves of one or more runs into a PNG (gnuplot)");
    c->add_option("runs", a->runs, "Run folders")->required();
    c->add_option("--metric", a->metric, "val_loss, val_accuracy, val_bpb or train_loss")->capture_default_str();
    c->add_option("--out", a->out, "PNG file")->capture_default_str();
    c->add_option("--x", a->x, "x axis: step, seconds (training time) or tokens (trained tokens)")
        ->check(CLI::IsMember({"step", "seconds", "tokens"}))
        ->capture_default_str();
    c->callback([a] { throw CLI::RuntimeError(plot(*a)); });
  }
}

}  // namespace mnemo::tools
