// The report of `mnemo eval --tokens`: how the loss falls with the position in the stream
// (EvalResult::by_position) as a text table, a CSV and a PNG drawn with gnuplot.
#pragma once

#include <string>

#include "experiments/evaluate.h"

namespace mnemo::experiments {

// One row per bucket: positions, tokens, mean loss (nats), bits per byte, accuracy.
std::string position_table(const EvalResult& e);
// The same, machine-readable: begin,end,tokens,loss,bits_per_byte,accuracy (full precision).
std::string position_csv(const EvalResult& e);
// Bits per byte against the bucket's middle position (log x) into `png`, with the overall
// figure as a horizontal line. Returns false, with `why`, when gnuplot is missing or no
// bucket counts a token.
bool plot_positions(const EvalResult& e, const std::string& title, const std::string& png, std::string* why = nullptr);

}  // namespace mnemo::experiments
