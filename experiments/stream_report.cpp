#include "experiments/stream_report.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "experiments/gnuplot.h"
#include "autograd/error.h"

namespace mnemo::experiments {

std::string position_table(const EvalResult& e) {
  std::string out = "positions in the stream        tokens   loss (nats)   bits/byte   accuracy\n";
  char buf[160];
  for (const PositionBucket& b : e.by_position) {
    const std::string range = "[" + std::to_string(b.begin) + ", " + std::to_string(b.end) + ")";
    if (b.tokens == 0) std::snprintf(buf, sizeof buf, "%-26s %10ld %13s %11s %10s\n", range.c_str(), 0L, "-", "-", "-");
    else
      std::snprintf(buf, sizeof buf, "%-26s %10ld %13.4f %11.4f %10.4f\n", range.c_str(), long(b.tokens), b.loss(),
                    b.bits_per_byte(), b.accuracy());
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "%-26s %10ld %13.4f %11.4f %10.4f\n", "all", long(e.tokens), e.loss, e.bits_per_byte,
                e.accuracy);
  return out + buf;
}

std::string position_csv(const EvalResult& e) {
  std::string out = "begin,end,tokens,loss,bits_per_byte,accuracy\n";
  char buf[200];
  for (const PositionBucket& b : e.by_position) {
    std::snprintf(buf, sizeof buf, "%ld,%ld,%ld,%.9g,%.9g,%.9g\n", long(b.begin), long(b.end), long(b.tokens), b.loss(),
                  b.bits_per_byte(), b.accuracy());
    out += buf;
  }
  return out;
}

bool plot_positions(const EvalResult& e, const std::string& title, const std::string& png, std::string* why) {
  if (const std::string missing = gnuplot_missing(); !missing.empty()) {
    if (why) *why = missing;
    return false;
  }
  std::string data;
  char buf[96];
  for (const PositionBucket& b : e.by_position) {
    if (b.tokens == 0) continue;
    std::snprintf(buf, sizeof buf, "%.1f %.6f\n", 0.5 * double(b.begin + b.end), b.bits_per_byte());
    data += buf;
  }
  if (data.empty()) {
    if (why) *why = "no position bucket counts a token (the token file has no labels)";
    return false;
  }
  std::string name = title;
  for (char& c : name)
    if (c == '\'') c = '`';
  std::snprintf(buf, sizeof buf, "%.6f", e.bits_per_byte);
  std::string script = "set terminal pngcairo size 1000,600 noenhanced\nset output '" + png + "'\n";
  script += "set title '" + name + "'\nset xlabel 'token position in the stream (middle of the bucket)'\n";
  script += "set ylabel 'bits per byte'\nset logscale x\nset grid\nset key top right\n";
  script += "$d << EOD\n" + data + "EOD\n";
  script += "plot $d using 1:2 with linespoints title 'bucket', " + std::string(buf) +
            " with lines dashtype 2 title 'whole stream'\n";
  run_gnuplot(script, png, "eval");
  return true;
}

}  // namespace mnemo::experiments
