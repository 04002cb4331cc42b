// Runs registered gradient checks in f64 and prints one row per checked leaf:
// check, input, shape, max abs err, max rel err, verdict. Exits 1 on any failure.
// --device cuda runs each check in f32 on the device (the emulated one under
// MNEMO_EMULATE_CUDA=1) against the f64 CPU run, with f32 tolerances: the output row first,
// then each leaf's gradient.
#include "tools/gradcheck_cmd.h"

#include <chrono>
#include <cstdio>
#include <iostream>

#include "autograd/gradcheck/gradcheck.h"
#include "kernels/emulated/device.h"

namespace mnemo::tools {
namespace {

struct Args {
  std::vector<std::string> names;
  bool list = false;
  std::string device = "cpu";
  gradcheck::Options opts;
};

// f32 on the device against f64: an f32 rounding of each input and every op, not a
// finite-difference error.
constexpr double kDeviceAtol = 1e-4, kDeviceRtol = 1e-3;

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
  if (a.opts.device == Device::cuda) {
    const std::string why = kernels::device::unavailable();
    if (!why.empty()) {
      std::cerr << "mnemo gradcheck: --device cuda cannot run here: " << why
                << " (MNEMO_EMULATE_CUDA=1 emulates the device on the host)\n";
      return 2;
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
  if (a.opts.device == Device::cpu)
    std::printf("\n%zu checks, %zu passed, %d failed (eps %.0e, atol %.0e, rtol %.0e, %.2f s)\n", checks.size(),
                checks.size() - size_t(failed), failed, a.opts.eps, a.opts.atol, a.opts.rtol, secs);
  else
    std::printf("\n%zu checks, %zu passed, %d failed (f32 on %s%s against f64 on the CPU, atol %.0e, rtol %.0e, "
                "%.2f s)\n", checks.size(), checks.size() - size_t(failed), failed, device_name(a.opts.device),
                kernels::device::emulated() ? " (emulated)" : "", a.opts.atol, a.opts.rtol, secs);
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
  cmd->add_option("--device", args->device, "cpu: f64 against central differences; cuda: f32 on the device against "
                                            "the f64 CPU run (atol 1e-4, rtol 1e-3 unless given)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->callback([args, cmd] {
    if (args->device == "cuda") {
      args->opts.device = Device::cuda;
      if (cmd->count("--atol") == 0) args->opts.atol = kDeviceAtol;
      if (cmd->count("--rtol") == 0) args->opts.rtol = kDeviceRtol;
    }
    throw CLI::RuntimeError(run(*args));
  });
}

}  // namespace mnemo::tools
