// `mnemo train | eval | generate | import`: one run of an experiment file, from the command line.
#pragma once

#include <CLI/CLI.hpp>

namespace mnemo::tools {

void add_train_commands(CLI::App& app);

}  // namespace mnemo::tools
