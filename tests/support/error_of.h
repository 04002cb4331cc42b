// The message of the mnemo::Error that `f` throws, or "" when it throws none: tests assert on
// a substring of it, so an error that names the wrong key or file fails the test, and so does
// no error at all.
#pragma once

#include <exception>
#include <string>
#include <utility>

#include "autograd/error.h"

namespace mnemo::test {

// E: the exception type caught (mnemo::Error; std::exception for std_error_of below).
template <class E = mnemo::Error, class F>
std::string error_of(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

// The same for code below autograd (kernels/, the device memory), which throws standard
// exceptions, not mnemo::Error.
template <class F>
std::string std_error_of(F&& f) {
  return error_of<std::exception>(std::forward<F>(f));
}

}  // namespace mnemo::test
