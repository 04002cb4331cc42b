// The message of the mnemo::Error that `f` throws, or "" when it throws none: tests assert on
// a substring of it, so an error that names the wrong key or file fails the test, and so does
// no error at all.
#pragma once

#include <string>
#include <utility>

#include "autograd/error.h"

namespace mnemo::test {

template <class F>
std::string error_of(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const mnemo::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace mnemo::test
