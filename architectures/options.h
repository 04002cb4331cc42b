// Architecture options: each architecture's config struct holds its defaults (a 0 or -1
// sentinel where the default follows from other fields) and one `resolved()` that fills
// those and checks every rule. A rule names the option it is about, so the config loader
// can report the broken key at its file:line:col instead of a bare message.
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "autograd/error.h"

namespace mnemo::arch {

// An option of model.<arch> breaks a rule. `key` is the option's name as written in YAML;
// what() is the message without the key.
class OptionError : public Error {
 public:
  OptionError(std::string key, const std::string& message) : Error(message), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

}  // namespace mnemo::arch

// MNEMO_OPTION_CHECK(cond, "key", "must be ... , got " << v): throws OptionError naming the key.
#define MNEMO_OPTION_CHECK(cond, key, msg)                      \
  do {                                                          \
    if (!(cond)) {                                              \
      std::ostringstream mnemo_option_os_;                      \
      mnemo_option_os_ << msg;                                  \
      throw ::mnemo::arch::OptionError(key, mnemo_option_os_.str()); \
    }                                                           \
  } while (0)

namespace mnemo::arch {

// The default head width, dim / heads, for architectures whose dim_head is an option
// (0 = this default); an error names dim_head when heads does not divide dim.
inline int64_t default_dim_head(int64_t dim, int64_t heads) {
  MNEMO_OPTION_CHECK(dim % heads == 0, "dim_head", "model.dim " << dim << " does not divide by heads " << heads
                                                                    << ": set dim_head");
  return dim / heads;
}

// A dropout probability option: in [0, 0.99] (1 would zero every activation and scale by 1/0).
inline void check_dropout(const char* key, double p) {
  MNEMO_OPTION_CHECK(p >= 0 && p <= 0.99, key, "must be in [0, 0.99], got " << p);
}

}  // namespace mnemo::arch
