// `mnemo gradcheck [NAME...]`: the gradient-check registry from the command line.
#pragma once

#include <CLI/CLI.hpp>

namespace mnemo::tools {

void add_gradcheck_command(CLI::App& app);

}  // namespace mnemo::tools
