// `mnemo inspect RUN [--input FILE] [--out DIR]`: what each segment reads from memory.
#pragma once

#include <CLI/CLI.hpp>

namespace mnemo::tools {

void add_inspect_command(CLI::App& app);

}  // namespace mnemo::tools
