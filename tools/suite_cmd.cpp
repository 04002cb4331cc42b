#include "tools/suite_cmd.h"

#include <filesystem>
#include <fstream>
#include <iostream>

#include "experiments/suite.h"

namespace mnemo::tools {
namespace {

struct SuiteArgs {
  std::string file;
  experiments::SuiteOptions opts;
  bool quiet = false;
};

// The command as a user would type it again (the binary as `mnemo`), for the report.
std::string command_line(const SuiteArgs& a) {
  std::string c = "mnemo suite " + a.file;
  if (!a.opts.budget.empty()) c += " --budget " + a.opts.budget;
  for (const std::string& s : a.opts.sets) c += " --set " + s;
  if (a.opts.jobs != 1) c += " --jobs " + std::to_string(a.opts.jobs);
  if (!a.opts.dir.empty()) c += " --out " + a.opts.dir;
  if (!a.opts.results_md.empty()) c += " --results-md " + a.opts.results_md;
  return c;
}

int suite(SuiteArgs a) {
  a.opts.progress = !a.quiet;
  a.opts.command = command_line(a);
  // Children run this same binary: /proc/self/exe survives a relative argv[0] and a changed PATH.
  std::error_code ec;
  a.opts.exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  const std::string dir = experiments::run_suite(a.file, a.opts);
  std::cout << "tables: " << dir << "/results.md (and results.csv), plots: " << dir << "/<setting>.png\n";
  if (!a.opts.results_md.empty()) std::cout << "section updated: " << a.opts.results_md << "\n";
  return 0;
}

}  // namespace

void add_suite_command(CLI::App& app) {
  auto a = std::make_shared<SuiteArgs>();
  CLI::App* c = app.add_subcommand("suite", "Train every setting x model x seed of a suite file, then aggregate "
                                            "over seeds into tables and plots");
  c->add_option("file", a->file, "Suite YAML file (experiments/suites/*.yaml)")->required();
  c->add_option("--budget", a->opts.budget, "A budget of the file's `budgets:` block (default: the whole suite)");
  c->add_option("--set", a->opts.sets, "Override a config key for every run (repeatable)");
  c->add_option("--jobs", a->opts.jobs, "Runs at once, each in its own process")->capture_default_str();
  c->add_option("--out", a->opts.dir, "Suite folder (default: runs/<name>[-<budget>])");
  c->add_option("--results-md", a->opts.results_md,
                "Also write the report into this Markdown file between its markers, plots under results/ beside it");
  c->add_flag("--report-only", a->opts.report_only, "Train nothing: tabulate the finished runs");
  c->add_flag("--quiet", a->quiet, "No progress lines");
  c->footer("Finished runs are skipped and a started one resumes when the command is run again.\n"
            "Runs go into <out>/<setting>/<axis>=<value>,arch=<model>,seed=<n>; the report into <out>/results.md,\n"
            "results.csv and <out>/<setting>.png (gnuplot).");
  c->callback([a] { throw CLI::RuntimeError(suite(*a)); });
}

}  // namespace mnemo::tools
