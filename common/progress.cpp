#include "common/progress.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace mnemo {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  char buf[32];
  const int64_t t = int64_t(seconds + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", long(t / 3600), long(t / 60 % 60));
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", long(t / 60), long(t % 60));
  return buf;
}

std::string format_count(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

double eta_seconds(int64_t start, int64_t done, int64_t total, double elapsed) {
  if (total <= 0 || done <= start || elapsed <= 0) return -1;
  if (done >= total) return 0;
  return double(total - done) * elapsed / double(done - start);
}

namespace {

// " | 61.2k tok/s | ETA 1m20s | note": what both forms end with.
std::string tail(const ProgressState& s) {
  std::string out;
  if (s.elapsed > 0 && s.done > s.start) {
    const double rate = double(s.done - s.start) * s.rate_scale / s.elapsed;
    const std::string& unit = s.rate_unit.empty() ? s.unit : s.rate_unit;
    if (rate >= 1) {
      out += " | " + format_count(rate) + " " + unit + "/s";
    } else {  // slow items (a sweep's runs): "0 runs/s" would say nothing
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f s/", 1.0 / rate);
      out += " | " + (buf + unit);
    }
  }
  if (s.total > 0) {
    const double eta = eta_seconds(s.start, s.done, s.total, s.elapsed);
    out += s.done >= s.total ? " | took " + format_duration(s.elapsed) : " | ETA " + format_duration(eta);
  }
  if (!s.note.empty()) out += " | " + s.note;
  return out;
}

std::string counts(const ProgressState& s) {
  std::string out = format_count(double(s.done));
  if (s.total > 0) out += "/" + format_count(double(s.total));
  return out + " " + s.unit;
}

int percent(const ProgressState& s) { return int(100.0 * double(s.done) / double(s.total)); }

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string plain_line(const ProgressState& s) {
  std::string out = s.label + ": " + counts(s);
  if (s.total > 0) out += " (" + std::to_string(percent(s)) + "%)";
  return out + tail(s);
}

std::string bar_line(const ProgressState& s, int width) {
  std::string out = s.label + " ";
  if (s.total > 0) {
    const int filled = int(double(width) * double(std::min(s.done, s.total)) / double(s.total));
    char pct[8];
    std::snprintf(pct, sizeof pct, "%3d%%", percent(s));
    out += "[" + std::string(size_t(filled), '#') + std::string(size_t(width - filled), '.') + "] " + pct + " ";
  }
  return out + counts(s) + tail(s);
}

Progress::Progress(Options o) : Progress(std::move(o), std::cerr, steady_seconds) {}

Progress::Progress(Options o, std::ostream& out, Clock clock) : o_(std::move(o)), out_(out), clock_(std::move(clock)) {
  mode_ = o_.mode;
  if (mode_ == ProgressMode::automatic) mode_ = ::isatty(2) ? ProgressMode::terminal : ProgressMode::plain;
  t0_ = clock_();
  state_ = {.label = o_.label, .unit = o_.unit, .start = o_.start, .done = o_.start, .total = o_.total,
            .rate_scale = o_.rate_scale, .rate_unit = o_.rate_unit, .note = {}};
  last_draw_ = t0_;  // the first plain line comes after plain_every_s, not at 0%
}

Progress::~Progress() {
  if (bar_open_) out_ << "\n" << std::flush;
}

void Progress::update(int64_t done, const std::string& note) {
  if (mode_ == ProgressMode::off) return;
  state_.done = done, state_.note = note;
  const double now = clock_();
  state_.elapsed = now - t0_;
  const bool end = state_.total > 0 && done >= state_.total;
  const double every = mode_ == ProgressMode::terminal ? o_.redraw_every_s : o_.plain_every_s;
  if (!end && now - last_draw_ < every) return;
  if (end && printed_final_) return;
  printed_final_ = end;
  last_draw_ = now;
  draw();
}

void Progress::draw() {
  if (mode_ == ProgressMode::terminal) {
    out_ << "\r\033[K" << bar_line(state_) << std::flush;
    bar_open_ = true;
  } else {
    out_ << plain_line(state_) << "\n" << std::flush;
  }
}

void Progress::message(const std::string& text) {
  if (mode_ == ProgressMode::off) return;
  if (bar_open_) out_ << "\r\033[K";
  out_ << text << "\n" << std::flush;
  if (bar_open_) out_ << bar_line(state_) << std::flush;
}

void Progress::finish(const std::string& note) {
  if (mode_ == ProgressMode::off || finished_) return;
  finished_ = true;
  if (!note.empty()) state_.note = note;
  state_.elapsed = clock_() - t0_;
  if (!printed_final_ || !note.empty()) {
    printed_final_ = true;
    draw();
  }
  if (bar_open_) out_ << "\n" << std::flush;
  bar_open_ = false;
}

}  // namespace mnemo
