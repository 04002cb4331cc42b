// Whether `text` holds `part`; when it does not, the test log shows both, so a failed check of
// an error message says what the message was.
#pragma once

#include <boost/test/unit_test.hpp>

#include <string>

namespace mnemo::test {

inline bool contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return true;
  BOOST_TEST_MESSAGE("missing \"" << part << "\" in: " << text);
  return false;
}

}  // namespace mnemo::test
