// The one `mnemo` command. Subcommands register themselves here; errors from the
// library (mnemo::Error) become a message and exit code 1, never a crash.
#include <CLI/CLI.hpp>
#include <iostream>

#include "autograd/error.h"
#include "bench/bench.h"
#include "mnemo_config.h"
#include "tools/gradcheck_cmd.h"
#include "tools/sweep_cmd.h"
#include "tools/train_cmd.h"

int main(int argc, char** argv) {
  CLI::App app{"mnemo: memory-augmented transformers, trained on a CPU from YAML files"};
  app.set_version_flag("--version", std::string("mnemo ") + MNEMO_VERSION);
  app.require_subcommand(1);
  mnemo::tools::add_train_commands(app);
  mnemo::tools::add_sweep_commands(app);
  mnemo::tools::add_gradcheck_command(app);
  mnemo::bench::add_bench_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const mnemo::Error& e) {
    std::cerr << "mnemo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
