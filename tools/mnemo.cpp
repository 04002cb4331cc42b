// The one `mnemo` command. Subcommands register themselves here. Every failure ends as one
// line `mnemo: error: ...` and exit code 1 (2 for a usage error): library errors
// (mnemo::Error), the standard library's (a filesystem error, running out of memory) and
// anything else thrown; none escapes as an abort.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <new>

#include "autograd/error.h"
#include "bench/bench.h"
#include "experiments/distributed.h"
#include "mnemo_config.h"
#include "tools/gradcheck_cmd.h"
#include "tools/inspect_cmd.h"
#include "tools/suite_cmd.h"
#include "tools/sweep_cmd.h"
#include "tools/train_cmd.h"

int main(int argc, char** argv) {
  CLI::App app{"mnemo: memory-augmented transformers, trained on a CPU from YAML files"};
  app.set_version_flag("--version", std::string("mnemo ") + MNEMO_VERSION);
  app.require_subcommand(1);
  mnemo::tools::add_train_commands(app);
  mnemo::tools::add_sweep_commands(app);
  mnemo::tools::add_gradcheck_command(app);
  mnemo::tools::add_inspect_command(app);
  mnemo::tools::add_suite_command(app);
  mnemo::bench::add_bench_command(app);
  // Under mpirun only `train` shares its work between the processes; any other command would
  // run whole in every process, into the same files and onto the same terminal.
  for (CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == "train") continue;
    sub->preparse_callback([name = sub->get_name()](size_t) {
      const int n = mnemo::experiments::launcher_world_size();
      MNEMO_CHECK(n <= 1, "`mnemo " << name << "` runs in one process, and under mpirun -n " << n
                                    << " each process would run all of it, into the same files; only `mnemo train` "
                                       "shares its work over MPI (run this without mpirun)");
    });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a subcommand's own exit code
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help or --version
    std::cerr << "mnemo: error: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const mnemo::Error& e) {
    std::cerr << "mnemo: error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "mnemo: error: out of memory (a size in the config or the input may be too large)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "mnemo: error: " << e.what() << "\n";
    return 1;
  } catch (...) {
    std::cerr << "mnemo: error: an unknown exception\n";
    return 1;
  }
  return 0;
}
