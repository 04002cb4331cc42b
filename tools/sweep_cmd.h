// `mnemo sweep FILE` and `mnemo plot RUN...`.
#pragma once

#include <CLI/CLI.hpp>

namespace mnemo::tools {

void add_sweep_commands(CLI::App& app);

}  // namespace mnemo::tools
