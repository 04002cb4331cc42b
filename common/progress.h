// Progress of a long command (train, eval, sweep, bench): one object per loop, told how far
// it got. On a terminal it redraws one bar in place:
//   eval [##########..........]  51% 5.10M/10.00M tok | 61.2k tok/s | ETA 1m20s | 2.413 bits/byte
// and when the stream is not a terminal (a log file, a pipe) it prints a plain line at most
// every `plain_every_s` seconds, and at the end, so that logs stay readable:
//   eval: 5.10M/10.00M tok (51%) | 61.2k tok/s | ETA 1m20s | 2.413 bits/byte
// The formatting and the ETA are pure functions below (tested without a clock); the clock
// is injectable for the same reason.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

namespace mnemo {

// "1m05s", "2h03m"; "?" for a negative or non-finite number of seconds.
std::string format_duration(double seconds);
// "950", "12.3k", "4.56M".
std::string format_count(double v);

// Seconds left when `done` of `total` took `elapsed` seconds since `start` was done (a resumed
// loop starts part way): (total - done) / rate; negative when unknown (nothing done yet, no total).
double eta_seconds(int64_t start, int64_t done, int64_t total, double elapsed);

struct ProgressState {
  std::string label;         // "eval", "train", "sweep"
  std::string unit;          // what is counted: "tok", "step", "run"
  int64_t start = 0, done = 0, total = 0;   // total 0: unknown (no percentage, no ETA)
  double elapsed = 0;        // seconds since start
  double rate_scale = 1;     // the rate is shown in units x rate_scale per second ...
  std::string rate_unit;     // ... named this (empty: unit): a step counter shows tok/s
  std::string note;          // appended: the loss so far, say
};

std::string plain_line(const ProgressState& s);            // for logs
std::string bar_line(const ProgressState& s, int width = 20);  // for a terminal

enum class ProgressMode { automatic, terminal, plain, off };

class Progress {
 public:
  using Clock = std::function<double()>;  // seconds, monotonic
  struct Options {
    std::string label, unit;
    int64_t total = 0, start = 0;
    double rate_scale = 1;
    std::string rate_unit = {};
    ProgressMode mode = ProgressMode::automatic;  // automatic: terminal when stderr is one
    double plain_every_s = 10;    // a plain line at most this often
    double redraw_every_s = 0.2;  // the bar at most this often
  };
  explicit Progress(Options o);                          // writes to std::cerr
  Progress(Options o, std::ostream& out, Clock clock);   // tests: any stream, a fake clock
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Count reached; draws or prints when it is time (always at done == total).
  void update(int64_t done, const std::string& note = {});
  // A permanent line: clears the bar, prints `text`, the bar comes back at the next update.
  void message(const std::string& text);
  // The last state, once: the bar's line is ended, or a final plain line printed.
  void finish(const std::string& note = {});
  ProgressMode mode() const { return mode_; }

 private:
  void draw();
  Options o_;
  std::ostream& out_;
  Clock clock_;
  ProgressMode mode_;
  double t0_ = 0, last_draw_ = -1e300;
  ProgressState state_;
  bool bar_open_ = false, finished_ = false, printed_final_ = false;
};

}  // namespace mnemo
