// mnemo::Error and the two checking macros. MNEMO_CHECK is always on and is for anything
// a user can cause (shapes, dtypes, files, configs); messages start with "[op]".
// MNEMO_ASSERT guards internal invariants and is compiled out in release builds.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace mnemo {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace mnemo

#define MNEMO_CHECK(cond, msg)                      \
  do {                                              \
    if (!(cond)) {                                  \
      std::ostringstream mnemo_check_os_;           \
      mnemo_check_os_ << msg;                       \
      throw ::mnemo::Error(mnemo_check_os_.str());  \
    }                                               \
  } while (0)

#define MNEMO_FAIL(msg) MNEMO_CHECK(false, msg)

#ifdef NDEBUG
#define MNEMO_ASSERT(cond) ((void)0)
#else
#define MNEMO_ASSERT(cond) \
  MNEMO_CHECK(cond, "[internal] assertion failed: " #cond " at " << __FILE__ << ":" << __LINE__)
#endif
