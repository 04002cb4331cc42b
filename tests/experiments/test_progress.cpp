// The progress bar of the long commands (common/progress.h): the plain lines a log file
// gets, the bar a terminal gets, the ETA, and when each is printed, on a fake clock (no
// timing assertions).
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <sstream>

#include "common/progress.h"

using namespace mnemo;

namespace {

// The number of lines and of carriage returns written.
int64_t count(const std::string& s, char c) { return int64_t(std::count(s.begin(), s.end(), c)); }

}  // namespace

BOOST_AUTO_TEST_SUITE(progress)

BOOST_AUTO_TEST_CASE(durations_and_counts_read_as_a_person_writes_them) {
  BOOST_TEST(format_duration(0) == "0m00s");
  BOOST_TEST(format_duration(65.4) == "1m05s");
  BOOST_TEST(format_duration(3600 + 180 + 20) == "1h03m");
  BOOST_TEST(format_duration(-1) == "?");
  BOOST_TEST(format_duration(NAN) == "?");
  BOOST_TEST(format_count(950) == "950");
  BOOST_TEST(format_count(12345) == "12.3k");
  BOOST_TEST(format_count(4'560'000) == "4.56M");
}

BOOST_AUTO_TEST_CASE(eta_is_what_is_left_at_the_rate_so_far) {
  BOOST_TEST(eta_seconds(0, 25, 100, 10) == 30.0);    // 25 in 10 s: 75 more take 30 s
  BOOST_TEST(eta_seconds(10, 30, 110, 10) == 40.0);   // resumed at 10: 20 in 10 s, 80 left
  BOOST_TEST(eta_seconds(0, 100, 100, 10) == 0.0);
  BOOST_TEST(eta_seconds(0, 0, 100, 5) < 0);          // nothing done yet: unknown
  BOOST_TEST(eta_seconds(5, 5, 100, 5) < 0);
  BOOST_TEST(eta_seconds(0, 50, 0, 5) < 0);           // no total: unknown
}

BOOST_AUTO_TEST_CASE(plain_lines_and_the_bar_say_count_rate_eta_and_note) {
  ProgressState s{.label = "eval", .unit = "tok", .start = 0, .done = 5'100'000, .total = 10'000'000,
                  .elapsed = 83.3, .rate_scale = 1, .rate_unit = "", .note = "2.413 bits/byte"};
  // 5.1M in 83.3 s = 61.2k/s; 4.9M left at that rate = 80.0 s
  BOOST_TEST(plain_line(s) == "eval: 5.10M/10.00M tok (51%) | 61.2k tok/s | ETA 1m20s | 2.413 bits/byte");
  BOOST_TEST(bar_line(s) == "eval [##########..........]  51% 5.10M/10.00M tok | 61.2k tok/s | ETA 1m20s | 2.413 bits/byte");
  // Steps counted, tokens/s shown; resumed at step 100.
  ProgressState t{.label = "train", .unit = "step", .start = 100, .done = 150, .total = 300, .elapsed = 20,
                  .rate_scale = 4096, .rate_unit = "tok", .note = ""};
  BOOST_TEST(plain_line(t) == "train: 150/300 step (50%) | 10.2k tok/s | ETA 1m00s");
  t.done = 300, t.elapsed = 80;
  BOOST_TEST(plain_line(t) == "train: 300/300 step (100%) | 10.2k tok/s | took 1m20s");
  // No total (a pipe): no percentage, no ETA.
  ProgressState u{.label = "eval", .unit = "tok", .start = 0, .done = 300, .total = 0, .elapsed = 10,
                  .rate_scale = 1, .rate_unit = "", .note = ""};
  BOOST_TEST(plain_line(u) == "eval: 300 tok | 30 tok/s");
  BOOST_TEST(bar_line(u) == "eval 300 tok | 30 tok/s");
  // Slower than one a second (a sweep's runs): seconds per item instead of "0 run/s".
  ProgressState v{.label = "sweep", .unit = "run", .start = 0, .done = 5, .total = 6, .elapsed = 47,
                  .rate_scale = 1, .rate_unit = "", .note = ""};
  BOOST_TEST(plain_line(v) == "sweep: 5/6 run (83%) | 9.4 s/run | ETA 0m09s");
}

BOOST_AUTO_TEST_CASE(a_log_gets_a_plain_line_every_interval_and_the_last) {
  double now = 0;
  std::ostringstream out;
  {
    Progress p({.label = "eval", .unit = "tok", .total = 250, .mode = ProgressMode::plain, .plain_every_s = 10},
               out, [&] { return now; });
    for (int64_t i = 1; i <= 25; ++i) {  // one update a second
      now = double(i);
      p.update(10 * i);
    }
    p.finish();
  }
  // At 10 s and 20 s, then the end (25 s); never a carriage return or an escape sequence.
  BOOST_TEST(out.str() ==
             "eval: 100/250 tok (40%) | 10 tok/s | ETA 0m15s\n"
             "eval: 200/250 tok (80%) | 10 tok/s | ETA 0m05s\n"
             "eval: 250/250 tok (100%) | 10 tok/s | took 0m25s\n");
}

BOOST_AUTO_TEST_CASE(a_terminal_gets_one_line_redrawn_in_place) {
  double now = 0;
  std::ostringstream out;
  {
    Progress p({.label = "train", .unit = "step", .total = 10, .mode = ProgressMode::terminal, .redraw_every_s = 0.5},
               out, [&] { return now; });
    for (int64_t i = 1; i <= 10; ++i) {  // a step every 0.25 s: every other one is drawn
      now = 0.25 * double(i);
      p.update(i);
      if (i == 4) p.message("step 4: val loss 2.0");
    }
    p.finish();
  }
  const std::string s = out.str();
  BOOST_TEST(count(s, '\r') == 5 + 1);  // steps 2, 4, 6, 8, 10; the message clears the bar
  BOOST_TEST(count(s, '\n') == 2);      // the message, then the end of the bar
  // The message takes the bar's line and the bar comes back under it.
  BOOST_TEST(s.find("\r\033[Kstep 4: val loss 2.0\ntrain [########............]  40% 4/10 step") != std::string::npos);
  BOOST_TEST(s.ends_with("train [####################] 100% 10/10 step | 4 step/s | took 0m03s\n"));
}

BOOST_AUTO_TEST_CASE(off_prints_nothing) {
  std::ostringstream out;
  {
    Progress p({.label = "sweep", .unit = "runs", .total = 3, .mode = ProgressMode::off}, out, [] { return 0.0; });
    p.update(1);
    p.message("hello");
    p.update(3);
    p.finish();
  }
  BOOST_TEST(out.str().empty());
}

BOOST_AUTO_TEST_SUITE_END()
