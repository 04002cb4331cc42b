// Runs registered gradient checks in f64 and prints one row per checked leaf:
// check, input, shape, max abs err, max rel err, verdict. Exits 1 on any failure.
#include "tools/gradcheck_cmd.h"

#include <chrono>
#include <cstdio>
#include <iostream>

#include "autograd/gradcheck/gradcheck.h"

namespace mnemo::tools {
namespace {

struct Args {
  std::vector<std::string> names;
  bool list = false;
  gradcheck::Options opts;
};

int run(const Args& a) {
  if (a.list) {
    for (const auto& n : gradcheck::names()) std::cout << n << "\n";
    return 0;
  }
  std::vector<const gradcheck::Check*> checks;
  if (a.names.empty()) {
    for (const auto& c : gradcheck::all()) checks.push_back(&c);
  } else {
    for (const auto& n : a.names) {
      // A name selects that check and every "name.variant" of it.
      size_t before = checks.size();
      for (const auto& c : gradcheck::all())
        if (c.name == n || c.name.rfind(n + ".", 0) == 0) checks.push_back(&c);
      if (checks.size() == before) {
        std::cerr << "mnemo gradcheck: no check named '" << n << "' (see mnemo gradcheck --list)\n";
        return 2;
      }
    }
  }
  std::printf("%-28s %-9s %-16s %12s %12s  %s\n", "check", "input", "shape", "max abs err", "max rel err", "verdict");
  int failed = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto* c : checks) {
    const auto r = gradcheck::run(*c, a.opts);
    if (!r.error.empty()) std::printf("%-28s %-9s %-16s %12s %12s  FAIL: %s\n", r.name.c_str(), "-", "-", "-", "-", r.error.c_str());
    for (const auto& l : r.leaves) {
      const std::string leaf = std::string(l.kind) + " " + std::to_string(l.index);
      std::printf("%-28s %-9s %-16s %12.3e %12.3e  %s\n", r.name.c_str(), leaf.c_str(), l.shape.str().c_str(),
                  l.max_abs_err, l.max_rel_err, l.ok ? "ok" : "FAIL");
    }
    failed += r.ok ? 0 : 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n%zu checks, %zu passed, %d failed (eps %.0e, atol %.0e, rtol %.0e, %.2f s)\n", checks.size(),
              checks.size() - size_t(failed), failed, a.opts.eps, a.opts.atol, a.opts.rtol, secs);
  return failed ? 1 : 0;
}

}  // namespace

void add_gradcheck_command(CLI::App& app) {
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("gradcheck", "Check every op's backward against central differences in f64");
  cmd->add_option("names", args->names, "Checks to run (a name also selects its name.variant checks); all if none");
  cmd->add_flag("--list", args->list, "List the registered checks and exit");
  cmd->add_option("--eps", args->opts.eps, "Finite-difference step")->capture_default_str();
  cmd->add_option("--atol", args->opts.atol, "Absolute tolerance")->capture_default_str();
  cmd->add_option("--rtol", args->opts.rtol, "Relative tolerance")->capture_default_str();
  cmd->add_option("--seed", args->opts.seed, "Seed for inputs and the output projection")->capture_default_str();
  cmd->callback([args] { throw CLI::RuntimeError(run(*args)); });
}

}  // namespace mnemo::tools
