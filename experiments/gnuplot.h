// The PNGs mnemo draws (sweep and plot curves, evaluation buckets, suite reach, inspect
// heatmaps) all go through gnuplot, an optional Debian package: one place checks for it and
// one runs a script.
#pragma once

#include <string>

namespace mnemo::experiments {

// Why no PNG can be drawn ("gnuplot is not installed (...)"), or empty when gnuplot is there.
std::string gnuplot_missing();

// Pipes `script` to gnuplot; throws "[tag] ..." when it cannot start or `png` is not written.
void run_gnuplot(const std::string& script, const std::string& png, const std::string& tag);

}  // namespace mnemo::experiments
