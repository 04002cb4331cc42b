// `mnemo suite FILE`: every setting x model x seed of a suite file, resumable, aggregated
// over seeds into tables and plots (experiments/suite.h).
#pragma once

#include <CLI/CLI.hpp>

namespace mnemo::tools {

void add_suite_command(CLI::App& app);

}  // namespace mnemo::tools
