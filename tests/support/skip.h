// Ends a test process with meson's SKIP exit code (77) when something the test needs is not
// on this machine (a tool, a backend), so the run counts it as skipped, never as passed.
// One meson test runs one Boost suite: call it first thing in a suite that holds only tests
// with the same need.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace mnemo::test {

[[noreturn]] inline void skip_test(const std::string& why) {
  std::printf("SKIP: %s\n", why.c_str());
  std::fflush(stdout);
  std::_Exit(77);
}

inline bool have_program(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace mnemo::test
